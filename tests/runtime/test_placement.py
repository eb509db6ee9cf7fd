"""Placement: decisions applied to the model, as the messages to send (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from neptune_runtime.driver.placement import AHEAD, Send, apply, release, send_ahead, snapshot
from neptune_runtime.policies import Kill, Place, Resume, Suspend, get_policy
from neptune_runtime.tasks import InvalidTransition, Task, TaskTable


@dataclass
class Slot:
    running: str | None = None
    suspended: list[str] = field(default_factory=list)
    ahead: list[str] = field(default_factory=list)


def table(*tasks: Task) -> TaskTable:
    t = TaskTable()
    for task in tasks:
        t.add(task)
    return t


def test_a_suspend_and_a_place_become_one_preempting_run() -> None:
    batch = Task("b1", "train", "batch", 0, 0.0, partition=3)
    stream = Task("s1", "score", "stream", 10, 1.0, records=[{"x": 1}])
    tasks = table(batch, stream)
    slots = {"e": Slot()}
    apply([Place("b1", "e")], tasks, slots, 1.0)
    sends = apply([Suspend("b1", "e"), Place("s1", "e")], tasks, slots, 2.0)
    assert sends == [Send("e", {"t": "run", "id": "s1", "job": "score", "kind": "stream",
                                "priority": 10, "partition": -1, "epoch": 0, "attempt": 0,
                                "records": [{"x": 1}], "more": 0, "victim": "b1",
                                "action": "suspend"},
                          stream, express=True)]
    assert slots["e"] == Slot("s1", ["b1"])
    assert (batch.state, stream.state) == ("suspended", "running")
    assert stream.executor == "e" and stream.preempting


def test_a_kill_and_a_resume() -> None:
    batch, other = Task("b1", "train", "batch", 0, 0.0), Task("b2", "train", "batch", 0, 0.0)
    tasks = table(batch, other)
    slots = {"e": Slot(), "f": Slot()}
    apply([Place("b1", "e"), Place("b2", "f")], tasks, slots, 0.0)
    apply([Suspend("b2", "f")], tasks, slots, 1.0)
    sends = apply([Kill("b1", "e"), Resume("b2", "f")], tasks, slots, 2.0)
    assert sends == [Send("f", {"t": "resume", "id": "b2"})]
    assert batch.state == "killed" and slots["e"].running is None
    assert slots["f"] == Slot("b2", [])


def test_release_and_snapshot() -> None:
    batch = Task("b1", "train", "batch", 0, 0.0, partition=1)
    queued = Task("b2", "train", "batch", 0, 0.5)
    tasks = table(batch, queued)
    slot = Slot()
    apply([Place("b1", "e")], tasks, {"e": slot}, 1.0)
    view = snapshot(tasks, [("e", slot, 10, 100, frozenset({("train", 1)}))], 2.0)
    assert view.executors[0].running is not None and view.executors[0].running.id == "b1"
    assert view.executors[0].memory_pressure == 0.1
    assert [t.id for t in view.queue] == ["b2"]
    release(tasks, slot, batch, 3.0)
    assert slot == Slot()


def stream(n: int, at: float, priority: int = 10, pinned: str | None = None) -> Task:
    task = Task(f"s{n}", "score", "stream", priority, at, records=[n])
    task.pinned = pinned
    return task


def burst(policy: str, *queued: Task) -> tuple[TaskTable, Slot, list[Send]]:
    """Executor `e` runs stream task s0 (having suspended batch task b1, under the policy that
    suspends); `queued` wait."""
    running = stream(0, 0.5)
    tasks = table(running, *queued)
    slot = Slot()
    if policy == "neptune":
        tasks.add(Task("b1", "train", "batch", 0, 0.0))
        apply([Place("b1", "e")], tasks, {"e": slot}, 0.0)
        apply([Suspend("b1", "e"), Place("s0", "e")], tasks, {"e": slot}, 1.0)
    else:
        apply([Place("s0", "e")], tasks, {"e": slot}, 1.0)
    sends = send_ahead(get_policy(policy), tasks, [("e", slot, 0, 0, frozenset())], 2.0)
    return tasks, slot, sends


@pytest.mark.parametrize("policy", ["neptune", "fair", "fifo", "kill"])
def test_the_next_stream_tasks_are_sent_ahead_up_to_the_depth(policy: str) -> None:
    queued = [stream(n, 1.0 + n) for n in range(1, AHEAD + 2)]
    _, slot, sends = burst(policy, *queued)
    assert [s.message["id"] for s in sends] == ["s1", "s2"][:AHEAD]
    assert all(s.executor == "e" and not s.express and "victim" not in s.message
               for s in sends)
    assert slot.ahead == ["s1", "s2"][:AHEAD] and slot.running == "s0"
    assert [t.state for t in queued] == ["sent"] * AHEAD + ["queued"]
    # the last one sent still sees one waiting: the executor holds its slot for it
    assert sends[-1].message["more"] == 1


def test_what_the_policy_would_not_place_there_is_not_sent() -> None:
    # fifo: an earlier batch task comes first, so nothing is sent behind the stream task
    first = Task("b2", "train", "batch", 0, 0.6)
    _, slot, sends = burst("fifo", first, stream(1, 1.5))
    assert sends == [] and slot.ahead == []
    # fair: the suspended task would be resumed there first (fair never suspends, but a
    # policy's word on an idle slot is what counts)
    tasks = table(stream(0, 0.5), Task("b1", "train", "batch", 0, 0.0), stream(1, 1.5))
    slot = Slot()
    apply([Place("b1", "e")], tasks, {"e": slot}, 0.0)
    apply([Suspend("b1", "e"), Place("s0", "e")], tasks, {"e": slot}, 1.0)
    assert send_ahead(get_policy("fair"), tasks, [("e", slot, 0, 0, frozenset())], 2.0) == []
    # a task pinned to another executor, or of higher priority (it preempts instead)
    _, slot, sends = burst("neptune", stream(1, 1.5, pinned="f"), stream(2, 1.6, priority=20))
    assert sends == [] and slot.ahead == []


def test_only_a_running_stream_task_gets_tasks_behind_it() -> None:
    batch, queued = Task("b1", "train", "batch", 0, 0.0), stream(1, 1.0)
    tasks = table(batch, queued)
    slot = Slot()
    apply([Place("b1", "e")], tasks, {"e": slot}, 0.0)
    policy = get_policy("fair")
    assert send_ahead(policy, tasks, [("e", slot, 0, 0, frozenset())], 1.0) == []
    assert queued.state == "queued"


def test_a_task_sent_ahead_starts_as_the_running_one_ends() -> None:
    tasks, slot, _ = burst("neptune", stream(1, 1.1), stream(2, 1.2))
    running = tasks.tasks["s0"]
    release(tasks, slot, running, 3.0)
    tasks.move(running, "finished")
    assert slot.running == "s1" and slot.ahead == ["s2"] and slot.suspended == ["b1"]
    assert tasks.tasks["s1"].state == "running" and tasks.tasks["s1"].started_at == 3.0
    # a task sent ahead and then re-queued (its executor lost) leaves the slot's queue
    lost = tasks.tasks["s2"]
    release(tasks, slot, lost, 4.0)
    tasks.move(lost, "queued")
    assert slot.ahead == [] and slot.running == "s1"
    with pytest.raises(InvalidTransition):
        tasks.move(tasks.tasks["b1"], "sent")
