"""What every peer shares: its configuration, the task functions, pinning and the phase timing.

A peer runs in its own process (`python -m neptune_bench.peers.NAME CONFIG_JSON`) and
prints one JSON document on its last stdout line. Each phase (batch alone, both, optionally
stream alone) has a warm-up that is excluded, then a measured window:
- stream latency: from the event's scheduled arrival time, Poisson or in bursts (not the time
  the submitter got round to it, so a late submitter counts against its system) to the result
  being back in the submitting process;
- batch throughput: records of batch tasks that ended inside the window, per second. Tasks
  append `end_time records` to a file; CLOCK_MONOTONIC is one clock for all processes of a host.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..work import BURST_EVERY_S, BURST_SIZE, burst_offsets, coarse_work, work

Done = Callable[[int], None]  # called with the records processed, in any thread


@dataclass(frozen=True)
class PeerConfig:
    loops: int
    batch_records: int
    stream_records: int
    rate: float
    warmup: float
    measure: float
    executor_cpu: int | None = None
    driver_cpu: int | None = None
    seed: int = 11
    phases: tuple[str, ...] = ("batch", "both")
    grace: float = 3.0  # how long to wait after the window for stream events still running
    batch_ms: float = 100.0
    workdir: str = "/tmp"
    # spark_fair: "microbatch" (the events that arrived while the previous stream job ran make
    # the next job, as Structured Streaming's default trigger does) or "per_event" (a job each)
    stream_mode: str = "microbatch"
    # issue 15's shapes: "poisson" or "bursts" (`burst` events every `burst_every` s); batch
    # records "python" (~10 us) or "sha256" (a ~25 ms GIL-releasing C call, work.coarse_work)
    arrival: str = "poisson"
    burst: int = BURST_SIZE
    burst_every: float = BURST_EVERY_S
    batch_record: str = "python"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> PeerConfig:
        raw = json.loads(text)
        raw["phases"] = tuple(raw["phases"])
        return PeerConfig(**raw)


def pin_thread(cpu: int | None) -> None:
    """Pin the calling thread (Linux: pid 0 is the calling thread, not the whole process)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def pin_process(cpu: int | None) -> None:
    """Pin every thread this process has now; threads started later inherit it from theirs."""
    if cpu is None:
        return
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that just ended
            os.sched_setaffinity(int(tid), {cpu})


def _records(seed: int, records: int, loops: int, kind: str = "python") -> tuple[int, int]:
    """`records` records of `work` (or of `coarse_work` for kind "sha256"), counted: the same
    work and count in every peer."""
    counted = 0
    acc = 0
    for record in range(records):
        acc ^= coarse_work(record + seed) if kind == "sha256" else work(record + seed, loops)
        counted += 1
    return counted, acc


def batch_task(seed: int, records: int, loops: int, log_path: str, cpu: int | None,
               kind: str = "python") -> int:
    """One batch task: `records` records of `work` (`kind` "python") or of `coarse_work`
    ("sha256"); logs its end time and the records counted."""
    pin_thread(cpu)
    counted, acc = _records(seed, records, loops, kind)
    # one small O_APPEND write per task is atomic, so concurrent writers never interleave
    with open(log_path, "a") as log:
        log.write(f"{time.monotonic()} {counted} {acc}\n")
    return counted


def stream_task(seed: int, records: int, loops: int, cpu: int | None) -> int:
    """One stream task: `records` records of `work`; returns the records counted."""
    pin_thread(cpu)
    counted, acc = _records(seed, records, loops)
    return counted if acc >= 0 else -1  # use acc so the work cannot be skipped


def poisson_arrivals(rate: float, duration: float, seed: int) -> list[float]:
    """Offsets (s) of a Poisson process of `rate` per second over `duration`; deterministic."""
    if rate <= 0:
        return []
    rng = random.Random(seed)
    out: list[float] = []
    t = rng.expovariate(rate)
    while t < duration:
        out.append(t)
        t += rng.expovariate(rate)
    return out


def arrivals(cfg: PeerConfig, duration: float, seed: int) -> list[float]:
    """The phase's stream arrival offsets (s): Poisson at cfg.rate, or cfg's bursts."""
    if cfg.arrival == "bursts":
        return burst_offsets(cfg.burst, cfg.burst_every, duration)
    return poisson_arrivals(cfg.rate, duration, seed)


