"""Yield points: where a running task may be suspended.

A yield point counts down; every `stride` records it checks whether the driver sent something:
a poll(2) of the executor's socket with a zero timeout (~0.5 us), or, when the driver runs on
the same host and rings a doorbell (doorbell.py), a read of one shared byte (~40 ns), with the
socket polled once per CHECKS_PER_TUNE checks as well. If so it switches to the executor's hub
greenlet, which handles the message (maybe suspending this task for a stream task) and switches
back later. `stride` adapts so that checks happen every `interval_ns` of task time.

Why polling and not a notification: on the machines we measured, every cross-CPU wake-up (a
helper process blocked on the socket, SIGIO, a thread after a lowered GIL switch interval) took
80-200 us before the task could even notice; a poll finds the bytes the sender's CPU already
queued, so detection waits at most one interval. See docs/architecture.md for the figures.
No thread and no signal handler ever switches greenlets.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# 100 us: on the VM we measured, a poll costs ~2 us, so polling every 50 us cost 4% of batch
# throughput and every 100 us 2%, for 25 us more to notice a preemption on average.
DEFAULT_INTERVAL_US = 100
# A doorbell check is a shared-memory read (~40 ns, no system call): 2.5x as often, same cost.
DEFAULT_BELL_INTERVAL_US = 40
MAX_STRIDE = 1 << 20
# The clock, the stride and the slower checks once per this many checks (~0.5 us together).
CHECKS_PER_TUNE = 8


class _YieldState:
    def __init__(self) -> None:
        self.stride = MAX_STRIDE  # outside an executor yield points (almost) never poll
        self.countdown = MAX_STRIDE
        self.interval_ns = DEFAULT_INTERVAL_US * 1000
        self.checks = CHECKS_PER_TUNE
        self.last_tune_ns = 0
        self.pending: Callable[[], object] = lambda: False
        self.slow_pending: Callable[[], object] = lambda: False
        self.to_hub: Callable[[], object] = lambda: None


_state = _YieldState()


def microseconds_from_env(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, str(default))
    if not raw.isdigit() or int(raw) < minimum:
        what = "a positive number" if minimum else "a number (0: off)"
        raise ValueError(f"{name} must be {what} of microseconds, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    """How often a running task looks for the driver's messages, in microseconds of task time:
    `poll_us` with poll(2) on the socket, `bell_us` when the driver rings a doorbell
    (doorbell.py)."""

    poll_us: int = DEFAULT_INTERVAL_US
    bell_us: int = DEFAULT_BELL_INTERVAL_US

    @classmethod
    def from_env(cls) -> Settings:
        """NEPTUNE_POLL_US, NEPTUNE_BELL_POLL_US, or the defaults."""
        return cls(microseconds_from_env("NEPTUNE_POLL_US", DEFAULT_INTERVAL_US, 1),
                   microseconds_from_env("NEPTUNE_BELL_POLL_US", DEFAULT_BELL_INTERVAL_US, 1))


DEFAULTS = Settings()


def install(pending: Callable[[], object], to_hub: Callable[[], object],
            interval_us: int = DEFAULT_INTERVAL_US, *,
            slow_pending: Callable[[], object] | None = None) -> None:
    """Called by the executor: how to tell that the hub has work (`pending` at every check,
    `slow_pending` too once per CHECKS_PER_TUNE checks) and how to reach the hub."""
    state = _state
    state.pending = pending
    state.slow_pending = slow_pending or (lambda: False)
    state.to_hub = to_hub
    state.interval_ns = interval_us * 1000
    state.stride = state.countdown = state.checks = 1


def task_switched_in() -> None:
    """The hub calls this before it switches into a task, so suspended time is not counted."""
    _state.last_tune_ns = time.monotonic_ns()
    _state.checks = CHECKS_PER_TUNE


def _poll() -> None:
    state = _state
    if state.pending():
        state.to_hub()
        return
    state.checks -= 1
    if state.checks > 0:
        return
    state.checks = CHECKS_PER_TUNE
    now = time.monotonic_ns()
    elapsed = now - state.last_tune_ns
    state.last_tune_ns = now
    # records per interval, moving at most 2x per tune so one slow record does not swing it
    if elapsed > 0:
        wanted = state.stride * CHECKS_PER_TUNE * state.interval_ns // elapsed
        state.stride = max(1, min(MAX_STRIDE, state.stride * 2, max(state.stride // 2, wanted)))
    if state.slow_pending():
        state.to_hub()


def checkpoint() -> None:
    """An explicit yield point, for loops that do not iterate over task records."""
    state = _state
    state.countdown -= 1
    if state.countdown <= 0:
        _poll()
        state.countdown = state.stride


def yielding(records: Iterable[T]) -> Iterator[T]:
    """Wrap `records` so that every `next()` is a yield point."""
    state = _state
    countdown = state.stride
    for record in records:
        countdown -= 1
        if countdown <= 0:
            _poll()
            countdown = state.stride
        yield record
