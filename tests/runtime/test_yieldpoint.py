"""Yield points (C, _yieldcore.c) with real greenlets, a real socket and a real doorbell."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import textwrap
import time
import weakref
from collections.abc import Iterator

import greenlet
import pytest

from neptune_runtime import _yieldcore, hotpath, yieldpoint
from neptune_runtime.doorbell import SIZE, Bell, Ringer


@pytest.fixture(autouse=True)
def _outside_an_executor() -> Iterator[None]:
    yield
    yieldpoint.install(None)  # the state is the process's: leave none behind


def test_task_suspends_at_a_yield_point_and_resumes_where_it_stopped() -> None:
    left, right = socket.socketpair()
    hub = greenlet.getcurrent()
    yieldpoint.install(hub.switch, fd=left.fileno(), interval_us=1)
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
        left.close()
        right.close()


def test_stride_adapts_to_the_interval() -> None:
    yieldpoint.install(lambda: None, interval_us=50)
    yieldpoint.task_switched_in()
    for _ in yieldpoint.yielding(range(100_000)):
        sum(range(20))  # a record of some work
    assert 1 < yieldpoint.stride() < 100_000


def test_outside_an_executor_checkpoint_is_harmless() -> None:
    for _ in range(1000):
        yieldpoint.checkpoint()
    assert list(yieldpoint.yielding([1, 2, 3])) == [1, 2, 3]
    assert yieldpoint.stride() > 1000  # it (almost) never even reads the clock


def test_an_exception_from_the_handler_reaches_the_task() -> None:
    def handler() -> None:
        raise KeyError("from the hub")  # as GreenletExit does when a task is killed

    yieldpoint.install(handler, interval_us=1)
    yieldpoint.request()
    with pytest.raises(KeyError, match="from the hub"):
        for _ in yieldpoint.yielding(range(10)):
            pass


def test_a_request_signals_at_the_next_yield_point() -> None:
    calls: list[int] = []
    yieldpoint.install(lambda: calls.append(1))  # the default interval: no tune soon
    yieldpoint.task_switched_in()
    for _ in range(100):
        yieldpoint.checkpoint()
    assert calls == []
    yieldpoint.request()  # what the SIGTERM handler does
    yieldpoint.checkpoint()
    assert calls == [1]


def test_the_polling_interval_comes_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NEPTUNE_POLL_US", "NEPTUNE_WARM_US"):
        monkeypatch.delenv(name, raising=False)
    assert yieldpoint.Settings.from_env() == yieldpoint.DEFAULTS
    assert hotpath.warm_from_env() == hotpath.DEFAULT_WARM_US
    monkeypatch.setenv("NEPTUNE_POLL_US", "40")
    monkeypatch.setenv("NEPTUNE_WARM_US", "0")
    assert yieldpoint.Settings.from_env() == yieldpoint.Settings(40)
    assert hotpath.warm_from_env() == 0
    for bad in ("0", "-5", "fast", ""):
        monkeypatch.setenv("NEPTUNE_POLL_US", bad)
        with pytest.raises(ValueError, match="NEPTUNE_POLL_US must be a positive number"):
            yieldpoint.Settings.from_env()
    monkeypatch.setenv("NEPTUNE_WARM_US", "-1")
    with pytest.raises(ValueError, match=r"NEPTUNE_WARM_US must be a number \(0: off\)"):
        hotpath.warm_from_env()


def test_a_doorbell_is_checked_at_every_yield_point(attached: tuple[Bell, Ringer]) -> None:
    bell, ringer = attached
    signals: list[int] = []
    forewarnings: list[int] = []
    yieldpoint.install(lambda: signals.append(1), bell=bell.mapping,
                       on_forewarn=lambda: forewarnings.append(1))
    yieldpoint.task_switched_in()
    yieldpoint.checkpoint()  # the first tune after install: nothing there
    assert (signals, forewarnings) == ([], [])
    ringer.forewarn()
    yieldpoint.checkpoint()
    assert (signals, forewarnings) == ([], [1])
    yieldpoint.checkpoint()  # the warning is taken once
    assert forewarnings == [1]
    ringer.forewarn()
    ringer.ring()  # a message as well: that is what counts, and both are cleared
    yieldpoint.checkpoint()
    assert (signals, forewarnings) == ([1], [1])
    assert not bell.rung()
    yieldpoint.checkpoint()
    assert (signals, forewarnings) == ([1], [1])


def test_with_a_doorbell_the_socket_is_still_polled_now_and_then(
        attached: tuple[Bell, Ringer]) -> None:
    # the tail of a large message, written after the ring, rings nothing
    bell, _ = attached
    left, right = socket.socketpair()
    right.sendall(b"x")  # left unread: every socket poll finds it
    checks: list[int] = []
    signals: list[int] = []
    try:
        yieldpoint.install(lambda: signals.append(len(checks)), fd=left.fileno(),
                           interval_us=1, bell=bell.mapping)
        yieldpoint.task_switched_in()
        for _ in range(24):  # records of 5 us at a 1 us interval: stride 1, every one tunes
            started = time.perf_counter_ns()
            while time.perf_counter_ns() - started < 5000:
                pass
            checks.append(1)
            yieldpoint.checkpoint()
        assert yieldpoint.stride() == 1
        assert signals == [1, 9, 17]  # once per eight tunes
        # our own watcher's doorbell (_bellwatch.c) may ring late: every tune polls
        yieldpoint.install(lambda: signals.append(len(checks)), fd=left.fileno(),
                           interval_us=1, bell=bell.mapping, sparse_polls=False)
        yieldpoint.task_switched_in()
        signals.clear()
        for _ in range(3):
            started = time.perf_counter_ns()
            while time.perf_counter_ns() - started < 5000:
                pass
            checks.append(1)
            yieldpoint.checkpoint()
        assert signals == [25, 26, 27]
    finally:
        left.close()
        right.close()


def test_a_cycle_through_yielding_records_is_collected() -> None:
    class Holder:
        records: object = None

    holder = Holder()
    holder.records = yieldpoint.yielding([holder])  # holder -> iterator -> list -> holder
    alive = weakref.ref(holder)
    del holder
    gc.collect()
    assert alive() is None


def test_an_absurd_interval_is_refused_before_it_overflows() -> None:
    # interval_us * 1000 ns, times a stride, must stay far inside 64 bits
    for bad in (10**16, 2**63 - 1, 2**64, 10**30, 0, -1):
        with pytest.raises(ValueError, match=r"interval_us must be between 1 and 1000000000"):
            yieldpoint.install(lambda: None, interval_us=bad)
    yieldpoint.install(lambda: None, interval_us=10**9)  # 1000 s: the largest accepted
    yieldpoint.task_switched_in()
    for _ in range(64):
        yieldpoint.checkpoint()
    assert yieldpoint.stride() > 1  # it grows towards the interval, it does not collapse


def test_a_doorbell_mapping_must_be_aligned_for_its_atomic_reads() -> None:
    misaligned = memoryview(bytearray(SIZE + 8))[1:SIZE + 1]
    with pytest.raises(ValueError, match="the doorbell mapping is not 8-byte aligned"):
        yieldpoint.install(lambda: None, bell=misaligned)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="the doorbell mapping is not 8-byte aligned"):
        _yieldcore.take_express(misaligned)


def _isolated(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in its own interpreter with the debug allocator, which fills freed memory, so
    that a use after free crashes that process and not this one."""
    env = {**os.environ, "PYTHONMALLOC": "debug", "PYTHONFAULTHANDLER": "1"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=60)


