"""A/B of two code trees on the quick benchmark's neptune point (or one of its shapes, under
any policy), interleaved.

This machine is noisy (the same suspension benchmark gave a p99 of 83 us one hour and 442 us
another), so a change to the hot path is judged by pairs run back to back, alternating which
side goes first, several rounds, with the spread. Each side is a PYTHONPATH (a checkout's
executor_image, plus its bench/ when it has one) and the module of its benchmark runner
(`neptune_bench.runner` now, `neptune_runtime.bench.runner` before the split); every run is a
fresh process tree of that side's code.

    python -m neptune_bench.ab --side old=/tmp/old/executor_image:neptune_runtime.bench.runner \\
        --side new=executor_image:bench:neptune_bench.runner --rounds 4 --out ab.json
    python -m neptune_bench.ab --side ... --side ... --shape bursts_sha256 --policy fair
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from statistics import median
from typing import Any

from .runner import SHAPES, Point
from .work import calibrate

ONE_RUN = """
import json, sys
from importlib import import_module
run_scenario = import_module(sys.argv[1]).run_scenario
env = json.loads(sys.argv[2])
with open("/dev/null", "w") as log:
    # the ledger (events in, results out) only when asked: older trees' runners lack it
    extra = {"ledger": True} if sys.argv[7] == "ledger" else {}
    result = run_scenario(sys.argv[6], sys.argv[5], sys.argv[6], env, float(sys.argv[3]),
                          float(sys.argv[4]), log, **extra)
print(json.dumps(result))
"""


def one(pythonpath: str, runner: str, env: dict[str, str], warmup: float, measure: float,
        mode: str = "both", policy: str = "neptune", ledger: bool = False) -> dict[str, Any]:
    paths = [os.path.abspath(p) for p in pythonpath.split(":") if p]
    child_env = {**os.environ, "PYTHONPATH": ":".join(paths)}
    out = subprocess.run([sys.executable, "-c", ONE_RUN, runner, json.dumps(env), str(warmup),
                          str(measure), mode, policy, "ledger" if ledger else "-"],
                         env=child_env, capture_output=True, text=True,
                         check=False, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"ab: a run of {runner} failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def figures(result: dict[str, Any], alone: dict[str, Any]) -> dict[str, float]:
    s2s = result["send_to_start_us"]
    found = {"s2s_p50_us": s2s["p50"], "s2s_p99_us": s2s["p99"], "s2s_max_us": s2s["max"],
            "preemptions": s2s["count"], "stream_p50_ms": result["stream_p50_ms"],
            "stream_p99_ms": result["stream_p99_ms"],
            "batch_rel": (result["batch_records_per_s"] or 0.0)
            / (alone["batch_records_per_s"] or 1.0)}
    if "batch_records_per_wall_s" in result:  # runners since the steal correction (steal.py)
        found["batch_rel_wall"] = ((result["batch_records_per_wall_s"] or 0.0)
                                   / (alone.get("batch_records_per_wall_s") or 1.0))
        found["steal_pct"] = 100 * result["executor_steal_fraction"]
        found["alone_steal_pct"] = 100 * alone["executor_steal_fraction"]
    ledger = result.get("ledger")
    if ledger:  # a burst's last answer, and what the ledger found lost or answered twice
        found["served_p50_ms"] = (ledger["burst_served_ms"] or {}).get("p50") or 0.0
        found["lost_or_twice"] = ledger["lost"] + ledger["answered_twice"]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neptune_bench.ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", action="append", required=True,
                        help="NAME=PYTHONPATH:RUNNER_MODULE (give two or more)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--measure", type=float, default=10.0)
    parser.add_argument("--shape", choices=sorted(SHAPES), default=None,
                        help="one of the quick benchmark's shapes instead of its kind point")
    parser.add_argument("--policy", default="neptune")
    parser.add_argument("--env", action="append", default=[],
                        help="NAME=VALUE for every run (e.g. a workload setting)")
    parser.add_argument("--out", default=None, help="write every run's figures here (JSON)")
    args = parser.parse_args(argv)
    sides = []
    for given in args.side:
        name, _, rest = given.partition("=")
        pythonpath, _, runner = rest.rpartition(":")
        sides.append((name, pythonpath, runner))
    point = SHAPES[args.shape] if args.shape else Point()
    env = {**point.env(calibrate()), **dict(e.split("=", 1) for e in args.env)}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in sides}
    for round_ in range(args.rounds):
        order = sides if round_ % 2 == 0 else list(reversed(sides))
        for name, pythonpath, runner in order:
            print(f"ab: round {round_ + 1}/{args.rounds}, {name} ...", end="", file=sys.stderr,
                  flush=True)
            alone = one(pythonpath, runner, env, args.warmup, 5.0, "batch")
            both = one(pythonpath, runner, env, args.warmup, args.measure, policy=args.policy,
                       ledger=args.shape is not None)
            runs[name].append(figures(both, alone))
            print(" " + ", ".join(f"{k} {v:.3g}" for k, v in runs[name][-1].items()),
                  file=sys.stderr, flush=True)
    keys = list(next(iter(runs.values()))[0])
    print("| side | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, results in runs.items():
        cells = [f"{median(r[k] for r in results):.3g} ({min(r[k] for r in results):.3g}-"
                 f"{max(r[k] for r in results):.3g})" for k in keys]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"env": env, "shape": args.shape, "policy": args.policy,
                       "rounds": args.rounds, "measure_s": args.measure,
                       "runs": runs}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
