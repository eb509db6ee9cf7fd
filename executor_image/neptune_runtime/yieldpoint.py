"""Yield points: where a running task may be suspended.

Every `next()` on a task's records (and every `checkpoint()`) is a yield point, implemented in C
(`_yieldcore.c`). When the driver runs on the same host and rings the executor's doorbell
(doorbell.py), each yield point reads that shared byte (one load, no system call); besides,
every `stride` records, it adapts `stride` so that this happens every `interval_us` of task
time and polls the executor's socket with a zero-timeout poll(2) (with a doorbell, once per
eight of those). When the driver sent something, it calls the executor's `on_signal`, in the
task's greenlet; that may suspend the task and return only when the task is resumed.

Why polling and not a notification: on the machines we measured, every cross-CPU wake-up (a
helper process blocked on the socket, SIGIO, a thread after a lowered GIL switch interval) took
80-200 us before the task could even notice; a poll finds the bytes the sender's CPU already
queued. No thread and no signal handler ever switches greenlets: a signal handler calls
`request()`, and the next yield point signals. See docs/architecture.md for the figures.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar, cast

from . import _yieldcore

T = TypeVar("T")

# 100 us: a socket poll costs ~0.5-2 us on the VMs we measured, so polling every 100 us costs
# at most 2% of batch throughput; with a doorbell the check at every record is what matters.
DEFAULT_INTERVAL_US = 100

checkpoint: Callable[[], None] = _yieldcore.checkpoint
"""An explicit yield point, for loops that do not iterate over task records."""

task_switched_in: Callable[[], int] = _yieldcore.switched_in
"""The executor calls this before it switches into a task, so suspended time is not counted.
It returns the longest time between two yield points (ns) since the last call: what the task
that ran meanwhile made a preemption wait, at most (the executor reports it per task)."""

request: Callable[[], None] = _yieldcore.request
"""Make the next yield point signal (safe in a signal handler: it only sets a flag)."""

stride: Callable[[], int] = _yieldcore.stride
"""Records between two tunes, as adapted to the interval."""


def microseconds_from_env(name: str, default: int, minimum: int) -> int:
    """A number of microseconds from environment variable `name`, at least `minimum` (ValueError
    naming the variable otherwise)."""
    raw = os.environ.get(name, str(default))
    if not raw.isdigit() or int(raw) < minimum:
        what = "a positive number" if minimum else "a number (0: off)"
        raise ValueError(f"{name} must be {what} of microseconds, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    """How often a running task adapts its stride and polls the socket, in microseconds of
    task time (a doorbell, when there is one, is checked at every yield point)."""

    poll_us: int = DEFAULT_INTERVAL_US
    watch: bool = True  # a thread rings the doorbell when the driver cannot (_bellwatch.c)

    @classmethod
    def from_env(cls) -> Settings:
        """NEPTUNE_POLL_US and NEPTUNE_BELL_WATCH (1 or 0), or the defaults."""
        watch = os.environ.get("NEPTUNE_BELL_WATCH", "1")
        if watch not in ("0", "1"):
            raise ValueError(f"NEPTUNE_BELL_WATCH must be 1 (on) or 0 (off), got {watch!r}")
        return cls(microseconds_from_env("NEPTUNE_POLL_US", DEFAULT_INTERVAL_US, 1), watch == "1")


DEFAULTS = Settings()


def install(on_signal: Callable[[], object] | None, *, fd: int = -1,
            interval_us: int = DEFAULT_INTERVAL_US, bell: mmap.mmap | None = None,
            on_forewarn: Callable[[], object] | None = None, sparse_polls: bool = True) -> None:
    """Called by the executor: what to call when the driver sent something (None: nothing,
    outside an executor), the socket to poll, the doorbell's mapping (held until the next
    install: install without it before closing the mapping), and what to call when the driver
    forewarns (the doorbell's second byte: a preemption may follow). `sparse_polls`: with a
    doorbell, poll the socket 8 times less often (the driver rings it for every message)."""
    _yieldcore.install(on_signal, fd, interval_us, bell, on_forewarn, sparse_polls)


def yielding(records: Iterable[T]) -> Iterator[T]:
    """Wrap `records` so that every `next()` is a yield point."""
    return cast(Iterator[T], _yieldcore.yielding(records))
