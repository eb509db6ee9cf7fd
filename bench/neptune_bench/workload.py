"""The benchmark's application (DESIGN.md section 7), configured by environment variables.

Batch tasks of ~BENCH_BATCH_MS of pure-Python work (records of ~10 us each); stream tasks of
~BENCH_STREAM_MS arriving as a Poisson process at BENCH_RATE per second. BENCH_MODE picks
"both", "stream" or "batch". The per-record work is the same function everywhere, so peers can
run exactly the same work.

BENCH_WORK=sleep makes each record a sleep of BENCH_SLEEP_US (default 500) instead of CPU work:
the simulator's validation runs several executors on a machine with fewer cores, and a sleeping
record holds its executor's slot exactly as a computing one does without needing a core.
BENCH_PARTITIONS sets the batch job's partitions per epoch (default 4).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from neptune_bench.work import RECORD_US, calibrate, records_for, work
from neptune_runtime import App, TaskContext, sources

MODE = os.environ.get("BENCH_MODE", "both")
BATCH_MS = float(os.environ.get("BENCH_BATCH_MS", "100"))
STREAM_MS = float(os.environ.get("BENCH_STREAM_MS", "1"))
RATE = float(os.environ.get("BENCH_RATE", "20"))
LOOPS = int(os.environ.get("BENCH_LOOPS", "0")) or None  # calibrated iterations per record
SLEEP = os.environ.get("BENCH_WORK", "cpu") == "sleep"
SLEEP_US = float(os.environ.get("BENCH_SLEEP_US", "500"))
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "4"))
BATCH_RECORDS = records_for(BATCH_MS, SLEEP_US if SLEEP else RECORD_US)
STREAM_RECORDS = records_for(STREAM_MS, SLEEP_US if SLEEP else RECORD_US)

_loops = LOOPS


def _get_loops() -> int:
    global _loops
    if _loops is None:
        _loops = calibrate()
    return _loops


def _sleep_work(seed: int, loops: int) -> int:
    time.sleep(SLEEP_US / 1e6)
    return seed


_work = _sleep_work if SLEEP else work


def read(partition: int, epoch: int) -> range:
    return range(BATCH_RECORDS)


def batch_task(ctx: TaskContext, records: Iterator[int]) -> int:
    loops = _get_loops()
    acc = 0
    for record in records:
        acc ^= _work(record, loops)
    return acc


def stream_task(ctx: TaskContext, events: Iterator[Any]) -> list[int]:
    loops = _get_loops()
    out = []
    for event in events:
        acc = 0
        for record in range(STREAM_RECORDS):
            acc ^= _work(record + event, loops)
        out.append(acc)
    return out


app = App("bench")
if MODE in ("both", "batch"):
    app.batch_job("batch", read=read, task=batch_task, partitions=PARTITIONS,
                  cache_partitions=False)
if MODE in ("both", "stream"):
    app.stream_job(
        "stream",
        source=sources.Synthetic(rate=RATE, make=lambda p, i, rng: i, seed=11),
        task=stream_task,
        slo="10ms",
    )
