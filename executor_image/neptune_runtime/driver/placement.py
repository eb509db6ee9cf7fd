"""Placement: a policy's decisions applied to the driver's model, as the messages to send (pure).

`Suspend(S,E)+Place(T,E)` becomes one `run{T, victim=S, action=suspend}`, `Kill(K,E)+Place(T,E)`
the same with `action=kill`, and `Resume(R,E)` a `resume`. The model (the task table and each
executor's slot) is updated optimistically; the executor's reports confirm it, and every race
has an edge in the task state machine (tasks.py). No I/O here: the driver sends what this
returns, in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..policies import Decision, ExecutorView, Kill, Place, Resume, Snapshot, Suspend
from ..tasks import Task, TaskTable


class Slot(Protocol):
    """The driver's view of one executor's slot."""

    running: str | None
    suspended: list[str]


@dataclass(frozen=True, slots=True)
class Send:
    executor: str
    message: dict[str, Any]
    task: Task | None = None  # a `run`'s task: its send time is stamped as it goes
    express: bool = False  # a preempting `run`: also copied into the executor's express slot


def snapshot(table: TaskTable, executors: Sequence[tuple[str, Slot, int, int,
                                                      frozenset[tuple[str, int]]]],
             now: float) -> Snapshot:
    """The policy's input: every ready executor (id, slot, memory, memory limit, partitions)
    with its tasks, and the head of the ready queue."""
    tasks = table.tasks
    views = tuple(
        ExecutorView(eid, tasks[slot.running].view() if slot.running in tasks else None,
                     tuple(tasks[s].view() for s in slot.suspended if s in tasks),
                     memory, limit, partitions)
        for eid, slot, memory, limit, partitions in executors)
    head = table.queue_head(max(8, 2 * len(views)))
    return Snapshot(now, views, tuple(t.view() for t in head))


def release(slot: Slot, task: Task) -> None:
    """The task no longer occupies the slot (it finished, failed, or is re-queued)."""
    if slot.running == task.id:
        slot.running = None
    if task.id in slot.suspended:
        slot.suspended.remove(task.id)


def apply(decisions: Sequence[Decision], table: TaskTable, slots: Mapping[str, Slot],
          now: float) -> list[Send]:
    victims: dict[str, tuple[str, str]] = {}  # executor -> (task, action)
    sends: list[Send] = []
    for decision in decisions:
        slot = slots[decision.executor]
        task = table.tasks[decision.task]
        if isinstance(decision, Suspend | Kill):
            action = "suspend" if isinstance(decision, Suspend) else "kill"
            victims[decision.executor] = (task.id, action)
            if slot.running == task.id:
                slot.running = None
            if action == "suspend":
                table.move(task, "suspended")
                slot.suspended.append(task.id)
                task.suspended(now)
            else:
                table.move(task, "killed")
        elif isinstance(decision, Resume):
            table.move(task, "running")
            slot.suspended.remove(task.id)
            slot.running = task.id
            task.resumed(now)
            sends.append(Send(decision.executor, {"t": "resume", "id": task.id}))
        elif isinstance(decision, Place):
            table.move(task, "running")
            task.executor = decision.executor
            task.started(now)
            slot.running = task.id
            message: dict[str, Any] = {
                "t": "run", "id": task.id, "job": task.job, "kind": task.kind,
                "priority": task.priority, "partition": task.partition,
                "epoch": task.epoch, "attempt": task.attempt}
            if task.stage:
                message["stage"] = task.stage
            if task.records is not None:
                message["records"] = task.records
            if task.kind == "stream":
                # the stream tasks still waiting: the executor holds its slot for the next
                # rather than resume a suspended task in between (issue 15's bursts)
                message["more"] = table.counts[("queued", "stream")]
            victim = victims.pop(decision.executor, None)
            task.preempting = victim is not None
            if victim is not None:
                message["victim"], message["action"] = victim
            sends.append(Send(decision.executor, message, task, express=task.preempting))
    return sends

