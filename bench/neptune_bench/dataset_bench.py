"""The dataset benchmark of issue 12: batch work on the dataset API against PySpark and Dask.

Two workloads over the same rows (dataset_peers/data.py), every system on two cores:
- `pairs`: `reduce_by_key(operator.add)` over `--records` Python (key, value) records and
  `--keys` keys: ours (Dataset.reduce_by_key, two executors), PySpark's RDD with Python
  functions (local[2]), Dask's bag foldby (a LocalCluster of two one-thread workers);
- `columns`: a group-by aggregation (sum, count, mean, min, max of `amount` by `key`): ours
  (Dataset.aggregate_columns over pyarrow RecordBatches, pyarrow.compute), PySpark's DataFrame
  groupBy().agg(), Dask's dataframe groupby().agg().

Each run of a system is a process of its own (dataset_peers/): it starts up, runs warm-up
epochs, then the measured ones. An epoch's time runs from the job's submission to the summary of
its whole result on the driver side (every record of the result comes back, as collect()); it
excludes start-up (a JVM, a cluster, executors registering) and the warm-up epochs. The runs
are interleaved: every round runs every system once, in an order that rotates from round to
round, so that a slow moment of the machine falls on all of them. The report gives each
system's median epoch time over all rounds with its spread (min-max), and its ratio to PySpark
(the RDD for pairs, the DataFrame for columns): the ratio of the medians, and the min-max of
the per-round ratios. Every run's summary must equal the one computed here with numpy.

    python -m neptune_bench.dataset_bench --records 10000000 --keys 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from statistics import median
from typing import Any

from .dataset_peers import REFERENCE, SYSTEMS, WORKLOADS, Config, data, run_system
from .peers import RunFailed

TARGET = ("pairs", "ours", "spark_rdd", 1.0)  # ours at most 1.0x PySpark RDD's time
RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")


def reference(workload: str, records: int, keys: int) -> dict[str, Any]:
    """The summary every system must compute, by numpy over the same rows."""
    import numpy as np

    i = np.arange(records, dtype=np.int64)
    key = (i * data.STRIDE) % keys
    if workload == "pairs":
        totals = np.bincount(key, weights=None, minlength=keys)  # records a key
        values = np.bincount(key, weights=i % 10, minlength=keys)
        present = np.nonzero(totals)[0]
        return {"keys": len(present), "total": int(values.sum()),
                "weighted": int((present * values[present].astype(np.int64)).sum())}
    amount = (i % 1000).astype(np.float64) / 4
    order = np.lexsort((amount, key))
    key, amount = key[order], amount[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)] - 1
    return {"keys": len(starts), "rows": records, "total": float(amount.sum()),
            "low": float(amount[starts].sum()), "high": float(amount[ends].sum())}


def same_summary(got: dict[str, Any] | None, expected: dict[str, Any]) -> bool:
    """The same fields and values: integers exactly, floats to 1e-12 (data.py's sums are exact
    in a float64 whatever the order of summation; the tolerance only allows for a system that
    adds them as decimals)."""
    if got is None or set(got) != set(expected):
        return False
    for name, want in expected.items():
        value = got[name]
        if isinstance(want, float) or isinstance(value, float):
            if not math.isclose(value, want, rel_tol=1e-12, abs_tol=0.0):
                return False
        elif value != want:
            return False
    return True


def plan(rounds: int, pairs: Sequence[tuple[str, str]]) -> list[tuple[int, str, str]]:
    """(round, workload, system) in the order they run: every round runs each pair once,
    starting one further along the list than the round before."""
    out = []
    for round_ in range(rounds):
        shift = round_ % len(pairs) if pairs else 0
        for workload, system in [*pairs[shift:], *pairs[:shift]]:
            out.append((round_, workload, system))
    return out


def _spread(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": round(median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}


def table(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (workload, system) that ran: its measured epochs' median and spread, its
    ratio to its workload's PySpark (REFERENCE), start-up, and how many runs failed or gave
    another summary than the reference."""
    rows = []
    for workload, system in SYSTEMS:
        mine = [r for r in runs if r["workload"] == workload and r["system"] == system]
        if not mine:
            continue
        ok = [r for r in mine if r.get("epochs_s")]
        epochs = [t for r in ok for t in r["epochs_s"]]
        row: dict[str, Any] = {
            "workload": workload, "system": system, "label": SYSTEMS[(workload, system)][1],
            "epoch_s": _spread(epochs), "epochs": len(epochs), "runs": len(mine),
            "failed": sum(1 for r in mine if r.get("error")),
            "wrong_summary": sum(1 for r in ok if not r.get("summary_ok")),
            "startup_s": _spread([r["info"]["startup_s"] for r in ok if "info" in r]),
        }
        rows.append(row)
    for row in rows:
        ref = REFERENCE[row["workload"]]
        base = next((r for r in rows if r["workload"] == row["workload"]
                     and r["system"] == ref), None)
        row["reference"] = ref
        row["ratio"] = None
        row["round_ratios"] = []
        if base is None or not base["epochs"] or not row["epochs"]:
            continue
        row["ratio"] = round(row["epoch_s"]["median"] / base["epoch_s"]["median"], 3)
        by_round: dict[int, dict[str, float]] = {}
        for r in runs:
            if r["workload"] == row["workload"] and r.get("epochs_s"):
                by_round.setdefault(r["round"], {})[r["system"]] = median(r["epochs_s"])
        row["round_ratios"] = [round(times[row["system"]] / times[ref], 3)
                               for _, times in sorted(by_round.items())
                               if row["system"] in times and ref in times]
    return rows


