"""The executor hub's state machine, driven with plain messages: no socket, no greenlet."""

from __future__ import annotations

from typing import Any

import pytest

from neptune_runtime import protocol
from neptune_runtime.app import App
from neptune_runtime.executor import Executor


def run(task_id: str, kind: str = "batch", priority: int = 0, **extra: Any) -> dict[str, Any]:
    return {"t": "run", "id": task_id, "job": "j", "kind": kind, "priority": priority,
            "partition": 0, "epoch": 0, "attempt": 0, **extra}


@pytest.fixture
def hub() -> Executor:
    executor = Executor(App("hub"), "hub", ("127.0.0.1", 1), "secret", "e")
    executor.resumes_locally = True
    return executor


def posted(hub: Executor) -> list[tuple[str, str]]:
    return [(m["t"], m["id"]) for m in hub.link.outbox if isinstance(m, dict)]


def test_a_run_without_a_victim_waits_its_turn(hub: Executor) -> None:
    hub._handle(run("b1"))
    hub._handle(run("b2"))
    assert [t.id for t in hub.ready] == ["b1", "b2"] and hub.current is None


def test_a_preempting_run_suspends_the_running_task_and_runs_first(hub: Executor) -> None:
    hub._handle(run("b1"))
    hub._start(hub.ready.popleft())
    hub.arrived_ns = 1
    hub._handle(run("s1", "stream", 10, victim="b1", action="suspend"))
    assert hub.current is not None and hub.current.id == "s1"
    assert list(hub.suspended) == ["b1"]
    assert posted(hub) == [("suspended", "b1")]
    assert len(hub.suspension_samples) == 1


def test_a_preemption_whose_victim_is_already_resumed_but_not_started(hub: Executor) -> None:
    hub._handle(run("b1"))
    hub._start(hub.ready.popleft())
    hub._handle(run("s1", "stream", 10, victim="b1", action="suspend"))
    hub.current = None  # s1 finished
    hub._handle({"t": "resume", "id": "b1"})  # the driver's resume and ...
    hub._handle(run("s2", "stream", 10, victim="b1", action="suspend"))  # ... a new preemption
    assert hub.current is not None and hub.current.id == "s2"
    assert list(hub.suspended) == ["b1"] and not hub.ready


def test_a_kill_ends_the_victim_and_reports_it(hub: Executor) -> None:
    hub._handle(run("b1"))
    hub._start(hub.ready.popleft())
    hub._handle(run("s1", "stream", 10, victim="b1", action="kill"))
    assert hub.current is not None and hub.current.id == "s1"
    assert not hub.suspended
    assert posted(hub) == [("killed", "b1")]


def test_a_higher_priority_run_preempts_a_task_the_executor_resumed_itself(hub: Executor) -> None:
    hub._handle(run("b1"))
    hub._start(hub.ready.popleft())
    hub._handle(run("s1", "stream", 10))  # placed on a slot the driver thought free
    assert hub.current is not None and hub.current.id == "s1"
    assert list(hub.suspended) == ["b1"]


def test_state_updates_are_kept_and_a_resumed_task_is_reported(hub: Executor) -> None:
    hub._handle({"t": "state", "name": "model", "version": 2, "value": [1.0]})
    assert hub.states["model"] == (2, [1.0])
    hub._handle(run("b1"))
    task = hub.ready.popleft()
    task.glet = object()  # as if it had run before
    hub._start(task)
    assert posted(hub) == [("resumed", "b1")]


@pytest.mark.parametrize("message", [
    {"t": "welcome", "executor_id": "e", "preempts": "suspend", "states": {}},  # too late
    {"t": "run", "id": "b1"},
    run("b1", kind="sideways"),
    run("b1", partition=-2),
    {"t": "bogus"},
])
def test_an_invalid_message_is_refused_and_changes_nothing(hub: Executor,
                                                           message: dict[str, Any]) -> None:
    with pytest.raises(protocol.ProtocolError):
        hub._handle(message)
    assert not hub.ready and hub.current is None and not hub.link.outbox
