"""Shuffles between the stages of a batch job (the dataset API's wide operators).

A stage whose output a later stage reads ends each task by returning a `ShuffleOutput`: its
records split into buckets by a stable hash of their key (`bucket_of`: the same in every
executor process, unlike hash()). The executor keeps the buckets (`ShuffleStore`, spilling
past a bound to its local disk) and reports only their sizes. When every task of the stage has
finished, the driver fetches each output from the executor holding it, which then forgets it,
and hands every task of the next stage its bucket from all of them. An output lost with its
executor before it was fetched is computed again from lineage: its task runs again.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

SPILL_BYTES = 64 << 20  # an output whose encoded buckets are larger goes to disk


class ShuffleError(Exception):
    """A key that cannot be shuffled; the message names it."""


def bucket_of(key: Any, buckets: int) -> int:
    """The bucket of `key`, stable across processes and runs."""
    try:
        data = msgpack.packb(key, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ShuffleError(f"key {key!r} cannot be shuffled ({type(key).__name__}: {exc}); "
                           "keys are numbers, strings, bytes, or lists of them") from None
    return zlib.crc32(data) % buckets


def buckets_of(keys: Sequence[Any], buckets: int) -> list[int]:
    """bucket_of of every key, with one msgpack Packer for them all (packb makes one a call:
    most of bucket_of's time); ShuffleError naming the first key that cannot be shuffled."""
    pack = msgpack.Packer(use_bin_type=True).pack
    crc32 = zlib.crc32
    try:
        return [crc32(pack(key)) % buckets for key in keys]
    except (TypeError, ValueError, OverflowError):
        for key in keys:
            bucket_of(key, buckets)  # raises for the key that cannot be packed
        raise


@dataclass
class ShuffleOutput:
    """What a task of a shuffling stage returns: bucket -> records."""

    buckets: dict[int, list[Any]] = field(default_factory=dict)


Key = tuple[str, int, int, int]  # job, epoch, stage, partition


class ShuffleStore:
    """An executor's unfetched shuffle outputs, in memory or spilled to its local disk."""

    def __init__(self, directory: str | None = None, spill_bytes: int = SPILL_BYTES) -> None:
        self.spill_bytes = spill_bytes
        self._directory = directory
        self._memory: dict[Key, list[list[Any]]] = {}
        self._disk: dict[Key, Path] = {}

    def put(self, key: Key, output: ShuffleOutput) -> dict[int, int]:
        """Keep an output; returns its bucket sizes (records)."""
        pairs = [[bucket, records] for bucket, records in sorted(output.buckets.items())]
        body: bytes = msgpack.packb(pairs, use_bin_type=True)
        if len(body) > self.spill_bytes:
            if self._directory is None:
                self._directory = tempfile.mkdtemp(prefix="neptune-shuffle-")
            path = Path(self._directory) / f"{os.getpid()}-{'-'.join(map(str, key))}.msgpack"
            path.write_bytes(body)
            self._disk[key] = path
        else:
            self._memory[key] = pairs
        return {bucket: len(records) for bucket, records in output.buckets.items()}

    def take(self, key: Key) -> list[list[Any]] | None:
        """The output's [[bucket, records], ...], forgotten here; None if it is not here."""
        pairs = self._memory.pop(key, None)
        if pairs is not None:
            return pairs
        path = self._disk.pop(key, None)
        if path is None:
            return None
        try:
            data: list[list[Any]] = msgpack.unpackb(path.read_bytes(), raw=False,
                                                    strict_map_key=False)
            return data
        finally:
            path.unlink(missing_ok=True)

    @property
    def spilled_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._disk.values() if p.exists())

    def clear(self) -> None:
        self._memory.clear()
        for path in self._disk.values():
            path.unlink(missing_ok=True)
        self._disk.clear()
