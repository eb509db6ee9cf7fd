"""Yield points: where a running task may be suspended.

A yield point counts down; every `stride` records it polls the executor's socket (one poll(2)
with a zero timeout, ~0.5 us) and, if the driver sent something, switches to the executor's hub
greenlet, which handles the message (maybe suspending this task for a stream task) and switches
back later. `stride` adapts so that polls happen every `interval_ns` of task time.

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
from typing import TypeVar

T = TypeVar("T")

# 100 us: on the VM we measured, a poll costs ~2 us, so polling every 50 us cost 4% of batch
# throughput and every 100 us 2%, for 25 us more to notice a preemption on average.
DEFAULT_INTERVAL_US = 100
MAX_STRIDE = 1 << 20


class _YieldState:
    def __init__(self) -> None:
        self.stride = MAX_STRIDE  # outside an executor yield points (almost) never poll
        self.countdown = MAX_STRIDE
        self.interval_ns = DEFAULT_INTERVAL_US * 1000
        self.last_poll_ns = 0
        self.pending: Callable[[], bool] = lambda: False
        self.to_hub: Callable[[], object] = lambda: None


_state = _YieldState()


def interval_from_env() -> int:
    """The poll interval in microseconds: NEPTUNE_POLL_US, or the default."""
    raw = os.environ.get("NEPTUNE_POLL_US", str(DEFAULT_INTERVAL_US))
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"NEPTUNE_POLL_US must be a positive number of microseconds, got {raw!r}")
    return int(raw)


def install(pending: Callable[[], bool], to_hub: Callable[[], object],
            interval_us: int = DEFAULT_INTERVAL_US) -> None:
    """Called once by the executor: how to tell that the hub has work, and how to reach it."""
    _state.pending = pending
    _state.to_hub = to_hub
    _state.interval_ns = interval_us * 1000
    _state.stride = _state.countdown = 1


def task_switched_in() -> None:
    """The hub calls this before it switches into a task, so suspended time is not counted."""
    _state.last_poll_ns = time.monotonic_ns()


def _poll() -> None:
    state = _state
    now = time.monotonic_ns()
    elapsed = now - state.last_poll_ns
    state.last_poll_ns = now
    # records per interval, moving at most 2x per poll so one slow record does not swing it
    if elapsed > 0:
        wanted = state.stride * state.interval_ns // elapsed
        state.stride = max(1, min(MAX_STRIDE, state.stride * 2, max(state.stride // 2, wanted)))
    if state.pending():
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
