"""Yield points with real greenlets and a real socket: suspension keeps progress."""

from __future__ import annotations

import select
import socket

import greenlet
import pytest

from neptune_runtime import hotpath, yieldpoint


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


def test_polling_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NEPTUNE_POLL_US", "NEPTUNE_BELL_POLL_US", "NEPTUNE_WARM_US"):
        monkeypatch.delenv(name, raising=False)
    assert yieldpoint.Settings.from_env() == yieldpoint.DEFAULTS
    assert hotpath.warm_from_env() == hotpath.DEFAULT_WARM_US
    monkeypatch.setenv("NEPTUNE_POLL_US", "40")
    monkeypatch.setenv("NEPTUNE_BELL_POLL_US", "10")
    monkeypatch.setenv("NEPTUNE_WARM_US", "0")
    assert yieldpoint.Settings.from_env() == yieldpoint.Settings(40, 10)
    assert hotpath.warm_from_env() == 0
    for name in ("NEPTUNE_POLL_US", "NEPTUNE_BELL_POLL_US"):
        for bad in ("0", "-5", "fast", ""):
            monkeypatch.setenv(name, bad)
            with pytest.raises(ValueError, match=f"{name} must be a positive number"):
                yieldpoint.Settings.from_env()
        monkeypatch.setenv(name, "40")
    monkeypatch.setenv("NEPTUNE_WARM_US", "-1")
    with pytest.raises(ValueError, match=r"NEPTUNE_WARM_US must be a number \(0: off\)"):
        hotpath.warm_from_env()


def test_the_slow_check_runs_once_per_tune_and_reaches_the_hub() -> None:
    # With a doorbell the socket is still polled now and then: a message's tail written after
    # the ring must not wait for the next message.
    fast: list[int] = []
    slow: list[int] = []
    hub_calls: list[int] = []

    def count(calls: list[int], answer: bool) -> bool:
        calls.append(1)
        return answer

    yieldpoint.install(lambda: count(fast, False), lambda: hub_calls.append(len(fast)),
                       interval_us=1, slow_pending=lambda: count(slow, True))
    yieldpoint.task_switched_in()
    for _ in range(3 * yieldpoint.CHECKS_PER_TUNE):
        yieldpoint.checkpoint()
    yieldpoint.install(lambda: False, lambda: None)
    assert len(fast) == 3 * yieldpoint.CHECKS_PER_TUNE  # stride 1: every checkpoint checks
    assert len(slow) == 3
    assert hub_calls == [yieldpoint.CHECKS_PER_TUNE * k for k in (1, 2, 3)]
