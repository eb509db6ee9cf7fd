"""Sliding windows of samples for the live figures in /status (pure, no locks)."""

from __future__ import annotations

import math
from collections import deque


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
