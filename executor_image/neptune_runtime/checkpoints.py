"""The driver's checkpoint store: keyed state and the offsets it reflects, in one transaction.

A keyed stream job's partitions keep their state on executors (keyed.py); every finished task's
changes come to the driver with its `finished` message. Once the task's outputs are handed on,
its changes are committed here with the partition's token, atomically (one SQLite
transaction): restoring a checkpoint and replaying the source from its token never counts an
event twice in state. The file is `keyed.sqlite` in the checkpoint directory (the driver's
state directory by default), in WAL mode with synchronous=FULL: a commit is durable when it
returns. Keys and values are stored msgpack-encoded.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack

FILE = "keyed.sqlite"
Lane = tuple[str, int]  # (job, partition)
Change = list[Any]  # [name, key, value or None (removed)]
Maps = dict[str, dict[Any, Any]]


def _pack(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


class CheckpointStore:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / FILE
        # commits run in a worker thread, loads in the caller's: one connection, one lock
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript("""
                CREATE TABLE IF NOT EXISTS state (
                    job TEXT, part INTEGER, name TEXT, key BLOB, value BLOB,
                    PRIMARY KEY (job, part, name, key)) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS offsets (
                    job TEXT, part INTEGER, token TEXT, PRIMARY KEY (job, part)) WITHOUT ROWID;
            """)

    def load(self) -> tuple[dict[Lane, Maps], dict[Lane, Any]]:
        """Every lane's state (name -> key -> value) and committed token."""
        maps: dict[Lane, Maps] = {}
        with self._lock:
            for job, part, name, key, value in self._db.execute(
                    "SELECT job, part, name, key, value FROM state"):
                maps.setdefault((job, part), {}).setdefault(name, {})[_unpack(key)] = \
                    _unpack(value)
            tokens = {(job, part): json.loads(token) for job, part, token
                      in self._db.execute("SELECT job, part, token FROM offsets")}
        return maps, tokens

    def commit(self, changes: dict[Lane, list[Change]], tokens: dict[Lane, Any]) -> None:
        """Apply the lanes' changes and set their tokens, in one durable transaction."""
        upserts: list[tuple[str, int, str, bytes, bytes]] = []
        deletes: list[tuple[str, int, str, bytes]] = []
        for (job, part), lane_changes in changes.items():
            for name, key, value in lane_changes:
                if value is None:
                    deletes.append((job, part, name, _pack(key)))
                else:
                    upserts.append((job, part, name, _pack(key), _pack(value)))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)",
                                     upserts)
                self._db.executemany(
                    "DELETE FROM state WHERE job = ? AND part = ? AND name = ? AND key = ?",
                    deletes)
                self._db.executemany("INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                                     [(j, p, json.dumps(t)) for (j, p), t in tokens.items()])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()


def apply(maps: Maps, changes: Iterable[Change]) -> None:
    """Apply changes to a lane's state in memory (the driver's copy of it)."""
    for name, key, value in changes:
        if value is None:
            maps.get(name, {}).pop(key, None)
        else:
            maps.setdefault(name, {})[key] = value
