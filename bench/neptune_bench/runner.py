"""`neptunectl bench`: the suspension benchmark of DESIGN.md section 7, side by side in one run.

Scenarios, each a real driver and one real executor process (executor pinned to one core, the
driver to another): stream alone, batch alone, then both under each policy. After a warm-up the
driver's live figures are reset and read again at the end of the measured window.

Shapes: the kind one (Poisson events, ~10 us pure-Python batch records) gives the report's
headline; issue 15's two (`SHAPES`: bursts of 20 events every 0.5 s, with those records and with
~25 ms C-call records) follow it, each with stream alone, batch alone, every policy and the
os_priority peer. BENCH_SHAPES (comma-separated names, "none" for none) picks which of them run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import neptune_runtime
from neptune_runtime import hotpath, yieldpoint
from neptune_runtime.policies import POLICIES
from neptune_runtime.processes import LocalCluster

from . import floor, overhead, steal, workload
from .peers import PEERS, run_peer
from .peers.common import PeerConfig
from .report import check_targets, markdown
from .summary import bucket_cdf, histogram_buckets, ledger_counts, peer_figures
from .work import (
    BURST_EVERY_S,
    BURST_SIZE,
    COARSE_RECORD_MS,
    COARSE_RECORDS,
    calibrate,
    coarse_work,
    records_for,
)

WORKLOAD = "neptune_bench.workload"
# The suspension latency's p99 is a target, so the quick run measures neptune longer than the
# rest: at 20 events/s 5 s hold ~100 preemptions, whose p99 is their maximum; 10 s hold ~200,
# whose p99 is the third largest.
QUICK_NEPTUNE_MEASURE_S = 10.0
# After the window, how long the ledger is given for the window's last events to be answered
# (fifo can hold a burst behind whole batch tasks); one still unanswered then counts as lost.
LEDGER_GRACE_S = 5.0


def _cpus() -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[-1]  # driver, executor


def _scrape(cluster: LocalCluster) -> str:
    with urllib.request.urlopen(cluster.http + "/metrics", timeout=5) as response:
        text: str = response.read().decode()
        return text


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def _answered(path: str, t0: float, t1: float, grace: float) -> dict[str, Any]:
    """The ledger's counts for the window [t0, t1], once every event of it is answered or
    `grace` seconds have passed."""
    deadline = time.monotonic() + grace
    while True:
        counts = ledger_counts(_read(path), t0, t1)
        if counts["lost"] == 0 or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def run_scenario(name: str, mode: str, policy: str, env: dict[str, str], warmup: float,
                 measure: float, log: Any, executors: int = 1,
                 pin: bool = True, ledger: bool = False) -> dict[str, Any]:
    """One real run; `pin=False` leaves placement to the kernel (several sleeping executors);
    `ledger` has the driver write every event and result down (workload.Ledger), and the run
    counts the window's events in and results out."""
    driver_cpu, executor_cpu = _cpus() if pin else (None, None)
    tmp = tempfile.TemporaryDirectory(prefix="neptune-bench-")
    ledger_path = os.path.join(tmp.name, "ledger") if ledger and mode != "batch" else ""
    cluster = LocalCluster(WORKLOAD, executors=executors, policy=policy,
                           env={**env, "BENCH_MODE": mode, "BENCH_LEDGER": ledger_path},
                           log=log,
                           executor_cpus=None if executor_cpu is None else [executor_cpu],
                           driver_cpu=driver_cpu)
    print(f"  {name:<16} warm-up {warmup:.0f}s, measure {measure:.0f}s ...", end="",
          file=sys.stderr, flush=True)
    counts: dict[str, Any] | None = None
    with tmp, cluster:
        time.sleep(warmup)
        cluster.post("/admin/reset-stats")
        t0 = time.monotonic()
        # the histogram is cumulative: the difference of two scrapes is the measured window's
        before = _scrape(cluster)
        # tasks_finished survives the reset: the window's tasks and records are differences
        # from one status read, so that a task ending around the reset is counted in both or
        # in neither
        start = cluster.status()["jobs"].get("batch", {})
        stolen_before = steal.steal_seconds(executor_cpu)
        time.sleep(measure)
        t1 = time.monotonic()
        ours = steal.available(measure, stolen_before, steal.steal_seconds(executor_cpu))
        status = cluster.status()
        after = _scrape(cluster)
        if ledger_path:
            counts = _answered(ledger_path, t0, t1, LEDGER_GRACE_S)
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
        # per second of the executor's core that the hypervisor left us (steal.py)
        "batch_records_per_s": ((batch["records"] - start["records"]) / ours
                                if batch else None),
        "batch_records_per_wall_s": ((batch["records"] - start["records"]) / measure
                                     if batch else None),
        "executor_steal_fraction": round(1 - ours / measure, 4),
        "suspensions": batch.get("suspensions", 0),
        # per batch task, the longest time between two of its yield points (/status)
        "yield_interval_ms": batch.get("yield_interval_ms"),
        "ledger": counts,
        "warnings": status.get("warnings", []),  # the coarse-records one, for instance
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
    """One configuration of the workload: its shape (arrivals, batch records) and sizes.

    `rate` is the Poisson rate, or for bursts their mean rate (burst / burst_every); for
    "sha256" records `batch_ms` is the nominal task length (COARSE_RECORDS records of ~25 ms),
    the records a task are COARSE_RECORDS whatever it says."""

    batch_ms: float = workload.BATCH_MS
    stream_ms: float = workload.STREAM_MS
    rate: float = workload.RATE
    arrival: str = "poisson"
    burst: int = BURST_SIZE
    burst_every: float = BURST_EVERY_S
    batch_record: str = "python"

    @property
    def batch_records(self) -> int:
        return COARSE_RECORDS if self.batch_record == "sha256" else records_for(self.batch_ms)

    def env(self, loops: int) -> dict[str, str]:
        return {"BENCH_LOOPS": str(loops), "BENCH_BATCH_MS": str(self.batch_ms),
                "BENCH_STREAM_MS": str(self.stream_ms), "BENCH_RATE": str(self.rate),
                "BENCH_ARRIVAL": self.arrival, "BENCH_BURST": str(self.burst),
                "BENCH_BURST_EVERY": str(self.burst_every),
                "BENCH_BATCH_RECORD": self.batch_record}


