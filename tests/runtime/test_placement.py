"""Placement: decisions applied to the model, as the messages to send (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from neptune_runtime.driver.placement import Send, apply, release, snapshot
from neptune_runtime.policies import Kill, Place, Resume, Suspend
from neptune_runtime.tasks import Task, TaskTable


@dataclass
class Slot:
    running: str | None = None
    suspended: list[str] = field(default_factory=list)


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
    release(slot, batch)
    assert slot == Slot()
