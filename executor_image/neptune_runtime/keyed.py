"""Keyed state: a dict-like store per key, living with a stream partition (pure).

A keyed stream job's partition runs one task at a time, on the executor that holds the
partition's state (the driver pins its tasks there). A task reads and writes
`ctx.keyed_state(name)`; its writes go to an overlay, kept apart until the task ends:
- it succeeds: the overlay is merged into the partition's state, and its changes travel with the
  task's `finished` message to the driver, whose checkpoint store makes them durable together
  with the offsets they reflect (checkpoints.py);
- it fails (or its executor is lost): the overlay is dropped, so a re-run applies its events
  once, not twice.
Keys are str, int, float, bool or bytes; values anything msgpack encodes (numbers, strings,
bytes, lists, maps). A value that cannot be stored fails its task with a message that names it.

Changes travel packed: [name, msgpack map {key: value, or None for a removed key}], CHUNK keys a
map. Packing a dict is one C call (listing and packing 1M changes as [name, key, value] rows
took 0.47 s, against 0.14 s), and the driver, which only hands them on, unpacks none of them:
the checkpoint writer's process unpacks what it writes, and a lane placed anew gets the store's
rows, packed the same way, and the changes since (driver/streams.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from itertools import islice
from typing import Any

import msgpack

from . import collector

Key = str | int | float | bool | bytes
KEY_TYPES = (str, int, float, bool, bytes)
_MISSING: Any = object()
DELETED: Any = None  # a change that removes a key (values themselves are never None)
CHUNK = 5_000  # keys a packed map: unpacking one takes ~2-3 ms, a step between other work
Change = list[Any]  # [name, packed map]


class StateError(Exception):
    """A key or value that keyed state cannot hold."""


class PartitionState:
    """One partition's keyed state on its executor: named maps of key -> value."""

    def __init__(self, maps: dict[str, dict[Key, Any]] | None = None) -> None:
        self.maps: dict[str, dict[Key, Any]] = maps or {}

    def begin(self) -> TaskState:
        """A task's view of this state, its writes kept apart until it succeeds."""
        return TaskState(self)

    def restore(self, changes: Iterable[Change]) -> None:
        """Apply packed changes, in order: how a new owner gets the lane's state (ValueError
        if one does not unpack)."""
        for change in changes:
            name, entries = unpacked(change)
            merge(self.maps.setdefault(name, {}), entries)


def _unstorable(name: str, entries: Iterable[tuple[Key, Any]], error: Exception) -> str:
    """Which change cannot be stored, in words."""
    for key, value in entries:
        for what, item in (("value", value), ("key", key)):
            try:
                msgpack.packb(item, use_bin_type=True)
            except (TypeError, ValueError, OverflowError) as exc:
                return (f"keyed state {name!r}: the {what} for key {key!r} cannot be stored "
                        f"({type(item).__name__}: {exc}); store numbers, strings, bytes, "
                        "lists or dicts of them")
    return f"keyed state {name!r}: the task's changes cannot be stored: {error}"


def _parts(changes: Mapping[Key, Any]) -> Iterator[dict[Key, Any]]:
    items = iter(changes.items())
    while part := dict(islice(items, CHUNK)):
        yield part


def _pack(name: str, part: dict[Key, Any]) -> Change:
    try:
        return [name, msgpack.packb(part, use_bin_type=True)]
    except (TypeError, ValueError, OverflowError) as exc:
        raise StateError(_unstorable(name, part.items(), exc)) from None


def packed(name: str, changes: Mapping[Key, Any]) -> Iterator[Change]:
    """`changes` (key -> value, None: removed) as packed maps of CHUNK keys (StateError naming
    the first change that cannot be stored)."""
    for part in _parts(changes):
        yield _pack(name, part)


def merge(target: dict[Key, Any], entries: Mapping[Key, Any]) -> None:
    """Apply changes (key -> value, None: removed) to a map."""
    target.update(entries)  # in C, then the few removals (None is never a value)
    for key in [k for k, v in entries.items() if v is DELETED]:
        del target[key]


def are_changes(value: Any) -> bool:
    """Whether `value` is a list of packed changes as they travel: [[name, bytes], ...]."""
    return isinstance(value, list) and all(
        isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) and isinstance(c[1], bytes)
        for c in value)


def unpacked(change: Change) -> tuple[str, dict[Key, Any]]:
    """A packed change's name and map (key -> value, None: removed)."""
    name, data = change
    try:
        with collector.paused(len(data) > 1 << 16):
            entries = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ValueError(f"keyed state {name!r}: undecodable changes: {exc}") from None
    if not isinstance(entries, dict):
        raise ValueError(f"keyed state {name!r}: changes are not a map")
    return name, entries