def bursts(batch_record: str = "python") -> Point:
    """Issue 15's shape: bursts of 20 events every 0.5 s (40/s on average), per-event tasks."""
    batch_ms = COARSE_RECORDS * COARSE_RECORD_MS if batch_record == "sha256" else 100.0
    return Point(batch_ms=batch_ms, rate=BURST_SIZE / BURST_EVERY_S, arrival="bursts",
                 batch_record=batch_record)


SHAPES = {"bursts": bursts("python"), "bursts_sha256": bursts("sha256")}


def label(point: Point) -> str:
    """The shape of a point, in words (for reports and progress)."""
    arrivals = (f"bursts of {point.burst} every {point.burst_every:g} s" if point.arrival
                == "bursts" else f"Poisson {point.rate:g}/s")
    records = (f"{COARSE_RECORDS} sha256 records of ~{COARSE_RECORD_MS:g} ms a batch task"
               if point.batch_record == "sha256"
               else f"~{point.batch_ms:g} ms batch tasks of ~10 us records")
    return f"{arrivals}, {records}"


def run_runtime(point: Point, loops: int, warmup: float, measure: float,
                policies: tuple[str, ...] = tuple(POLICIES),
                neptune_measure: float | None = None) -> dict[str, dict[str, Any]]:
    """Stream alone, batch alone and each policy on our runtime, at one workload point
    (neptune for `neptune_measure` seconds, when given)."""
    env = point.env(loops)
    scenarios: dict[str, dict[str, Any]] = {}
    with open(os.devnull, "w") as log:
        scenarios["stream_alone"] = run_scenario("stream alone", "stream", "fifo", env, warmup,
                                                 measure, log, ledger=True)
        scenarios["batch_alone"] = run_scenario("batch alone", "batch", "fifo", env, warmup,
                                                measure, log)
        for policy in policies:
            window = neptune_measure if policy == "neptune" and neptune_measure else measure
            scenarios[policy] = run_scenario(policy, "both", policy, env, warmup, window, log,
                                             ledger=True)
    return scenarios


