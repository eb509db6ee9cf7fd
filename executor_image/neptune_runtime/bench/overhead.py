"""Yield-point overhead, measured in one process by alternating the same batch task with and
without the yield-point wrapper. The wrapper polls a real socket, as in an executor, so the
figure includes the poll(2) calls; alternating cancels drift of the machine's speed."""

from __future__ import annotations

import select
import socket
import statistics
import time
from collections.abc import Iterator

from .. import yieldpoint
from . import work as workload


def _run(records: Iterator[int], loops: int) -> float:
    start = time.perf_counter()
    acc = 0
    for record in records:
        acc ^= workload.work(record, loops)
    return time.perf_counter() - start


def yield_overhead(loops: int, records: int, repetitions: int = 15) -> dict[str, float]:
    """Return the throughput ratio with/without yield points (median over pairs) and spread."""
    left, right = socket.socketpair()
    poller = select.poll()
    poller.register(left, select.POLLIN)
    yieldpoint.install(lambda: bool(poller.poll(0)), lambda: None)
    try:
        ratios = []
        for _ in range(repetitions):
            plain = _run(iter(range(records)), loops)
            yieldpoint.task_switched_in()
            wrapped = _run(yieldpoint.yielding(range(records)), loops)
            ratios.append(plain / wrapped)
    finally:
        yieldpoint.install(lambda: False, lambda: None)
        left.close()
        right.close()
    ordered = sorted(ratios)
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1],
            "pairs": float(len(ordered))}
