"""The headline mixed workload on the new API against the low-level one, interleaved.

Issue 12: "stream p99 and suspension latency at most 1.1x the low-level API's, in the same run".
The quick benchmark's neptune point (runner.run_scenario: a real driver and one executor,
pinned, Poisson events at 20/s of ~1 ms stream tasks beside ~100 ms batch tasks, the neptune
policy, 10 s measured) runs once per API and round, the two back to back, alternating which
goes first:

- `low`: workload.py as the quick benchmark runs it, `stream_job` + `batch_job`;
- `new`: the same work through the dataflow and dataset API: `app.stream("stream", ...)
  .map(one event's work).to(the ledger, or a sink that drops)` and `app.dataset("batch", read=...,
  partitions=4).map_partitions(xor of the records' work).collect(...)`.

Both are the same per-record function (work.work), the same records, yield points and task
sizes; this module is the app of both (BENCH_API picks), so the only difference is the API's
code on the path. Per run: stream p50/p99 (/status), suspension (send to start) p50/p99,
preemptions and batch records/s; then per API the median and min-max over rounds, and the
ratio new/low of the medians.

    python -m neptune_bench.api_ab --rounds 5 --out bench/results/api_ab
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from statistics import median
from typing import Any

from neptune_runtime import App, sinks, sources
from neptune_runtime.app import TaskContext

APIS = ("low", "new")
FIGURES = ("stream_p50_ms", "stream_p99_ms", "suspension_p50_us", "suspension_p99_us",
           "preemptions", "batch_records_per_s")
TARGETS = ("stream_p99_ms", "suspension_p50_us", "suspension_p99_us")  # at most 1.1x
LIMIT = 1.1
MODULE = "neptune_bench.api_ab"


# -- the app (loaded by the driver and the executor with BENCH_API set) -------------------------
class Discard(sinks.Sink):
    """Takes the outputs and drops them: the low-level job, without a ledger, has no sink, but
    its tasks still return their results, which the driver then drops; a stream without `to`
    would return none, so the new API's gets this, and its tasks return the same results."""

    def write(self, job: str, outputs: list[Any]) -> None:
        return None


def _new_api_app() -> App:
    """The workload's two jobs through app.stream() and app.dataset()."""
    from . import workload as w

    loops, records, work = w._get_loops, w.STREAM_RECORDS, w._work

    def one_event(event: int) -> int | None:
        """stream_task's body for one event: its records' work, then the event."""
        n = loops()
        acc = 0
        for record in range(records):
            acc ^= work(record + event, n)
        return event if acc >= 0 else None

    def xor_all(records: Iterator[int]) -> Iterable[int]:
        """batch_task's body: the xor of the records' work (a yield point per record)."""
        return [w.batch_task(None, records)]  # type: ignore[arg-type]  # ctx is not read

    app = App("bench")
    if w.MODE in ("both", "batch"):
        (app.dataset("batch", read=w.read, partitions=w.PARTITIONS).map_partitions(xor_all)
         .collect("batch_xor", cache_partitions=False))
    if w.MODE in ("both", "stream"):
        source: sources.Source = (w.Bursts(w.BURST, w.BURST_EVERY, w.ledger)
                                  if w.ARRIVAL == "bursts"
                                  else sources.Synthetic(rate=w.RATE, make=w._event, seed=11))
        app.stream("stream", source, slo="10ms").map(one_event).to(w.ledger or Discard())
    return app


def _app_for(api: str | None) -> App | None:
    if api == "low":
        from .workload import app as low

        return low
    if api == "new":
        return _new_api_app()
    return None


API = os.environ.get("BENCH_API")
if API is not None and API not in APIS:
    raise ValueError(f"BENCH_API must be one of {APIS}, got {API!r}")
_app = _app_for(API)
if _app is not None:
    app = _app


# -- the runs -----------------------------------------------------------------------------------
def one_run(api: str, env: dict[str, str], warmup: float, measure: float) -> dict[str, Any]:
    """The quick benchmark's neptune point on `api`, as run_scenario runs it (its app module
    is this one, BENCH_API=api)."""
    from . import runner

    runner.WORKLOAD = MODULE  # run_scenario reads it at each call
    with open(os.devnull, "w") as log:
        return runner.run_scenario(f"neptune ({api})", "both", "neptune",
                                   {**env, "BENCH_API": api}, warmup, measure, log)


