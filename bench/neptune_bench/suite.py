"""`neptunectl bench --full`: the full suite of DESIGN.md section 7.

Sweeps the batch task length (10, 100, 1000 ms at the headline rate) and the stream arrival
rate (10 to 200/s at 100 ms batch tasks), then issue 15's two shapes (bursts of 20 events every
0.5 s with ~10 us records, and with ~25 ms sha256 records); at each point runs our runtime
(stream alone, batch alone, each policy) and the peers; repeats the whole sweep
`--repetitions` times (repetitions outermost, so that a time budget that runs out still leaves
every point measured at least once); writes full.json, full.md and PNG plots to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from typing import Any

from .runner import SHAPES, Point, _cpus, machine, run_peers, run_runtime
from .suite_report import aggregate, markdown, point_key
from .work import calibrate, records_for

HEADLINE_BATCH_MS = 100.0
HEADLINE_RATE = 20.0
BATCH_LENGTHS = (10.0, 100.0, 1000.0)
RATES = (10.0, 50.0, 200.0)


def points() -> list[Point]:
    out = [Point(batch_ms=b, rate=HEADLINE_RATE) for b in BATCH_LENGTHS]
    out += [Point(batch_ms=HEADLINE_BATCH_MS, rate=r) for r in RATES if r != HEADLINE_RATE]
    return out + list(SHAPES.values())


def windows(point: Point) -> tuple[float, float]:
    """Warm-up and measured window: long enough for a dozen batch tasks of 1 s."""
    warmup = max(2.0, 2 * point.batch_ms / 1000)
    measure = max(6.0, 12 * point.batch_ms / 1000)
    return warmup, measure


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def run_suite(repetitions: int, budget: float, plan_points: list[Point] | None = None,
              scale: float = 1.0) -> dict[str, Any]:
    """`plan_points` and `scale` (of every window) exist for smoke tests of the suite itself."""
    loops = calibrate()
    chosen = plan_points or points()
    plan = [(rep, point) for rep in range(repetitions) for point in chosen]
    runs: dict[Point, list[dict[str, Any]]] = {p: [] for p in chosen}
    skipped: list[str] = []
    started = time.monotonic()
    for index, (rep, point) in enumerate(plan):
        elapsed = time.monotonic() - started
        label = f"{point_key(asdict(point))}, repetition {rep + 1}"
        if elapsed > budget:
            skipped.append(label)
            continue
        eta = elapsed / index * (len(plan) - index) if index else float("nan")
        print(f"[{index + 1}/{len(plan)}, {_clock(elapsed)} elapsed"
              + (f", ~{_clock(eta)} to go" if index else "") + f"] {label}",
              file=sys.stderr, flush=True)
        warmup, measure = (w * scale for w in windows(point))
        runtime = run_runtime(point, loops, warmup, measure)
        peers = run_peers(point, loops, warmup, measure)
        runs[point].append({"runtime": runtime, "peers": peers,
                            "loadavg": list(os.getloadavg())})
    driver_cpu, executor_cpu = _cpus()
    return {
        "config": {"repetitions": repetitions, "budget_s": budget, "loops_per_record": loops,
                   "stream_ms": Point().stream_ms, "headline_batch_ms": HEADLINE_BATCH_MS,
                   "headline_rate": HEADLINE_RATE, "executor_cpu": executor_cpu,
                   "driver_cpu": driver_cpu},
        "points": [
            {"point": asdict(point), "warmup_s": windows(point)[0],
             "measure_s": windows(point)[1],
             "records_per_task": {"batch": point.batch_records,
                                  "stream": records_for(point.stream_ms)},
             "aggregate": aggregate(point_runs), "runs": point_runs}
            for point, point_runs in runs.items() if point_runs
        ],
        "skipped": skipped,
        "machine": machine(),
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def main(args: argparse.Namespace) -> int:
    from .plots import write_plots

    os.makedirs(args.out, exist_ok=True)
    result = run_suite(args.repetitions, args.budget)
    json_path = os.path.join(args.out, "full.json")
    with open(json_path, "w") as handle:
        json.dump(result, handle, indent=1)
    report = markdown(result)
    pngs = write_plots(result, args.out)
    report += "\n" + "\n".join(f"![{os.path.basename(p)}]({os.path.basename(p)})"
                               for p in pngs) + "\n"
    with open(os.path.join(args.out, "full.md"), "w") as handle:
        handle.write(report)
    print(report)
    print(f"wrote {json_path}, full.md and {len(pngs)} plot(s) in {args.out} "
          f"in {_clock(result['elapsed_s'])}", file=sys.stderr)
    return 0
