"""Sliding windows of samples for the live figures in /status (pure, no locks)."""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from typing import Any


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100); 0.0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": percentile(ordered, 50),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else 0.0,
        "count": float(len(ordered)),
    }


class Window:
    """The samples of the last `seconds`, at most `limit` of them."""

    def __init__(self, seconds: float = 60.0, limit: int = 20000) -> None:
        self.seconds = seconds
        self._samples: deque[tuple[float, float]] = deque(maxlen=limit)

    def add(self, now: float, value: float) -> None:
        self._samples.append((now, value))

    def values(self, now: float) -> list[float]:
        while self._samples and self._samples[0][0] < now - self.seconds:
            self._samples.popleft()
        return [v for _, v in self._samples]

    def clear(self) -> None:
        self._samples.clear()


class Slowest:
    """The `n` items of largest key added since the last clear (a tail, one by one)."""

    def __init__(self, n: int = 5) -> None:
        self.n = n
        self._heap: list[tuple[float, int, Any]] = []
        self._order = itertools.count()  # equal keys: no comparison of the items

    def add(self, key: float, item: Any) -> None:
        entry = (key, next(self._order), item)
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, entry)
        elif key > self._heap[0][0]:
            heapq.heapreplace(self._heap, entry)

    def items(self) -> list[Any]:
        """Largest key first."""
        return [item for _, _, item in sorted(self._heap, reverse=True)]

    def clear(self) -> None:
        self._heap.clear()


def preemption_split(send_to_start: float, arrival_to_start: float, noticed_ns: int | None,
                     span_ns: int | None, executor: str) -> dict[str, Any]:
    """One preemption's figures in us: driver send to start; of which on the executor, the
    kernel's arrival (or the express slot's) to start, and of that, arrival to the yield point
    that noticed the `run` (None where no yield point did: the hub took it); and the time
    since the tune before that yield point (well above the poll interval: the task ran no
    yield point meanwhile, and a late notice was the task's stall, not a missed poll)."""
    def us(ns: int | None) -> float | None:
        return None if ns is None else round(ns / 1e3, 1)

    return {"send_to_start_us": round(send_to_start * 1e6, 1),
            "arrival_to_start_us": round(arrival_to_start * 1e6, 1),
            "arrival_to_notice_us": us(noticed_ns), "notice_span_us": us(span_ns),
            "executor": executor}


class Rate:
    """Events per second over the last `seconds`."""

    def __init__(self, seconds: float = 10.0) -> None:
        self.seconds = seconds
        self._marks: deque[tuple[float, int]] = deque()

    def add(self, now: float, count: int = 1) -> None:
        self._marks.append((now, count))

    def per_second(self, now: float, started: float) -> float:
        while self._marks and self._marks[0][0] < now - self.seconds:
            self._marks.popleft()
        span = min(self.seconds, max(now - started, 1e-9))
        return sum(c for _, c in self._marks) / span

    def clear(self) -> None:
        self._marks.clear()
