"""The checkpoint writer process (checkpoint_writer.py): real child processes, a real RocksDB
store; what it wrote is read back with the driver's own CheckpointStore."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from neptune_runtime.checkpoint_writer import CHUNK, CheckpointWriter
from neptune_runtime.checkpoints import CheckpointStore, Lane
from neptune_runtime.keyed import CHUNK as KEYS
from neptune_runtime.keyed import packed

from .changes import Maps, load, pack

LANE = ("agg", 0)


def _load(directory: Path) -> tuple[dict[Lane, Maps], dict[Lane, Any]]:
    store = CheckpointStore(directory)
    try:
        return load(store)
    finally:
        store.close()


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether a process that is not our child ended (init reaps it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as stat:  # a zombie until its new parent reaps it
                if stat.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_commits_are_written_by_the_child_and_read_back(tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path)
    writer.start()
    assert writer.pid is not None and writer.pid != os.getpid()
    writer.commit({LANE: pack([["n", "a", 1], ["n", "b", [2, 3]]])}, {LANE: 5})
    writer.commit({LANE: pack([["n", "a", None]])}, {LANE: 6})  # None: the key was removed
    writer.close()
    maps, tokens = _load(tmp_path)
    assert maps == {LANE: {"n": {"b": [2, 3]}}}
    assert tokens == {LANE: 6}


def test_a_checkpoint_larger_than_a_frame_arrives_whole(tmp_path: Path) -> None:
    keys = 2 * CHUNK * KEYS + 7  # two frames and a bit
    writer = CheckpointWriter(tmp_path)
    writer.commit({LANE: list(packed("n", {f"k{i}": i for i in range(keys)})),
                   ("agg", 1): pack([["m", 1, "x"]])}, {LANE: 9, ("agg", 1): 3})
    writer.close()
    maps, tokens = _load(tmp_path)
    assert len(maps[LANE]["n"]) == keys and maps[LANE]["n"][f"k{keys - 1}"] == keys - 1
    assert maps[("agg", 1)] == {"m": {1: "x"}}
    assert tokens == {LANE: 9, ("agg", 1): 3}


def test_prepare_then_settle(tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path)
    writer.prepare({LANE: pack([["n", "a", 1]])}, {LANE: 4})
    writer.settle(True)
    writer.prepare({LANE: pack([["n", "a", 2]])}, {LANE: 8})
    writer.settle(False)  # its transaction did not commit: dropped
    writer.close()
    store = CheckpointStore(tmp_path)
    try:
        assert store.pending() is None
        assert load(store) == ({LANE: {"n": {"a": 1}}}, {LANE: 4})
    finally:
        store.close()


def test_a_writer_killed_between_calls_is_replaced(tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path)
    writer.start()
    first = writer.pid
    assert first is not None
    writer.commit({LANE: pack([["n", "a", 1]])}, {LANE: 1})
    os.kill(first, signal.SIGKILL)
    os.waitid(os.P_PID, first, os.WEXITED | os.WNOWAIT)  # dead, all its threads (not reaped)
    writer.commit({LANE: pack([["n", "a", 2]])}, {LANE: 2})  # nothing was in flight: a new writer
    assert writer.pid not in (None, first)
    writer.close()
    assert _load(tmp_path) == ({LANE: {"n": {"a": 2}}}, {LANE: 2})


def test_a_writer_killed_during_a_commit_fails_it_and_the_retry_lands(tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path)
    writer.start()
    first = writer.pid
    assert first is not None
    big = {LANE: list(packed("n", {f"k{i}": i for i in range(500_000)}))}
    threading.Timer(0.05, os.kill, (first, signal.SIGKILL)).start()
    with pytest.raises(OSError, match="exited"):
        writer.commit(big, {LANE: 1})
    writer.commit(big, {LANE: 1})  # what the committer does: the same changes again
    writer.close()
    maps, tokens = _load(tmp_path)
    assert len(maps[LANE]["n"]) == 500_000 and tokens == {LANE: 1}


def test_changes_that_cannot_be_sent_reach_no_later_write(tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path)
    writer.commit({LANE: pack([["n", "a", 1]])}, {LANE: 1})
    unpackable = [*list(packed("n", {f"k{i}": i for i in range(CHUNK * KEYS)})), ["n", object()]]
    with pytest.raises(TypeError):
        writer.commit({LANE: unpackable}, {LANE: 2})
    writer.commit({LANE: pack([["n", "b", 3]])}, {LANE: 3})
    writer.close()
    assert _load(tmp_path) == ({LANE: {"n": {"a": 1, "b": 3}}}, {LANE: 3})


def test_undecodable_changes_fail_their_commit_and_nothing_of_it_is_written(
        tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path)
    writer.commit({LANE: pack([["n", "a", 1]])}, {LANE: 1})
    with pytest.raises(OSError, match="keyed state 'n': undecodable changes"):
        writer.commit({LANE: [*pack([["n", "b", 2]]), ["n", b"\xc1"]]}, {LANE: 2})
    writer.commit({LANE: pack([["n", "c", 3]])}, {LANE: 3})  # the same writer, a fresh batch
    with pytest.raises(OSError, match="undecodable changes"):  # and before a transaction
        writer.prepare({LANE: [["n", b"\xc1"]]}, {LANE: 4})
    writer.close()
    assert _load(tmp_path) == ({LANE: {"n": {"a": 1, "c": 3}}}, {LANE: 3})


def test_a_store_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "keyed.rocksdb").write_text("not a directory")
    writer = CheckpointWriter(tmp_path)
    with pytest.raises(OSError, match="cannot open the store"):
        writer.start()


def test_the_writer_dies_with_its_driver_and_frees_the_store(tmp_path: Path) -> None:
    script = ("import os, sys; from pathlib import Path\n"
              "from neptune_runtime.checkpoint_writer import CheckpointWriter\n"
              "w = CheckpointWriter(Path(sys.argv[1])); w.start()\n"
              "print(w.pid, flush=True); os._exit(0)\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    child = int(out.split()[0])
    assert _gone(child), f"the writer {child} outlived its driver"
    assert _load(tmp_path) == ({}, {})  # the store opens: its lock went with the writer