# A handler whose only owner is the yield point: a method-wrapper that holds its iterator, and
# the iterator's __next__ reads the iterator again after the call returns.
HANDLER_REPLACED = """
    import mmap
    from neptune_runtime import _yieldcore
    calls = []
    bell = mmap.mmap(-1, 4096)

    def then() -> None:
        calls.append("then")

    def replace_me() -> int:
        calls.append(WHO)
        _yieldcore.install(then, bell=bell)  # drops the yield point's reference to the handler
        return 1

    handler = iter(replace_me, None).__next__
    if WHO == "on_signal":
        _yieldcore.install(handler, bell=bell)
        _yieldcore.request()
    else:
        _yieldcore.install(None, bell=bell, on_forewarn=handler)
        bell[1] = 1  # the driver forewarns
    del handler
    _yieldcore.checkpoint()
    _yieldcore.request()
    _yieldcore.checkpoint()
    assert calls == [WHO, "then"], calls
    _yieldcore.install(None)
    print("survived")
"""


@pytest.mark.parametrize("who", ["on_signal", "on_forewarn"])
def test_a_handler_may_install_another_while_it_runs(who: str) -> None:
    proc = _isolated(f"WHO = {who!r}\n" + textwrap.dedent(HANDLER_REPLACED))
    assert proc.returncode == 0 and "survived" in proc.stdout, (proc.returncode, proc.stderr)


