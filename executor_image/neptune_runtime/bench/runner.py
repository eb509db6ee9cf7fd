"""`neptunectl bench`: the suspension benchmark of DESIGN.md section 7, side by side in one run.

Scenarios, each a real driver and one real executor process (executor pinned to one core, the
driver to another): stream alone, batch alone, then both under each policy. After a warm-up the
driver's live figures are reset and read again at the end of the measured window.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

from ..policies import POLICIES
from ..processes import LocalCluster
from . import overhead, workload
from .report import check_targets, markdown

WORKLOAD = "neptune_runtime.bench.workload"


def _cpus() -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[-1]  # driver, executor


def run_scenario(name: str, mode: str, policy: str, env: dict[str, str], warmup: float,
                 measure: float, log: Any) -> dict[str, Any]:
    driver_cpu, executor_cpu = _cpus()
    cluster = LocalCluster(WORKLOAD, executors=1, policy=policy,
                           env={**env, "BENCH_MODE": mode}, log=log,
                           executor_cpus=None if executor_cpu is None else [executor_cpu],
                           driver_cpu=driver_cpu)
    print(f"  {name:<16} warm-up {warmup:.0f}s, measure {measure:.0f}s ...", end="",
          file=sys.stderr, flush=True)
    with cluster:
        time.sleep(warmup)
        cluster.post("/admin/reset-stats")
        time.sleep(measure)
        status = cluster.status()
    stream = status["jobs"].get("stream", {})
    batch = status["jobs"].get("batch", {})
    result = {
        "policy": policy,
        "mode": mode,
        "stream_p50_ms": stream.get("p50_ms"),
        "stream_p99_ms": stream.get("p99_ms"),
        "stream_max_ms": stream.get("max_ms"),
        "stream_events": stream.get("records"),
        "batch_records": batch.get("records"),
        "batch_records_per_s": (batch.get("records", 0) / measure) if batch else None,
        "suspensions": batch.get("suspensions", 0),
        "wasted_task_seconds": status["wasted_task_seconds"],
        "send_to_start_us": status["preemption"]["send_to_start_us"],
        "arrival_to_start_us": status["preemption"]["arrival_to_start_us"],
    }
    print(" done", file=sys.stderr, flush=True)
    return result


def run(quick: bool) -> dict[str, Any]:
    warmup, measure = (1.0, 5.0) if quick else (3.0, 20.0)
    loops = workload.calibrate()
    env = {"BENCH_LOOPS": str(loops), "BENCH_BATCH_MS": str(workload.BATCH_MS),
           "BENCH_STREAM_MS": str(workload.STREAM_MS), "BENCH_RATE": str(workload.RATE)}
    print(f"neptunectl bench: {'quick' if quick else 'full'}; {loops} loops per ~10 us record, "
          f"batch tasks ~{workload.BATCH_MS:.0f} ms, stream tasks ~{workload.STREAM_MS:.0f} ms "
          f"at {workload.RATE:.0f}/s (Poisson)", file=sys.stderr)
    started = time.monotonic()
    scenarios: dict[str, dict[str, Any]] = {}
    with open(os.devnull, "w") as log:
        scenarios["stream_alone"] = run_scenario("stream alone", "stream", "fifo", env, warmup,
                                                 measure, log)
        scenarios["batch_alone"] = run_scenario("batch alone", "batch", "fifo", env, warmup,
                                                measure, log)
        for policy in POLICIES:
            scenarios[policy] = run_scenario(policy, "both", policy, env, warmup, measure, log)
    print("  yield-point overhead (in-process A/B) ...", end="", file=sys.stderr, flush=True)
    yield_cost = overhead.yield_overhead(loops, workload.BATCH_RECORDS)
    print(" done", file=sys.stderr)
    alone = scenarios["batch_alone"]["batch_records_per_s"] or 1.0
    neptune = scenarios["neptune"]
    result: dict[str, Any] = {
        "suspension_latency_us": {k: neptune["send_to_start_us"][k] for k in ("p50", "p99", "max")},
        "suspension_arrival_to_start_us": {
            k: neptune["arrival_to_start_us"][k] for k in ("p50", "p99", "max")},
        "stream_alone": {"stream_p50_ms": scenarios["stream_alone"]["stream_p50_ms"],
                         "stream_p99_ms": scenarios["stream_alone"]["stream_p99_ms"]},
        "yield_overhead_rel": yield_cost["median"],
        "yield_overhead_spread": yield_cost,
        "policies": {
            policy: {
                "stream_p50_ms": scenarios[policy]["stream_p50_ms"],
                "stream_p99_ms": scenarios[policy]["stream_p99_ms"],
                "batch_throughput_rel": (scenarios[policy]["batch_records_per_s"] or 0) / alone,
                "wasted_task_seconds": scenarios[policy]["wasted_task_seconds"],
                "suspensions": scenarios[policy]["suspensions"],
            }
            for policy in POLICIES
        },
        "scenarios": scenarios,
        "config": {"quick": quick, "warmup_s": warmup, "measure_s": measure,
                   "loops_per_record": loops, "batch_ms": workload.BATCH_MS,
                   "stream_ms": workload.STREAM_MS, "rate_per_s": workload.RATE,
                   "poll_interval_us": int(os.environ.get("NEPTUNE_POLL_US", "50"))},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    result["targets"] = check_targets(result)
    return result


def main(args: argparse.Namespace) -> int:
    result = run(quick=args.quick)
    table = markdown(result)
    print(table)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(table + "\n")
    return 0
