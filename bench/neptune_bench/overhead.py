"""Yield-point overhead, measured in one process by alternating the same batch task with and
without the yield-point wrapper. The wrapper checks what an executor on the driver's host
checks (a real doorbell, and a real socket now and then), so the figure includes all of it;
alternating spreads drift of the machine's speed over both."""

from __future__ import annotations

import os
import socket
import statistics
import time
from collections.abc import Iterator

from neptune_runtime import yieldpoint
from neptune_runtime.doorbell import Bell

from . import work as workload


def _run(records: Iterator[int], loops: int) -> float:
    start = time.perf_counter()
    acc = 0
    for record in records:
        acc ^= workload.work(record, loops)
    return time.perf_counter() - start


def yield_overhead(loops: int, records: int, repetitions: int = 21, cpu: int | None = None,
                   polling: yieldpoint.Settings = yieldpoint.DEFAULTS) -> dict[str, float]:
    """Throughput with/without yield points: `best`, the ratio of each variant's fastest run
    (noise only ever adds time, so the fastest run is the closest to the code's own cost), and
    the median and spread of the per-pair ratios. On `cpu` when given, as an executor is."""
    left, right = socket.socketpair()
    bell = Bell()
    yieldpoint.install(lambda: None, fd=left.fileno(), interval_us=polling.poll_us,
                       bell=bell.mapping)
    affinity = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        plain_s, wrapped_s = [], []
        for _ in range(repetitions):
            plain_s.append(_run(iter(range(records)), loops))
            yieldpoint.task_switched_in()
            wrapped_s.append(_run(yieldpoint.yielding(range(records)), loops))
    finally:
        os.sched_setaffinity(0, affinity)
        yieldpoint.install(None)
        left.close()
        right.close()
        bell.close()
    ratios = sorted(p / w for p, w in zip(plain_s, wrapped_s, strict=True))
    return {"best": min(plain_s) / min(wrapped_s), "median": statistics.median(ratios),
            "min": ratios[0], "max": ratios[-1], "pairs": float(len(ratios))}
