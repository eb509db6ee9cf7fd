"""Task records and their state machine (pure).

queued -> running -> finished
queued -> sent -> running  (sent ahead: starts on its executor when the running task ends)
running -> suspended -> running (resumed on the same executor)
running | suspended -> killed -> queued   (kill policy: re-run, work wasted)
running | suspended -> queued             (executor lost: re-run)
running -> failed -> queued               (retry while attempts remain)
running | suspended -> shipping -> finished | failed | queued  (a keyed task's body ended:
                                          its slot is free, its many changes on their way)
sent -> queued                            (executor lost before it started)
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .policies import AttemptClock, Kind, TaskView

TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "sent"}),
    "sent": frozenset({"running", "queued"}),
    "running": frozenset({"suspended", "finished", "failed", "killed", "queued", "shipping"}),
    "shipping": frozenset({"finished", "failed", "queued"}),
    # finished/failed after a suspend or kill decision: the task ended before the order arrived
    "suspended": frozenset({"running", "killed", "queued", "finished", "failed", "shipping"}),
    "killed": frozenset({"queued", "finished", "failed"}),
    "failed": frozenset({"queued"}),
    "finished": frozenset(),
}


class InvalidTransition(Exception):
    pass


@dataclass
class Task(AttemptClock):
    id: str
    job: str
    kind: Kind
    priority: int
    ready_at: float
    partition: int = -1
    epoch: int = 0
    stage: int = 0  # of a multi-stage batch job
    attempt: int = 0
    records: list[Any] | None = None
    seqs: list[int] = field(default_factory=list)  # offset-tracker sequence numbers
    event_times: list[float] = field(default_factory=list)  # arrival of each event
    state: str = "queued"
    executor: str | None = None
    sent_at: float = 0.0
    suspensions: int = 0
    preempting: bool = False
    pinned: str | None = None  # the executor holding its partition's keyed state, if any
    shipped: list[Any] = field(default_factory=list)  # keyed changes come so far (shipping)

    def view(self) -> TaskView:
        return TaskView(self.id, self.job, self.kind, self.priority, self.ready_at,
                        self.partition, self.suspensions, self.resumed_at, self.started_at,
                        self.suspended_s, self.pinned)


class TaskTable:
    """All live tasks, with counts by (state, kind) kept in step with every transition."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self._queued: dict[str, Task] = {}
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, task: Task) -> None:
        self.tasks[task.id] = task
        self.counts[(task.state, task.kind)] += 1
        if task.state == "queued":
            self._queued[task.id] = task

    def move(self, task: Task, state: str) -> None:
        if state not in TRANSITIONS[task.state]:
            raise InvalidTransition(f"task {task.id}: {task.state} -> {state}")
        self.counts[(task.state, task.kind)] -= 1
        self.counts[(state, task.kind)] += 1
        task.state = state
        if state == "queued":
            self._queued[task.id] = task
        else:
            self._queued.pop(task.id, None)

    def forget(self, task: Task) -> None:
        """Drop a task that reached an end state (its count stays as a total)."""
        self.tasks.pop(task.id, None)
        if self._queued.pop(task.id, None) is not None:
            self.counts[("queued", task.kind)] -= 1

    def get(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)

    def queued(self) -> list[Task]:
        return list(self._queued.values())

    def queue_head(self, limit: int) -> list[Task]:
        """The queued tasks any policy could place now: a policy places at most one task per
        executor, so the first `limit` by priority and the first `limit` by arrival suffice.
        Keeps a scheduling pass cheap when thousands of tasks wait."""
        if len(self._queued) <= 2 * limit:
            return list(self._queued.values())
        by_priority = heapq.nsmallest(limit, self._queued.values(),
                                      key=lambda t: (-t.priority, t.ready_at))
        by_arrival = heapq.nsmallest(limit, self._queued.values(), key=lambda t: t.ready_at)
        return list({t.id: t for t in by_priority + by_arrival}.values())
