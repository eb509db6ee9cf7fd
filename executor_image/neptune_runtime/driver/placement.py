"""Placement: a policy's decisions applied to the driver's model, as the messages to send (pure).

`Suspend(S,E)+Place(T,E)` becomes one `run{T, victim=S, action=suspend}`, `Kill(K,E)+Place(T,E)`
the same with `action=kill`, and `Resume(R,E)` a `resume`. The model (the task table and each
executor's slot) is updated optimistically; the executor's reports confirm it, and every race
has an edge in the task state machine (tasks.py). No I/O here: the driver sends what this
returns, in order.

Send-ahead (issue 15's bursts): an executor running a stream task is also sent the next stream
tasks the policy would place there once it is free, up to AHEAD of them. They wait in its ready
queue and start the moment the running one ends, instead of a driver round trip later; the
batch task suspended meanwhile resumes only after the whole burst.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..policies import Decision, ExecutorView, Kill, Place, Policy, Resume, Snapshot, Suspend
from ..tasks import Task, TaskTable


class Slot(Protocol):
    """The driver's view of one executor's slot."""

    running: str | None
    suspended: list[str]
    ahead: list[str]  # sent behind the running stream task, to start in this order


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


AHEAD = 2  # enough to hide one round trip behind a millisecond task; few to re-run if lost


def release(table: TaskTable, slot: Slot, task: Task, now: float) -> None:
    """The task no longer occupies the slot (it finished, failed, or is re-queued). A task sent
    ahead starts as the running one leaves: the executor starts it without being told."""
    if task.id in slot.suspended:
        slot.suspended.remove(task.id)
    if task.id in slot.ahead:
        slot.ahead.remove(task.id)
    if slot.running != task.id:
        return
    slot.running = None
    if slot.ahead:
        following = table.tasks[slot.ahead.pop(0)]
        table.move(following, "running")
        following.started(now)
        slot.running = following.id


def _run(table: TaskTable, task: Task) -> dict[str, Any]:
    """The `run` message for a task (without its victim)."""
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
    return message


def send_ahead(policy: Policy, table: TaskTable,
               executors: Sequence[tuple[str, Slot, int, int, frozenset[tuple[str, int]]]],
               now: float) -> list[Send]:
    """For each executor running a stream task: the stream tasks the policy would place there
    if it were free, of no higher priority than the running one (a higher one preempts it
    instead), sent ahead to start in turn."""
    sends: list[Send] = []
    tasks = table.tasks
    for eid, slot, memory, limit, partitions in executors:
        running = tasks.get(slot.running) if slot.running is not None else None
        if running is None or running.kind != "stream":
            continue
        while len(slot.ahead) < AHEAD and table.counts[("queued", "stream")]:
            view = ExecutorView(eid, None, tuple(tasks[s].view() for s in slot.suspended
                                                 if s in tasks), memory, limit, partitions)
            head = tuple(t.view() for t in table.queue_head(8))
            placed = next((d.task for d in policy(Snapshot(now, (view,), head))
                           if isinstance(d, Place)), None)
            task = tasks.get(placed) if placed is not None else None
            if task is None or task.kind != "stream" or task.priority > running.priority:
                break
            table.move(task, "sent")
            task.executor = eid
            task.preempting = False
            slot.ahead.append(task.id)
            sends.append(Send(eid, _run(table, task), task))
    return sends


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
            message = _run(table, task)
            victim = victims.pop(decision.executor, None)
            task.preempting = victim is not None
            if victim is not None:
                message["victim"], message["action"] = victim
            sends.append(Send(decision.executor, message, task, express=task.preempting))
    return sends

