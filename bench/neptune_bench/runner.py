"""`neptunectl bench`: the suspension benchmark of DESIGN.md section 7, side by side in one run.

Scenarios, each a real driver and one real executor process (executor pinned to one core, the
driver to another): stream alone, batch alone, then both under each policy. After a warm-up the
driver's live figures are reset and read again at the end of the measured window.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from neptune_runtime import hotpath, yieldpoint
from neptune_runtime.policies import POLICIES
from neptune_runtime.processes import LocalCluster

from . import floor, overhead, workload
from .peers import PEERS, run_peer
from .peers.common import PeerConfig
from .report import check_targets, markdown
from .summary import bucket_cdf, histogram_buckets, peer_figures
from .work import calibrate, records_for

WORKLOAD = "neptune_bench.workload"
# The suspension latency's p99 is a target, so the quick run measures neptune longer than the
# rest: at 20 events/s 5 s hold ~100 preemptions, whose p99 is their maximum; 10 s hold ~200,
# whose p99 is the third largest.
QUICK_NEPTUNE_MEASURE_S = 10.0


def _cpus() -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[-1]  # driver, executor


def _scrape(cluster: LocalCluster) -> str:
    with urllib.request.urlopen(cluster.http + "/metrics", timeout=5) as response:
        text: str = response.read().decode()
        return text


def run_scenario(name: str, mode: str, policy: str, env: dict[str, str], warmup: float,
                 measure: float, log: Any, executors: int = 1,
                 pin: bool = True) -> dict[str, Any]:
    """One real run; `pin=False` leaves placement to the kernel (several sleeping executors)."""
    driver_cpu, executor_cpu = _cpus() if pin else (None, None)
    cluster = LocalCluster(WORKLOAD, executors=executors, policy=policy,
                           env={**env, "BENCH_MODE": mode}, log=log,
                           executor_cpus=None if executor_cpu is None else [executor_cpu],
                           driver_cpu=driver_cpu)
    print(f"  {name:<16} warm-up {warmup:.0f}s, measure {measure:.0f}s ...", end="",
          file=sys.stderr, flush=True)
    with cluster:
        time.sleep(warmup)
        cluster.post("/admin/reset-stats")
        # the histogram is cumulative: the difference of two scrapes is the measured window's
        before = _scrape(cluster)
        # tasks_finished survives the reset: the window's tasks and records are differences
        # from one status read, so that a task ending around the reset is counted in both or
        # in neither
        start = cluster.status()["jobs"].get("batch", {})
        time.sleep(measure)
        status = cluster.status()
        after = _scrape(cluster)
    stream = status["jobs"].get("stream", {})
    batch = status["jobs"].get("batch", {})
    series = ("neptune_stream_latency_seconds", 'job="stream"')
    result = {
        "policy": policy,
        "mode": mode,
        "stream_p50_ms": stream.get("p50_ms"),
        "stream_p99_ms": stream.get("p99_ms"),
        "stream_max_ms": stream.get("max_ms"),
        "stream_events": stream.get("records"),
        "batch_records": (batch["records"] - start["records"]) if batch else None,
        "batch_tasks": (batch["tasks_finished"] - start["tasks_finished"]) if batch else None,
        "batch_records_per_s": ((batch["records"] - start["records"]) / measure
                                if batch else None),
        "suspensions": batch.get("suspensions", 0),
        "wasted_task_seconds": status["wasted_task_seconds"],
        "send_to_start_us": status["preemption"]["send_to_start_us"],
        "arrival_to_start_us": status["preemption"]["arrival_to_start_us"],
        "stream_latency_cdf": bucket_cdf(histogram_buckets(before, *series),
                                         histogram_buckets(after, *series)),
    }
    print(" done", file=sys.stderr, flush=True)
    return result


@dataclass(frozen=True)
class Point:
    """One configuration of the workload."""

    batch_ms: float = workload.BATCH_MS
    stream_ms: float = workload.STREAM_MS
    rate: float = workload.RATE

    def env(self, loops: int) -> dict[str, str]:
        return {"BENCH_LOOPS": str(loops), "BENCH_BATCH_MS": str(self.batch_ms),
                "BENCH_STREAM_MS": str(self.stream_ms), "BENCH_RATE": str(self.rate)}


def run_runtime(point: Point, loops: int, warmup: float, measure: float,
                policies: tuple[str, ...] = tuple(POLICIES),
                neptune_measure: float | None = None) -> dict[str, dict[str, Any]]:
    """Stream alone, batch alone and each policy on our runtime, at one workload point
    (neptune for `neptune_measure` seconds, when given)."""
    env = point.env(loops)
    scenarios: dict[str, dict[str, Any]] = {}
    with open(os.devnull, "w") as log:
        scenarios["stream_alone"] = run_scenario("stream alone", "stream", "fifo", env, warmup,
                                                 measure, log)
        scenarios["batch_alone"] = run_scenario("batch alone", "batch", "fifo", env, warmup,
                                                measure, log)
        for policy in policies:
            window = neptune_measure if policy == "neptune" and neptune_measure else measure
            scenarios[policy] = run_scenario(policy, "both", policy, env, warmup, window, log)
    return scenarios


def run_peers(point: Point, loops: int, warmup: float, measure: float,
              names: tuple[str, ...] = PEERS,
              phases: tuple[str, ...] = ("batch", "both")) -> dict[str, dict[str, Any]]:
    """Each peer at one workload point, on the same cores as our driver and executor."""
    driver_cpu, executor_cpu = _cpus()
    cfg = PeerConfig(loops=loops, batch_records=records_for(point.batch_ms),
                     stream_records=records_for(point.stream_ms), rate=point.rate,
                     warmup=warmup, measure=measure, executor_cpu=executor_cpu,
                     driver_cpu=driver_cpu, phases=phases, batch_ms=point.batch_ms)
    out = {}
    for name in names:
        print(f"  peer {name:<11} warm-up {warmup:.0f}s, measure {measure:.0f}s per phase ...",
              end="", file=sys.stderr, flush=True)
        raw = run_peer(name, cfg)
        out[name] = peer_figures(raw, cfg.batch_records, cfg.stream_records)
        print(" FAILED" if out[name].get("failed") else " done", file=sys.stderr, flush=True)
    return out


def run(quick: bool, peers: bool = False) -> dict[str, Any]:
    warmup, measure = (1.0, 5.0) if quick else (3.0, 20.0)
    loops = calibrate()
    point = Point()
    print(f"neptunectl bench: {'quick' if quick else 'full'}; {loops} loops per ~10 us record, "
          f"batch tasks ~{point.batch_ms:.0f} ms, stream tasks ~{point.stream_ms:.0f} ms "
          f"at {point.rate:.0f}/s (Poisson)", file=sys.stderr)
    started = time.monotonic()
    neptune_measure = QUICK_NEPTUNE_MEASURE_S if quick else None
    scenarios = run_runtime(point, loops, warmup, measure, neptune_measure=neptune_measure)
    print("  yield-point overhead (in-process A/B) ...", end="", file=sys.stderr, flush=True)
    yield_cost = overhead.yield_overhead(loops, workload.BATCH_RECORDS,
                                         cpu=_cpus()[1], polling=yieldpoint.Settings.from_env())
    print(" done", file=sys.stderr)
    driver_cpu, executor_cpu = _cpus()
    floor_us: dict[str, Any] = {}
    if driver_cpu is not None and executor_cpu is not None:
        print("  signal floor (busy-polling receiver) ...", end="", file=sys.stderr, flush=True)
        floor_us = floor.signal_floor((driver_cpu, executor_cpu))
        print(" done", file=sys.stderr)
    print("  record times, no runtime ...", end="", file=sys.stderr, flush=True)
    record_us = floor.record_times(executor_cpu, loops)
    print(" done", file=sys.stderr)
    alone = scenarios["batch_alone"]["batch_records_per_s"] or 1.0
    neptune = scenarios["neptune"]
    result: dict[str, Any] = {
        "suspension_latency_us": {k: neptune["send_to_start_us"][k] for k in ("p50", "p99", "max")},
        "suspension_arrival_to_start_us": {
            k: neptune["arrival_to_start_us"][k] for k in ("p50", "p99", "max")},
        "stream_alone": {"stream_p50_ms": scenarios["stream_alone"]["stream_p50_ms"],
                         "stream_p99_ms": scenarios["stream_alone"]["stream_p99_ms"]},
        "yield_overhead_rel": yield_cost["best"],
        "yield_overhead_spread": yield_cost,
        "signal_floor_us": floor_us,
        "record_times_us": record_us,
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
    }
    if peers:
        result["peers"] = run_peers(point, loops, warmup, measure)
    result.update({
        "config": {"quick": quick, "warmup_s": warmup, "measure_s": measure,
                   "neptune_measure_s": neptune_measure or measure,
                   "loops_per_record": loops, "batch_ms": point.batch_ms,
                   "stream_ms": point.stream_ms, "rate_per_s": point.rate,
                   "batch_records_per_task": records_for(point.batch_ms),
                   "stream_records_per_task": records_for(point.stream_ms),
                   "executor_cpu": _cpus()[1], "driver_cpu": _cpus()[0],
                   "polling_us": dataclasses.asdict(yieldpoint.Settings.from_env()),
                   "warm_us": hotpath.warm_from_env()},
        "machine": machine(),
        "elapsed_s": round(time.monotonic() - started, 1),
    })
    result["targets"] = check_targets(result)
    return result


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_at_end": list(os.getloadavg())}


def main(args: argparse.Namespace) -> int:
    if getattr(args, "full", False):
        from .suite import main as suite_main

        return suite_main(args)
    result = run(quick=args.quick, peers=getattr(args, "peers", False))
    table = markdown(result)
    print(table)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(table + "\n")
    return 0
