"""What the executor's parts share: one object's attributes, declared once.

The executor is one object whose methods live in modules by concern (hub.py, runner.py,
express.py, core.py). One object, not several: on the preemption path every attribute load of
another object is another cold cache line (docs/architecture.md). Each part subclasses this
declaration; core.Executor combines them and sets the attributes.
"""

from __future__ import annotations

import mmap
import select
from collections import deque
from typing import Any

import greenlet

from .. import yieldpoint
from ..app import App
from ..doorbell import Bell
from ..keyed import PartitionState
from ..shuffle import ShuffleStore
from .link import Link
from .task import TaskRecord


class ExecutorState:
    app: App
    app_ref: str
    published: frozenset[str]
    link: Link
    yield_points: bool
    connect_timeout: float
    id: str
    states: dict[str, tuple[int, Any]]
    cache: dict[tuple[str, int, int], list[Any]]  # (job, stage, partition) -> records
    keyed: dict[tuple[str, int], PartitionState]  # the keyed lanes this executor holds
    shuffle: ShuffleStore  # shuffle outputs not fetched yet
    current: TaskRecord | None
    suspended: dict[str, TaskRecord]
    ready: deque[TaskRecord]
    shipping: deque[tuple[TaskRecord, Any]]  # finished keyed tasks shipping changes, results
    stopping: bool
    exit_reason: str
    memory_limit: int
    resumes_locally: bool
    suspension_samples: list[float]
    arrived_ns: int
    noticed_ns: int  # when a yield point last called `_on_signal`
    noticed_span_ns: int  # and how long its task had gone since the tune before it
    polling: yieldpoint.Settings
    bell: Bell | None
    bell_attached: bool
    express: tuple[int, int, dict[str, Any]] | None  # taken by a task's greenlet, for the hub
    failure: Exception | None  # an invalid message or a lost link met in a task's greenlet
    inbox: list[dict[str, Any]]  # messages a task's greenlet read and left to the hub
    spare: greenlet.greenlet | None
    standby: greenlet.greenlet | None
    canned: mmap.mmap
    rehearsal: ExecutorState | None
    hub: greenlet.greenlet
    poller: select.poll
    switched_into: TaskRecord | None  # the task last switched into (its yield gaps)
    hold_until: float  # do not resume a suspended task before this (0: no hold)

    # what one part calls of another
    def flush(self) -> None:
        raise NotImplementedError

    def _handle(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def _take(self, express: tuple[int, int, dict[str, Any]]) -> None:
        raise NotImplementedError

    def _start(self, task: TaskRecord) -> None:
        raise NotImplementedError

    def _ship(self) -> None:
        raise NotImplementedError

    def _launch(self, task: TaskRecord, preempting: bool = False) -> None:
        raise NotImplementedError

    def _worker(self, given: TaskRecord | greenlet.greenlet) -> None:
        raise NotImplementedError

    def _install_yield_points(self) -> None:
        raise NotImplementedError

    def _on_signal(self) -> None:
        raise NotImplementedError

    def _rehearse(self) -> None:
        raise NotImplementedError
