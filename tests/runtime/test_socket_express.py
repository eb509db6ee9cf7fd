"""A preempting `run` read from the socket in the running task's greenlet (express.py's
`_from_socket`), on a real socket pair: what is taken there, and what is left to the hub."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import greenlet
import pytest

from neptune_runtime import protocol
from neptune_runtime.app import App
from neptune_runtime.executor import Executor
from neptune_runtime.executor.link import DriverLost
from neptune_runtime.executor.task import TaskRecord


def run(task_id: str, kind: str = "batch", priority: int = 0, **extra: Any) -> dict[str, Any]:
    return {"t": "run", "id": task_id, "job": "j", "kind": kind, "priority": priority,
            "partition": 0, "epoch": 0, "attempt": 0, **extra}


@pytest.fixture
def pair() -> Iterator[tuple[Executor, socket.socket]]:
    executor = Executor(App("sx"), "sx", ("127.0.0.1", 1), "secret", "e")
    executor.resumes_locally = True
    executor.hub = greenlet.getcurrent()
    ours, driver = socket.socketpair()
    ours.setblocking(False)
    executor.link.sock = ours
    executor._handle(run("b1"))
    executor._start(executor.ready.popleft())
    yield executor, driver
    ours.close()
    driver.close()


def launched(executor: Executor, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    calls: list[tuple[str, bool]] = []

    def launch(task: TaskRecord, preempting: bool = False) -> None:
        calls.append((task.id, preempting))

    monkeypatch.setattr(executor, "_launch", launch)
    return calls


def send(driver: socket.socket, *messages: dict[str, Any]) -> None:
    driver.sendall(b"".join(protocol.encode(m) for m in messages))


def test_a_forewarned_preempting_run_starts_from_the_task(
        pair: tuple[Executor, socket.socket], monkeypatch: pytest.MonkeyPatch) -> None:
    executor, driver = pair
    calls = launched(executor, monkeypatch)
    send(driver, {"t": "forewarn"}, run("s1", "stream", 10, victim="b1", action="suspend"))
    # in the task's greenlet, as the yield point calls it
    assert greenlet.greenlet(lambda: executor._from_socket("b1")).switch() is True
    assert calls == [("s1", True)]
    assert executor.current is not None and executor.current.id == "s1"
    assert list(executor.suspended) == ["b1"] and not executor.inbox
    suspended = [m for m in executor.link.outbox if isinstance(m, dict)]
    assert suspended == [{"t": "suspended", "id": "b1", "ns": suspended[0]["ns"],
                          "via": "socket"}]


def test_a_preempting_run_carries_when_the_yield_point_noticed_it(
        pair: tuple[Executor, socket.socket], monkeypatch: pytest.MonkeyPatch) -> None:
    executor, driver = pair
    calls = launched(executor, monkeypatch)
    send(driver, run("s1", "stream", 10, victim="b1", action="suspend"))
    before = time.monotonic_ns()
    greenlet.greenlet(executor._on_signal).switch()  # as the yield point calls it
    after = time.monotonic_ns()
    assert calls == [("s1", True)]
    started = executor.current
    assert started is not None and started.id == "s1"
    # (a socket pair gives no kernel receive time: its arrival is the read, after the notice)
    assert before <= started.noticed_ns <= started.received_ns <= after


def test_a_forewarning_alone_rehearses_and_the_task_goes_on(
        pair: tuple[Executor, socket.socket], monkeypatch: pytest.MonkeyPatch) -> None:
    executor, driver = pair
    calls = launched(executor, monkeypatch)
    rehearsed: list[int] = []
    monkeypatch.setattr(executor, "_rehearse", lambda: rehearsed.append(1))
    send(driver, {"t": "forewarn"})
    assert executor._from_socket("b1") is True
    assert (calls, rehearsed) == ([], [1])
    assert executor.current is not None and executor.current.id == "b1"
    assert executor._from_socket("b1") is False  # nothing more there: the hub's turn


@pytest.mark.parametrize("messages", [
    [run("s1", "stream", 10, victim="other", action="suspend")],  # not this task
    [run("s1", "stream", 10, victim="b1", action="kill")],  # a kill is the hub's
    [run("s1", "stream", 10, victim="b1", action="suspend"), {"t": "forewarn"}],
    [{"t": "resume", "id": "b0"}, run("s1", "stream", 10, victim="b1", action="suspend")],
], ids=["other-victim", "kill", "run-not-last", "after-another-message"])
def test_anything_else_is_left_to_the_hub_in_order(
        pair: tuple[Executor, socket.socket], monkeypatch: pytest.MonkeyPatch,
        messages: list[dict[str, Any]]) -> None:
    executor, driver = pair
    calls = launched(executor, monkeypatch)
    send(driver, *messages)
    assert executor._from_socket("b1") is False
    assert executor.inbox == messages and calls == []
    assert executor.current is not None and executor.current.id == "b1"  # nothing handled
    handled: list[dict[str, Any]] = []
    monkeypatch.setattr(executor, "_handle", handled.append)
    executor._drain()  # the hub: the inbox first, then the socket (empty)
    assert handled == messages and not executor.inbox


def test_a_closed_driver_is_a_lost_link_for_the_hub_not_a_wire_error(
        pair: tuple[Executor, socket.socket]) -> None:
    executor, driver = pair
    driver.close()
    assert executor._from_socket("b1") is False
    with pytest.raises(DriverLost, match="lost the driver connection"):
        executor._drain()
    assert executor.failure is None


def test_an_invalid_frame_is_the_hubs_to_refuse(pair: tuple[Executor, socket.socket]) -> None:
    executor, driver = pair
    driver.sendall(protocol.HEADER.pack(3) + b"\xc1\xc1\xc1")  # not msgpack
    assert executor._from_socket("b1") is False
    with pytest.raises(DriverLost, match="dropping the driver connection: undecodable"):
        executor._drain()
    assert executor.current is not None and executor.current.id == "b1"