def target(rows: list[dict[str, Any]]) -> dict[str, Any]:
    workload, system, ref, at_most = TARGET
    row = next((r for r in rows if r["workload"] == workload and r["system"] == system), None)
    ratio = None if row is None else row["ratio"]
    return {"what": f"{workload}: {system} at most {at_most}x {ref}'s median epoch time",
            "ratio": ratio, "round_ratios": [] if row is None else row["round_ratios"],
            "met": None if ratio is None else ratio <= at_most}


def _cell(spread: dict[str, float | None], digits: int = 2) -> str:
    if spread["median"] is None:
        return "-"
    return f"{spread['median']:.{digits}f} ({spread['min']:.{digits}f}-{spread['max']:.{digits}f})"


def _ratio_cell(row: dict[str, Any]) -> str:
    if row["ratio"] is None:
        return "-"
    rounds = row["round_ratios"]
    return f"{row['ratio']:.2f}x" + (f" ({min(rounds):.2f}-{max(rounds):.2f})" if rounds else "")


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        "# Dataset benchmark (issue 12): reduce_by_key and a column group-by, against PySpark"
        " and Dask",
        "",
        f"{cfg['records']:,} records, {cfg['keys']:,} keys, {cfg['partitions']} map partitions,"
        f" {cfg['reducers']} reduce partitions, on two cores; {cfg['rounds']} rounds, each "
        f"running every system once (interleaved, the order rotating), {cfg['warmup']} warm-up "
        f"and {cfg['epochs']} measured epochs a run.",
        "",
        "An epoch runs from the job's submission to the summary of its whole result on the "
        "driver side (every record of the result comes back to it, as collect() brings it). "
        "**Times exclude start-up** (the JVM, the Dask cluster, our driver and executors) and "
        "the warm-up epochs: start-up is its own column. Epoch times: median (min-max) over "
        "all measured epochs of all rounds. Ratio: to the workload's PySpark (RDD for pairs, "
        "DataFrame for columns), the ratio of the medians (min-max of the per-round ratios).",
        "",
        "| workload | system | epoch s | ratio to PySpark | start-up s | epochs | summary |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in result["table"]:
        summary = "same" if not row["wrong_summary"] and not row["failed"] else (
            f"{row['wrong_summary']} wrong, {row['failed']} failed of {row['runs']} runs")
        lines.append(f"| {row['workload']} | {row['label']} | {_cell(row['epoch_s'])} | "
                     f"{_ratio_cell(row)} | {_cell(row['startup_s'], 1)} | {row['epochs']} | "
                     f"{summary} |")
    goal = result["target"]
    verdict = "no figure" if goal["met"] is None else ("met" if goal["met"] else "NOT met")
    lines += ["", f"Target ({goal['what']}): {verdict}"
              + (f", {goal['ratio']:.2f}x" if goal["ratio"] is not None else "") + ".", ""]
    lines += ["Summaries (every run's must equal these, computed with numpy): "
              + "; ".join(f"{w}: {json.dumps(s)}" for w, s in result["expected"].items()), ""]
    failures = [r for r in result["runs"] if r.get("error")]
    if failures:
        lines += ["Failed runs:", ""]
        lines += [f"- round {r['round'] + 1}, {r['workload']} {r['system']}: "
                  f"{r['error'][:300]}" for r in failures]
        lines.append("")
    machine, code = result["machine"], result["machine"]["code"]
    versions = sorted({f"{k} {v}" for r in result["runs"] for k, v in r.get("info", {}).items()
                       if k in ("spark", "dask")})
    lines += [
        f"Machine: {machine['cpus']} CPUs, Python {machine['python']}, {machine['platform']}; "
        f"runtime at {code.get('commit')} ({code.get('runtime_changed_files')} runtime files "
        f"changed in the checkout). Versions: {', '.join(versions)}.",
        f"Load: at the start `{result['uptime_start']}`; at the end `{result['uptime_end']}`.",
        f"Elapsed: {result['elapsed_s']:.0f} s.",
        "",
        "Reproduce (after `make bench-setup`, from bench/ or with the package installed):",
        "",
        f"    {result['command']}",
        "",
    ]
    return "\n".join(lines)


