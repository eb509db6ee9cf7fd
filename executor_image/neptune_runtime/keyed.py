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
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import msgpack

from . import collector

Key = str | int | float | bool | bytes
KEY_TYPES = (str, int, float, bool, bytes)
_MISSING: Any = object()
DELETED: Any = None  # a change that removes a key (values themselves are never None)
BULK = 10_000  # a task's changes past this are listed with the collector paused (collector.py)


class StateError(Exception):
    """A key or value that keyed state cannot hold."""


class PartitionState:
    """One partition's keyed state on its executor: named maps of key -> value."""

    def __init__(self, maps: dict[str, dict[Key, Any]] | None = None) -> None:
        self.maps: dict[str, dict[Key, Any]] = maps or {}

    def begin(self) -> TaskState:
        """A task's view of this state, its writes kept apart until it succeeds."""
        return TaskState(self)


def _unstorable(changes: list[list[Any]], error: Exception) -> str:
    """Which change cannot be stored, in words."""
    for name, key, value in changes:
        for what, item in (("value", value), ("key", key)):
            try:
                msgpack.packb(item, use_bin_type=True)
            except (TypeError, ValueError, OverflowError) as exc:
                return (f"keyed state {name!r}: the {what} for key {key!r} cannot be stored "
                        f"({type(item).__name__}: {exc}); store numbers, strings, bytes, "
                        "lists or dicts of them")
    return f"keyed state: the task's changes cannot be stored: {error}"


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

    def changes(self) -> list[list[Any]]:
        """[[name, key, value or None], ...]: the task's writes, checked to be storable (raises
        StateError naming the first one that is not)."""
        with collector.paused(sum(len(v.overlay) for v in self.views.values()) > BULK):
            out = [[name, key, value]  # value None: DELETED
                   for name, view in self.views.items() for key, value in view.overlay.items()]
        try:  # all at once, in C: a packb per value was most of a 1M-key task's changes
            msgpack.packb(out, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise StateError(_unstorable(out, exc)) from None
        return out

    def commit(self) -> None:
        """Merge the task's writes into the partition's state."""
        for view in self.views.values():
            # in C, then the few deletions (DELETED is None, and None is never a value)
            view.base.update(view.overlay)
            for key in [k for k, v in view.overlay.items() if v is DELETED]:
                del view.base[key]
        self.views.clear()


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