def figures(result: dict[str, Any]) -> dict[str, float]:
    """The figures of one run that this comparison reports."""
    s2s = result["send_to_start_us"]
    return {"stream_p50_ms": result["stream_p50_ms"], "stream_p99_ms": result["stream_p99_ms"],
            "suspension_p50_us": s2s["p50"], "suspension_p99_us": s2s["p99"],
            "preemptions": s2s["count"],
            "batch_records_per_s": result["batch_records_per_s"] or 0.0}


def summarize(runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Per API and figure: median, min, max over the rounds; per figure the ratio new/low of
    the medians; and whether each target figure is within LIMIT."""
    per: dict[str, dict[str, dict[str, float]]] = {}
    for api, results in runs.items():
        per[api] = {k: {"median": median(r[k] for r in results),
                        "min": min(r[k] for r in results),
                        "max": max(r[k] for r in results)} for k in FIGURES}
    ratio = {k: (per["new"][k]["median"] / per["low"][k]["median"]
                 if per["low"][k]["median"] else float("nan")) for k in FIGURES}
    # the same ratio per round (new over low of that round's pair), to show its spread
    pairs = list(zip(runs["low"], runs["new"], strict=True))
    round_ratios = {k: [n[k] / lo[k] if lo[k] else float("nan") for lo, n in pairs]
                    for k in FIGURES}
    paired = {k: median(r for r in v if r == r) if any(r == r for r in v) else float("nan")
              for k, v in round_ratios.items()}
    met = {k: ratio[k] <= LIMIT for k in TARGETS}
    return {"per_api": per, "ratio_new_over_low": ratio, "round_ratios": round_ratios,
            "paired_ratio_median": paired,
            "target": {"limit": LIMIT, "met": met, "all_met": all(met.values())}}


def path_cost(rounds: int = 200) -> dict[str, float]:
    """What the new API adds on the task's path, in-process and without the work: each job's
    task function, low-level and new, over the same input with one loop per record (so the
    wrappers, not the records, are timed), interleaved, the median of `rounds` calls each.
    Stream: microseconds per one-event task; batch: nanoseconds per record of a partition."""
    from . import workload as w

    low, new = _app_for("low"), _app_for("new")
    assert low is not None and new is not None
    saved, w._loops = w._loops, 1
    try:
        times: dict[str, list[float]] = {k: [] for k in ("sl", "sn", "bl", "bn")}
        records = list(w.read(0, 0))
        jobs = {"sl": low.job("stream"), "sn": new.job("stream"), "bl": low.job("batch"),
                "bn": new.job("batch")}
        for pair in (("sl", "sn"), ("bl", "bn")):  # stream, then batch; pairs alternate
            for i in range(rounds):
                for key in (pair if i % 2 else pair[::-1]):
                    job = jobs[key]
                    given: list[Any] = [i] if key[0] == "s" else records
                    ctx = TaskContext("t", job.name, 0, 0, 0, {})
                    t0 = time.perf_counter()
                    job.task(ctx, iter(given))
                    times[key].append(time.perf_counter() - t0)
    finally:
        w._loops = saved
    per = {k: median(v) for k, v in times.items()}
    n = len(records)
    return {"stream_task_low_us": per["sl"] * 1e6, "stream_task_new_us": per["sn"] * 1e6,
            "stream_added_us": (per["sn"] - per["sl"]) * 1e6,
            "batch_record_low_ns": per["bl"] / n * 1e9, "batch_record_new_ns": per["bn"] / n * 1e9,
            "batch_added_ns": (per["bn"] - per["bl"]) / n * 1e9,
            "stream_task_real_ms": w.STREAM_MS, "batch_records_per_task": float(n)}


def _cell(s: dict[str, float]) -> str:
    return f"{s['median']:.3g} ({s['min']:.3g}-{s['max']:.3g})"


def markdown(result: dict[str, Any]) -> str:
    summary = result["summary"]
    lines = [
        "# The headline mixed workload: new API against the low-level API",
        "",
        f"Command: `{result['command']}`",
        "",
        f"The quick benchmark's neptune point ({result['point']}), {result['rounds']} rounds, "
        f"each a low-level run and a new-API run back to back (the order alternating), "
        f"{result['measure_s']:g} s measured after {result['warmup_s']:g} s of warm-up. "
        "Median (min-max) over the rounds; ratio = new median / low median; and the ratio "
        "of each round's pair (new / low, run back to back).",
        "",
        f"Load (`uptime`): before `{result['uptime_before']}`; after "
        f"`{result['uptime_after']}`.",
        "",
        "| figure | low-level (stream_job, batch_job) | new (app.stream, app.dataset) | "
        "ratio new/low | per-round ratios: median (min-max) |",
        "|---|---:|---:|---:|---:|",
    ]
    for k in FIGURES:
        rr = [r for r in summary["round_ratios"][k] if r == r]
        paired = summary["paired_ratio_median"][k]
        spread = f"{paired:.2f} ({min(rr):.2f}-{max(rr):.2f})" if rr else "-"
        flag = " (target <= 1.1)" if k in TARGETS else ""
        lines.append(f"| {k}{flag} | {_cell(summary['per_api']['low'][k])} | "
                     f"{_cell(summary['per_api']['new'][k])} | "
                     f"{summary['ratio_new_over_low'][k]:.2f} | {spread} |")
    met = summary["target"]["met"]
    lines += ["", "Target (stream p99 and suspension latency at most 1.1x the low-level "
              "API's): " + ", ".join(f"{k} {'met' if ok else 'MISSED'}" for k, ok in met.items())
              + "."]
    cost = result.get("path_cost")
    if cost:
        lines += ["", "What the new API adds on the task's path, in-process, without the work "
                  "(one loop per record; `path_cost`): a one-event stream task "
                  f"{cost['stream_task_low_us']:.1f} us low-level, "
                  f"{cost['stream_task_new_us']:.1f} us new ({cost['stream_added_us']:+.1f} us "
                  f"against a real task of ~{cost['stream_task_real_ms']:g} ms); a batch "
                  f"record {cost['batch_record_low_ns']:.0f} ns low-level, "
                  f"{cost['batch_record_new_ns']:.0f} ns new "
                  f"({cost['batch_added_ns']:+.0f} ns against ~10 us of work)."]
    if result.get("notes"):
        lines += ["", result["notes"]]
    return "\n".join(lines) + "\n"


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5,
                              check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    from .runner import QUICK_NEPTUNE_MEASURE_S, Point, label, machine
    from .work import calibrate

    parser = argparse.ArgumentParser(prog="python -m neptune_bench.api_ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--measure", type=float, default=QUICK_NEPTUNE_MEASURE_S)
    parser.add_argument("--notes", default="", help="a paragraph for the report (Markdown)")
    parser.add_argument("--out", default=None,
                        help="write OUT.json and OUT.md (e.g. bench/results/api_ab)")
    args = parser.parse_args(argv)
    point = Point()
    env = point.env(calibrate())
    cost = path_cost()
    uptime_before = _uptime()
    runs: dict[str, list[dict[str, float]]] = {api: [] for api in APIS}
    raw: dict[str, list[dict[str, Any]]] = {api: [] for api in APIS}
    started = time.monotonic()
    for round_ in range(args.rounds):
        order = APIS if round_ % 2 == 0 else tuple(reversed(APIS))
        for api in order:
            print(f"api_ab: round {round_ + 1}/{args.rounds}, {api}:", file=sys.stderr,
                  flush=True)
            result = one_run(api, env, args.warmup, args.measure)
            raw[api].append({k: v for k, v in result.items() if k != "stream_latency_cdf"})
            runs[api].append(figures(result))
            print("   " + ", ".join(f"{k} {v:.3g}" for k, v in runs[api][-1].items()),
                  file=sys.stderr, flush=True)
    command = "python -m neptune_bench.api_ab " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    out = {"command": command.strip(), "point": label(point), "env": env,
           "rounds": args.rounds, "warmup_s": args.warmup, "measure_s": args.measure,
           "uptime_before": uptime_before, "uptime_after": _uptime(),
           "elapsed_s": round(time.monotonic() - started, 1), "machine": machine(),
           "runs": runs, "summary": summarize(runs), "path_cost": cost,
           "notes": args.notes, "raw": raw}
    text = markdown(out)
    print(text)
    if args.out:
        with open(args.out + ".json", "w") as handle:
            json.dump(out, handle, indent=1)
        with open(args.out + ".md", "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