def _uptime() -> str:
    try:
        out = subprocess.run(["uptime"], capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip()
    except OSError:
        load = os.getloadavg()
        return f"load average: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def run(cfg: Config, rounds: int, pairs: Sequence[tuple[str, str]], budget: float,
        command: str) -> dict[str, Any]:
    from .runner import machine

    uptime_start = _uptime()
    started = time.monotonic()
    expected = {w: reference(w, cfg.records, cfg.keys) for w in {w for w, _ in pairs}}
    runs: list[dict[str, Any]] = []
    steps = plan(rounds, pairs)
    print(f"dataset_bench: {cfg.records:,} records, {cfg.keys:,} keys, {rounds} rounds of "
          f"{len(pairs)} runs; load: {uptime_start}", file=sys.stderr, flush=True)
    for index, (round_, workload, system) in enumerate(steps):
        elapsed = time.monotonic() - started
        print(f"[{index + 1}/{len(steps)}, {_clock(elapsed)}] round {round_ + 1}: {workload} "
              f"{system} ...", end="", file=sys.stderr, flush=True)
        entry: dict[str, Any] = {"round": round_, "workload": workload, "system": system}
        try:
            entry.update(run_system(Config(**{**asdict(cfg), "workload": workload,
                                              "system": system}), budget))
            entry["summary_ok"] = same_summary(entry.get("summary"), expected[workload])
            print(f" start-up {entry['info']['startup_s']:.1f}s, epochs "
                  + " ".join(f"{t:.2f}" for t in entry["epochs_s"]) + "s"
                  + ("" if entry["summary_ok"] else f", WRONG summary {entry.get('summary')}"),
                  file=sys.stderr, flush=True)
        except RunFailed as exc:
            entry["error"] = str(exc)
            print(f" FAILED: {str(exc)[:500]}", file=sys.stderr, flush=True)
        entry["loadavg"] = [round(x, 2) for x in os.getloadavg()]
        runs.append(entry)
    rows = table(runs)
    return {"config": {**asdict(cfg), "rounds": rounds, "workload": None, "system": None,
                       "workdir": None, "budget_s": budget},
            "command": command, "expected": expected, "table": rows, "target": target(rows),
            "runs": runs, "machine": machine(), "uptime_start": uptime_start,
            "uptime_end": _uptime(), "elapsed_s": round(time.monotonic() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neptune_bench.dataset_bench",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4, help="map tasks (every system)")
    parser.add_argument("--reducers", type=int, default=4, help="reduce tasks")
    parser.add_argument("--batch-rows", type=int, default=65536,
                        help="rows of a RecordBatch (ours, columns)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="measured epochs a run")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up epochs a run")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--systems", default="",
                        help="comma-separated names (ours, spark_rdd, spark_df, dask_bag, "
                             "dask_df); default all")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds a run may take")
    parser.add_argument("--json", default=os.path.join(RESULTS, "datasets.json"))
    parser.add_argument("--markdown", default=os.path.join(RESULTS, "datasets.md"))
    args = parser.parse_args(argv)
    workloads = [w for w in args.workloads.split(",") if w]
    systems = [s for s in args.systems.split(",") if s]
    pairs = [(w, s) for w, s in SYSTEMS if w in workloads and (not systems or s in systems)]
    if not pairs:
        parser.error("no system of those workloads is chosen")
    cfg = Config("", "", args.records, args.keys, args.partitions, args.reducers,
                 args.batch_rows, args.epochs, args.warmup)
    command = "python -m neptune_bench.dataset_bench " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    result = run(cfg, args.rounds, pairs, args.timeout, command)
    report = markdown(result)
    print(report)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(report)
    bad = [r for r in result["runs"] if r.get("error") or not r.get("summary_ok")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
