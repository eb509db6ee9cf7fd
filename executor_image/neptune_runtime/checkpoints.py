"""The driver's checkpoint store: keyed state and the offsets it reflects, in one write.

A keyed stream job's partitions keep their state on executors (keyed.py); every finished task's
changes come to the driver with its `finished` message. Once the task's outputs are handed on,
its changes are committed here with the partition's token in one atomic, synced RocksDB write
batch: restoring a checkpoint and replaying the source from its token never counts an event
twice in state. The store is the directory `keyed.rocksdb` in the checkpoint directory (the
driver's state directory by default). rocksdict rather than SQLite: a checkpoint of 1M changed
keys took 0.74 s against 8.7 s (bench/results/keyed_store.md). A write holds the GIL
throughout, so while the driver runs its writes are made in a process of its own
(checkpoint_writer.py).

With a Kafka transaction in the way (exactly-once), a checkpoint is first written as pending,
then the transaction commits, then the pending one is confirmed. A driver that died in between
asks Kafka: the group's committed offsets say whether that transaction committed
(`settle`), so the state stays consistent with the offsets Kafka resumes from.

Keys: b"s" + msgpack([job, partition, name, key]) -> msgpack(value); b"o" + msgpack([job,
partition]) -> JSON token; b"pending" -> msgpack({"changes", "tokens"}).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import msgpack
from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from .keyed import CHUNK, Change, unpacked

DIRECTORY = "keyed.rocksdb"
Lane = tuple[str, int]  # (job, partition)
PENDING = b"pending"


LOCK_WAIT = 10.0  # seconds: the writer of a driver that just died may still hold the lock


def _open(path: Path) -> Rdict:
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            return Rdict(str(path), Options(raw_mode=True))
        except Exception as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _pack(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def _map_header(size: int) -> bytes:
    """A msgpack map header: `size` key-value pairs follow it."""
    if size < 16:
        return bytes([0x80 | size])
    return (b"\xde" + size.to_bytes(2, "big") if size < 1 << 16
            else b"\xdf" + size.to_bytes(4, "big"))


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)


class CheckpointStore:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / DIRECTORY
        self._db = _open(self.path)
        self._synced = WriteOptions()
        self._synced.sync = True  # durable when `write` returns
        self._lock = threading.Lock()  # commits run in a worker thread

    def tokens(self) -> dict[Lane, Any]:
        """Every lane's committed token."""
        with self._lock:
            return {tuple(_unpack(row)): json.loads(value)
                    for row, value in self._rows(b"o")}

    def changes(self, lane: Lane, name: str | None = None) -> list[Change]:
        """The lane's state (of its map `name` alone, if given) as packed changes (keyed.py),
        CHUNK keys a map, made of the rows' bytes as they are: a row's key ends with its packed
        key, and its value is packed."""
        prefix = b"s\x94" + _pack(lane[0]) + _pack(lane[1])
        out: list[Change] = []
        current: str | None = None  # the name of the rows in `part`
        name_prefix = b""
        part: list[bytes] = []

        def flush() -> None:
            if part and current is not None:
                out.append([current, _map_header(len(part) // 2) + b"".join(part)])
            part.clear()

        with self._lock:
            for row, value in self._rows(prefix, _pack(name) if name is not None else b""):
                if not name_prefix or not row.startswith(name_prefix):
                    flush()
                    current = _unpack(b"\x94" + prefix[2:] + row)[2]
                    name_prefix = _pack(current)
                part += (row[len(name_prefix):], value)
                if len(part) == 2 * CHUNK:
                    flush()
            flush()
        return out

    def _rows(self, prefix: bytes, within: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(key without the prefix, value) of the rows under `prefix` + `within`, in key
        order."""
        start = prefix + within
        for raw, value in cast(Iterable[tuple[bytes, bytes]],
                               self._db.items(from_key=start)):
            if not raw.startswith(start):
                return
            yield raw[len(prefix):], value

    def commit(self, changes: dict[Lane, list[Change]], tokens: dict[Lane, Any]) -> None:
        """Apply the lanes' changes and set their tokens, in one durable write."""
        self.write(_batch(changes, tokens))

    def write(self, batch: Batch) -> None:
        with self._lock:
            self._db.write(batch.batch, self._synced)

    def prepare(self, changes: dict[Lane, list[Change]], tokens: dict[Lane, Any]) -> None:
        """Write a checkpoint as pending, before the Kafka transaction that it goes with."""
        document = {"changes": [[j, p, c] for (j, p), c in changes.items()],
                    "tokens": [[j, p, t] for (j, p), t in tokens.items()]}
        with self._lock:
            self._db.put(PENDING, _pack(document), self._synced)

    def pending(self) -> tuple[dict[Lane, list[Change]], dict[Lane, Any]] | None:
        with self._lock:
            raw = self._db.get(PENDING)
        if raw is None:
            return None
        document = _unpack(cast(bytes, raw))
        return ({(j, p): c for j, p, c in document["changes"]},
                {(j, p): t for j, p, t in document["tokens"]})

    def settle(self, committed: bool) -> None:
        """The pending checkpoint's transaction committed (apply it) or did not (drop it)."""
        found = self.pending()
        if found is None:
            return
        batch = _batch(*found) if committed else Batch()
        batch.batch.delete(PENDING)
        self.write(batch)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Batch:
    """One checkpoint's write batch, built a lane's changes at a time (the writer process adds
    them as their chunks arrive), then its tokens."""

    def __init__(self) -> None:
        self.batch = WriteBatch(raw_mode=True)
        # A msgpack array is its header and its items' packs one after the other: the rows'
        # b"s" + pack([job, partition, name, key]) is built from a prefix packed once per
        # name, with one Packer (a packb per row was most of a 1M-key checkpoint's time).
        self._pack = msgpack.Packer(use_bin_type=True).pack
        self._prefixes: dict[Lane, dict[str, bytes]] = {}

    def add(self, lane: Lane, changes: list[Change]) -> None:
        pack = self._pack
        prefixes = self._prefixes.setdefault(lane, {})
        put, delete = self.batch.put, self.batch.delete
        for change in changes:
            name, entries = unpacked(change)
            prefix = prefixes.get(name)
            if prefix is None:
                prefix = prefixes[name] = b"s\x94" + pack(lane[0]) + pack(lane[1]) + pack(name)
            for key, value in entries.items():
                if value is None:
                    delete(prefix + pack(key))
                else:
                    put(prefix + pack(key), pack(value))

    def finish(self, tokens: dict[Lane, Any]) -> Batch:
        for (job, part), token in tokens.items():
            self.batch.put(b"o" + _pack([job, part]), json.dumps(token).encode())
        return self


def _batch(changes: dict[Lane, list[Change]], tokens: dict[Lane, Any]) -> Batch:
    batch = Batch()
    for lane, lane_changes in changes.items():
        batch.add(lane, lane_changes)
    return batch.finish(tokens)

