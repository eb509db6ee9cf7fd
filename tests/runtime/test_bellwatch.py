"""The bell watcher (C, _bellwatch.c): a real thread, a real socket, a real doorbell page."""

from __future__ import annotations

import mmap
import socket
import time
from collections.abc import Iterator

import pytest

from neptune_runtime import _bellwatch, yieldpoint
from neptune_runtime.doorbell import Bell


@pytest.fixture
def watched() -> Iterator[tuple[Bell, socket.socket, socket.socket]]:
    """A bell watched on one end of a socket pair: (bell, the watched end, the sender)."""
    bell = Bell()
    left, right = socket.socketpair()
    _bellwatch.start(left.fileno(), bell.mapping)
    yield bell, left, right
    _bellwatch.stop()
    left.close()
    right.close()
    bell.close()


def _rung_within(bell: Bell, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if bell.rung():
            return True
        time.sleep(0.0005)
    return bell.rung()


def test_each_arrival_rings_once_and_unread_bytes_ring_no_more(
        watched: tuple[Bell, socket.socket, socket.socket]) -> None:
    bell, left, right = watched
    assert _bellwatch.running()
    assert not _rung_within(bell, 0.05)  # nothing sent, nothing rung
    before = _bellwatch.rings()
    right.sendall(b"x")
    assert _rung_within(bell, 2.0), "the watcher did not ring for bytes that arrived"
    bell.clear()
    # edge-triggered: the unread byte does not ring again (no thread spinning on it)
    assert not _rung_within(bell, 0.05)
    right.sendall(b"y")  # a new arrival rings again, read or not
    assert _rung_within(bell, 2.0)
    assert left.recv(16) == b"xy"
    assert _bellwatch.rings() - before == 2


def test_a_closed_peer_rings_so_the_executor_reads_the_end(
        watched: tuple[Bell, socket.socket, socket.socket]) -> None:
    bell, left, right = watched
    right.close()
    assert _rung_within(bell, 2.0)
    assert left.recv(16) == b""


def test_stop_is_idempotent_and_a_second_start_replaces_the_first() -> None:
    bell = Bell()
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    try:
        _bellwatch.start(a.fileno(), bell.mapping)
        _bellwatch.start(c.fileno(), bell.mapping)  # one watcher per process: the second
        b.sendall(b"x")
        assert not _rung_within(bell, 0.05)
        d.sendall(b"x")
        assert _rung_within(bell, 2.0)
        _bellwatch.stop()
        _bellwatch.stop()
        assert not _bellwatch.running()
        bell.clear()
        d.sendall(b"x")
        assert not _rung_within(bell, 0.05)  # stopped: nothing writes into the page
    finally:
        _bellwatch.stop()
        for s in (a, b, c, d):
            s.close()
        bell.close()


def test_a_bad_mapping_or_socket_is_refused() -> None:
    small = mmap.mmap(-1, 64)
    with pytest.raises(ValueError, match="too small"):
        _bellwatch.start(0, small)
    bell = Bell()
    try:
        with pytest.raises(OSError):
            _bellwatch.start(-1, bell.mapping)
        assert not _bellwatch.running()
    finally:
        bell.close()
        small.close()


def test_the_watcher_can_be_switched_off_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEPTUNE_BELL_WATCH", raising=False)
    assert yieldpoint.Settings.from_env().watch
    monkeypatch.setenv("NEPTUNE_BELL_WATCH", "0")
    assert not yieldpoint.Settings.from_env().watch
    monkeypatch.setenv("NEPTUNE_BELL_WATCH", "yes")
    with pytest.raises(ValueError, match="NEPTUNE_BELL_WATCH must be 1"):
        yieldpoint.Settings.from_env()
