"""Yield points with real greenlets and a real socket: suspension keeps progress."""

from __future__ import annotations

import select
import socket

import greenlet
import pytest

from neptune_runtime import yieldpoint


def test_task_suspends_at_a_yield_point_and_resumes_where_it_stopped() -> None:
    left, right = socket.socketpair()
    poller = select.poll()
    poller.register(left, select.POLLIN)
    hub = greenlet.getcurrent()
    yieldpoint.install(lambda: bool(poller.poll(0)), hub.switch, interval_us=1)
    seen: list[int] = []

    def task() -> int:
        for record in yieldpoint.yielding(range(200_000)):
            seen.append(record)
            if record == 1000:
                right.sendall(b"x")  # the driver sends something while the task runs
        return len(seen)

    try:
        glet = greenlet.greenlet(task)
        yieldpoint.task_switched_in()
        outcome = glet.switch()
        assert not glet.dead and outcome == (), "the task did not yield to the hub"
        stopped_at = len(seen)
        assert 1000 < stopped_at < 1100, "the task noticed the message late"
        left.recv(1)  # the hub handled the message
        yieldpoint.task_switched_in()
        assert glet.switch() == 200_000
        assert seen == list(range(200_000)), "progress was lost or repeated"
    finally:
        yieldpoint.install(lambda: False, lambda: None)
        left.close()
        right.close()


def test_stride_adapts_to_the_interval() -> None:
    yieldpoint.install(lambda: False, lambda: None, interval_us=50)
    try:
        yieldpoint.task_switched_in()
        for _ in yieldpoint.yielding(range(100_000)):
            sum(range(20))  # a record of some work
        assert 1 < yieldpoint._state.stride < 100_000
    finally:
        yieldpoint.install(lambda: False, lambda: None)


def test_outside_an_executor_checkpoint_is_harmless() -> None:
    for _ in range(1000):
        yieldpoint.checkpoint()
    assert list(yieldpoint.yielding([1, 2, 3])) == [1, 2, 3]


def test_poll_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEPTUNE_POLL_US", raising=False)
    assert yieldpoint.interval_from_env() == yieldpoint.DEFAULT_INTERVAL_US
    monkeypatch.setenv("NEPTUNE_POLL_US", "40")
    assert yieldpoint.interval_from_env() == 40
    for bad in ("0", "-5", "fast", ""):
        monkeypatch.setenv("NEPTUNE_POLL_US", bad)
        with pytest.raises(ValueError, match="NEPTUNE_POLL_US must be a positive number"):
            yieldpoint.interval_from_env()