def read_batch_log(path: str) -> list[tuple[float, int]]:
    if not os.path.exists(path):
        return []
    out = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out.append((float(parts[0]), int(parts[1])))
    return out


class System(Protocol):
    """What a peer implements; `start_batch` keeps batch tasks queued until `stop_batch`."""

    def prime(self) -> None: ...
    def start_batch(self, log_path: str, tasks_hint: int) -> None: ...
    def stop_batch(self) -> None: ...
    def submit_stream(self, seed: int, done: Done) -> None: ...


@dataclass
class PhaseRecord:
    """Raw observations of one phase (summarised by bench.summary)."""

    mode: str
    t0: float
    t1: float
    ended: float = 0.0  # when we stopped waiting: unfinished events count as at least this late
    stream: list[tuple[float, float | None, int]] = field(default_factory=list)  # arrival, end, n
    batch: list[tuple[float, int]] = field(default_factory=list)  # end, records


def run_phase(system: System, mode: str, cfg: PeerConfig, index: int) -> PhaseRecord:
    start = time.monotonic() + 0.2
    t0, t1 = start + cfg.warmup, start + cfg.warmup + cfg.measure
    record = PhaseRecord(mode, t0, t1)
    log_path = os.path.join(cfg.workdir, f"batch-{os.getpid()}-{index}.log")
    if mode in ("batch", "both"):
        tasks = int((cfg.warmup + cfg.measure + cfg.grace + 5) * 1000 / max(cfg.batch_ms, 1.0))
        system.start_batch(log_path, tasks * 2 + 8)
    lock = threading.Lock()
    events: list[tuple[float, float | None, int]] = []  # arrival, end (None: unfinished), records
    pending = 0
    settled = threading.Event()
    settled.set()

    def submit_all() -> None:
        nonlocal pending
        offsets = arrivals(cfg, cfg.warmup + cfg.measure, cfg.seed + index)
        for i, offset in enumerate(offsets):
            arrival = start + offset
            delay = arrival - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with lock:
                events.append((arrival, None, 0))
                position = len(events) - 1
                pending += 1
                settled.clear()

            def done(n: int, arrival: float = arrival, position: int = position) -> None:
                nonlocal pending
                end = time.monotonic()
                with lock:
                    events[position] = (arrival, end, n)
                    pending -= 1
                    if pending == 0:
                        settled.set()

            system.submit_stream(i, done)

    submitter = None
    if mode in ("stream", "both"):
        submitter = threading.Thread(target=submit_all, daemon=True)
        submitter.start()
    time.sleep(max(0.0, t1 - time.monotonic()))
    if submitter is not None:
        submitter.join(timeout=cfg.grace)
        settled.wait(timeout=cfg.grace)
    record.ended = time.monotonic()
    if mode in ("batch", "both"):
        system.stop_batch()
    record.batch = read_batch_log(log_path)
    with lock:  # a copy: completions after this point must not change what we report
        record.stream = list(events)
    return record


S = TypeVar("S", bound=System)


def main_for(make: Callable[[PeerConfig], tuple[S, dict[str, Any]]],
             close: Callable[[S], None]) -> None:
    """Entry point of a peer process: run the phases, print the JSON of the raw records."""
    from ..summary import phase_summary

    cfg = PeerConfig.from_json(sys.argv[1])
    pin_process(cfg.driver_cpu)
    system, info = make(cfg)
    phases: dict[str, Any] = {}
    try:
        # start-up work (worker processes, imports, JIT) before any phase: not measured
        primed = time.monotonic()
        system.prime()
        info["prime_s"] = round(time.monotonic() - primed, 2)
        for index, mode in enumerate(cfg.phases):
            print(f"peer phase {mode}", file=sys.stderr, flush=True)
            raw = run_phase(system, mode, cfg, index)
            phases[mode] = phase_summary(raw.stream, raw.batch, raw.t0, raw.t1, raw.ended)
    finally:
        close(system)
    print(json.dumps({"info": info, "phases": phases}), flush=True)