def run_peers(point: Point, loops: int, warmup: float, measure: float,
              names: tuple[str, ...] = PEERS,
              phases: tuple[str, ...] = ("batch", "both")) -> dict[str, dict[str, Any]]:
    """Each peer at one workload point, on the same cores as our driver and executor."""
    driver_cpu, executor_cpu = _cpus()
    cfg = PeerConfig(loops=loops, batch_records=point.batch_records,
                     stream_records=records_for(point.stream_ms), rate=point.rate,
                     warmup=warmup, measure=measure, executor_cpu=executor_cpu,
                     driver_cpu=driver_cpu, phases=phases, batch_ms=point.batch_ms,
                     arrival=point.arrival, burst=point.burst, burst_every=point.burst_every,
                     batch_record=point.batch_record)
    out = {}
    for name in names:
        print(f"  peer {name:<11} warm-up {warmup:.0f}s, measure {measure:.0f}s per phase ...",
              end="", file=sys.stderr, flush=True)
        raw = run_peer(name, cfg)
        out[name] = peer_figures(raw, cfg.batch_records, cfg.stream_records)
        print(" FAILED" if out[name].get("failed") else " done", file=sys.stderr, flush=True)
    return out


def shape_names(chosen: str | None) -> list[str]:
    """The shapes BENCH_SHAPES names (all of SHAPES when unset, none for "none")."""
    if chosen is None:
        return list(SHAPES)
    names = [n.strip() for n in chosen.split(",") if n.strip() and n.strip() != "none"]
    unknown = [n for n in names if n not in SHAPES]
    if unknown:
        raise SystemExit(f"BENCH_SHAPES: unknown shape(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(SHAPES)} or none")
    return names


def run_shape(point: Point, loops: int, warmup: float, measure: float, peers: bool,
              neptune_measure: float | None = None) -> dict[str, Any]:
    """One of issue 15's shapes: our runtime (stream alone, batch alone, every policy) and,
    with `peers`, os_priority, whose kernel preemption interrupts even a C call."""
    print(f"shape: {label(point)}", file=sys.stderr, flush=True)
    shape: dict[str, Any] = {
        "label": label(point), "point": dataclasses.asdict(point),
        "records_per_task": {"batch": point.batch_records,
                             "stream": records_for(point.stream_ms)},
        "runtime": run_runtime(point, loops, warmup, measure, neptune_measure=neptune_measure),
        "peers": run_peers(point, loops, warmup, measure, names=("os_priority",))
        if peers else {},
    }
    if point.batch_record == "sha256":
        print("  sha256 records, no runtime ...", end="", file=sys.stderr, flush=True)
        shape["record_ms"] = floor.coarse_record_times(_cpus()[1], coarse_work)
        print(" done", file=sys.stderr)
    return shape


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
    result["shapes"] = {name: run_shape(SHAPES[name], loops, warmup, measure, peers,
                                        neptune_measure)
                        for name in shape_names(os.environ.get("BENCH_SHAPES"))}
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


def _git(directory: str, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code() -> dict[str, Any]:
    """Which runtime ran: its directory and, in a git checkout, the commit and how many of the
    runtime's files differ from it (other work in the same checkout changes what runs);
    BENCH_RUNTIME_FROM says where a runtime outside a checkout came from (an export of a
    commit, say)."""
    runtime = os.path.dirname(os.path.abspath(neptune_runtime.__file__))
    commit = _git(runtime, "rev-parse", "HEAD")
    changed = _git(runtime, "status", "--porcelain", "--", ".") if commit else None
    return {"runtime_dir": runtime, "commit": commit,
            "runtime_changed_files": None if changed is None else len(changed.splitlines()),
            "declared": os.environ.get("BENCH_RUNTIME_FROM")}


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_at_end": list(os.getloadavg()),
            "code": code()}


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