def test_a_forewarning_handler_may_drop_the_doorbell() -> None:
    proc = _isolated("""
        import mmap
        from neptune_runtime import _yieldcore
        bell = mmap.mmap(-1, 4096)
        dropped = []

        def forewarned() -> None:
            _yieldcore.install(lambda: None)  # no doorbell any more (an executor reconnecting)
            dropped.append(1)

        _yieldcore.install(lambda: None, bell=bell, on_forewarn=forewarned)
        bell[1] = 1
        _yieldcore.checkpoint()
        assert dropped == [1]
        _yieldcore.install(None)
        print("survived")
    """)
    assert proc.returncode == 0 and "survived" in proc.stdout, (proc.returncode, proc.stderr)


def test_the_longest_gap_between_yield_points_is_measured_and_taken() -> None:
    yieldpoint.install(lambda: None, interval_us=100)
    yieldpoint.task_switched_in()
    for _ in yieldpoint.yielding(range(20_000)):  # fast records: the stride grows
        pass
    fast = yieldpoint.task_switched_in()
    assert 0 <= fast < 1_000_000, f"fast records measured as {fast} ns"
    for _ in yieldpoint.yielding(range(4)):  # coarse records, right after fast ones
        time.sleep(0.02)
    coarse = yieldpoint.task_switched_in()
    assert coarse >= 15_000_000, f"20 ms records measured as {coarse} ns"
    assert yieldpoint.task_switched_in() < 1_000_000, "the gap was not taken"


def test_the_stride_shrinks_at_once_when_records_turn_coarse() -> None:
    # polled for after each coarse record, not after dozens: across hosts the poll is what
    # notices a preemption
    yieldpoint.install(lambda: None, interval_us=100)
    yieldpoint.task_switched_in()

    def busy(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    for _ in yieldpoint.yielding(range(5_000)):
        busy(2e-6)
    before = yieldpoint.stride()
    assert before > 4, before
    for _ in yieldpoint.yielding(range(before + 2)):
        busy(2e-3)
    assert yieldpoint.stride() == 1, f"from {before}, the stride went to {yieldpoint.stride()}"


def test_a_signal_after_a_stall_carries_the_stall_in_its_span() -> None:
    # what tells a preemption noticed late because the task ran no yield point (a collection,
    # another thread's GIL) from one whose poll came late
    spans: list[int] = []
    yieldpoint.install(lambda: spans.append(_yieldcore.fired_span()), interval_us=100)
    yieldpoint.task_switched_in()
    for _ in range(1000):
        yieldpoint.checkpoint()
    yieldpoint.request()
    yieldpoint.checkpoint()
    time.sleep(0.01)  # the task stalls between two yield points
    yieldpoint.request()
    yieldpoint.checkpoint()
    assert len(spans) == 2, spans
    assert spans[0] < 5_000_000, f"a signal with no stall spans {spans[0]} ns"
    assert spans[1] >= 10_000_000, f"a 10 ms stall gave a span of {spans[1]} ns"