class TaskState:
    """What one task sees and changes of its partition's state."""

    def __init__(self, partition: PartitionState) -> None:
        self.partition = partition
        self.views: dict[str, KeyedState] = {}

    def view(self, name: str) -> KeyedState:
        """The keyed state `name` as this task sees it."""
        view = self.views.get(name)
        if view is None:
            view = self.views[name] = KeyedState(
                name, self.partition.maps.setdefault(name, {}))
        return view

    @property
    def size(self) -> int:
        """How many keys the task changed."""
        return sum(len(view.overlay) for view in self.views.values())

    def changes(self) -> list[Change]:
        """The task's writes, packed (module docstring); StateError names the first one that
        cannot be stored."""
        return [change for name, view in self.views.items()
                for change in packed(name, view.overlay)]

    def commit(self) -> None:
        """Merge the task's writes into the partition's state."""
        for view in self.views.values():
            merge(view.base, view.overlay)
        self.views.clear()

    def shipments(self) -> Iterator[Change | None]:
        """changes() then commit(), a packed map a step, for the executor to run between other
        tasks: each change packed, then a None for each step of the merge. Nothing is merged
        before every change is packed (StateError: the task fails, and none of its writes
        stay). The smaller map goes into the larger: a dict that grows past its room copies
        itself whole, and merging a 1M-key task into a small state a map at a time took steps
        of 16-35 ms as the state grew; the task's own map has the room already."""
        steps: list[Iterator[None]] = []
        for name, view in self.views.items():
            parts = []
            removed: list[Key] = []
            adopt = len(view.overlay) > len(view.base)
            for part in _parts(view.overlay):
                yield _pack(name, part)
                if adopt:
                    removed += [k for k, v in part.items() if v is DELETED]
                else:
                    parts.append(part)
            steps.append(_adopting(self.partition.maps, name, view, removed) if adopt
                         else _merging(view.base, parts))
        for step in steps:
            yield from step
        self.views.clear()


def _merging(base: dict[Key, Any], parts: list[dict[Key, Any]]) -> Iterator[None]:
    parts.reverse()
    while parts:
        merge(base, parts.pop())  # and freed, a part a step
        yield None


def _adopting(maps: dict[str, dict[Key, Any]], name: str, view: KeyedState,
              removed: list[Key]) -> Iterator[None]:
    """The task's overlay becomes the map `name`, the state's other keys added to it and its
    removals done, a CHUNK a step; the state is the old map until the last."""
    overlay = view.overlay
    for part in _parts(view.base):
        for key, value in part.items():
            overlay.setdefault(key, value)  # a key the task wrote keeps its write
        yield None
    for at in range(0, len(removed), CHUNK):
        for key in removed[at:at + CHUNK]:
            del overlay[key]
        yield None
    maps[name] = overlay


class KeyedState(MutableMapping[Key, Any]):
    """`ctx.keyed_state(name)`: a dict per key of this task's partition."""

    def __init__(self, name: str, base: dict[Key, Any]) -> None:
        self.name = name
        self.base = base
        self.overlay: dict[Key, Any] = {}

    def _check(self, key: Any) -> None:
        if not isinstance(key, KEY_TYPES):
            raise StateError(f"keyed state {self.name!r}: key {key!r} is a "
                             f"{type(key).__name__}; use str, int, float, bool or bytes")

    def __getitem__(self, key: Key) -> Any:
        value = self.overlay.get(key, _MISSING)
        if value is _MISSING:
            return self.base[key]
        if value is DELETED:
            raise KeyError(key)
        return value

    def get(self, key: Key, default: Any = None) -> Any:
        value = self.overlay.get(key, _MISSING)
        if value is _MISSING:
            return self.base.get(key, default)
        return default if value is DELETED else value

    def __setitem__(self, key: Key, value: Any) -> None:
        self._check(key)
        if value is None:
            raise StateError(f"keyed state {self.name!r}: None is not a value (to remove key "
                             f"{key!r}, use del)")
        self.overlay[key] = value

    def __delitem__(self, key: Key) -> None:
        if key not in self:
            raise KeyError(key)
        self.overlay[key] = DELETED

    def __contains__(self, key: object) -> bool:
        value = self.overlay.get(key, _MISSING)  # type: ignore[call-overload]
        if value is _MISSING:
            return key in self.base
        return value is not DELETED

    def __iter__(self) -> Iterator[Key]:
        for key in self.base:
            if self.overlay.get(key, _MISSING) is not DELETED:
                yield key
        for key, value in self.overlay.items():
            if value is not DELETED and key not in self.base:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)
