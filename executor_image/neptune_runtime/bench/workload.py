"""The benchmark's application (DESIGN.md section 7), configured by environment variables.

Batch tasks of ~BENCH_BATCH_MS of pure-Python work (records of ~10 us each); stream tasks of
~BENCH_STREAM_MS arriving as a Poisson process at BENCH_RATE per second. BENCH_MODE picks
"both", "stream" or "batch". The per-record work is the same function everywhere, so peers can
run exactly the same work.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from neptune_runtime import App, TaskContext, sources

RECORD_US = 10.0
MODE = os.environ.get("BENCH_MODE", "both")
BATCH_MS = float(os.environ.get("BENCH_BATCH_MS", "100"))
STREAM_MS = float(os.environ.get("BENCH_STREAM_MS", "1"))
RATE = float(os.environ.get("BENCH_RATE", "20"))
LOOPS = int(os.environ.get("BENCH_LOOPS", "0")) or None  # calibrated iterations per record
BATCH_RECORDS = max(1, round(BATCH_MS * 1000 / RECORD_US))
STREAM_RECORDS = max(1, round(STREAM_MS * 1000 / RECORD_US))


def work(seed: int, loops: int) -> int:
    """~10 us of pure-Python CPU work for the calibrated `loops`."""
    acc = seed
    for i in range(loops):
        acc = (acc * 31 + i) & 0xFFFF
    return acc


def calibrate(target_us: float = RECORD_US) -> int:
    import time

    loops = 50
    while True:
        start = time.perf_counter()
        for _ in range(200):
            work(1, loops)
        per_call = (time.perf_counter() - start) / 200 * 1e6
        if per_call > 2.0:
            return max(1, round(loops * target_us / per_call))
        loops *= 2


_loops = LOOPS


def _get_loops() -> int:
    global _loops
    if _loops is None:
        _loops = calibrate()
    return _loops


def read(partition: int, epoch: int) -> range:
    return range(BATCH_RECORDS)


def batch_task(ctx: TaskContext, records: Iterator[int]) -> int:
    loops = _get_loops()
    acc = 0
    for record in records:
        acc ^= work(record, loops)
    return acc


def stream_task(ctx: TaskContext, events: Iterator[Any]) -> list[int]:
    loops = _get_loops()
    out = []
    for event in events:
        acc = 0
        for record in range(STREAM_RECORDS):
            acc ^= work(record + event, loops)
        out.append(acc)
    return out


app = App("bench")
if MODE in ("both", "batch"):
    app.batch_job("batch", read=read, task=batch_task, partitions=4, cache_partitions=False)
if MODE in ("both", "stream"):
    app.stream_job(
        "stream",
        source=sources.Synthetic(rate=RATE, make=lambda p, i, rng: i, seed=11),
        task=stream_task,
        slo="10ms",
    )
