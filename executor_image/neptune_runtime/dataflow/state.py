"""A window operator's state during one task, kept in the partition's keyed state.

Per operator (its state name N), three maps of `ctx.keyed_state`:
- N: encoded key -> [timer, windows, buffer]: the key's open windows ([start, end, accs...]),
  a sliding window's buffered values, and the time of the key's earliest pending timer;
- N.timers and N.chunks: the timers, by bucket of due time. N.timers maps a bucket to [earliest
  due, chunks]; N.chunks maps msgpack([bucket, i]) to a list of [due, encoded key]. A task
  appends one chunk per bucket it adds to, so no task rewrites what others wrote; a bucket is
  read only when its earliest due has come, and is then consumed (what stays of it is written
  back as one chunk).
The operator's highest event time is "N.clock" in the "dataflow" map, and "N.floor" the
watermark an idle lane raised it to (windows.idle_floor), if one did.

A key always has a timer at or before the time it is next due (its first window's end): when
the watermark passes it, the key is woken, its closed windows are handed out and removed, and
its next timer is set; a key without windows is deleted. So the state holds open windows only,
and a watermark's advance costs what it closes, not what is open.

Reads go into a cache for the task and are written back once, at its end (`flush`): the
runtime then keeps the writes apart until the task succeeds (keyed.py). Nothing read is
changed in place (windows.py returns new lists), so a failed task leaves the state it read
as it was.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any

import msgpack

from ..keyed import Key
from .aggregate import Named
from .errors import BadRecord
from .windows import Entry, Number, Window, idle_floor, watermark

Store = Callable[[str], MutableMapping[Any, Any]]
_INT64 = (-(2**63), 2**64)


def encode_key(key: Any) -> Key:
    """A record's key as keyed state holds it: a str or an int as it is, anything else as its
    msgpack bytes (BadRecord if msgpack cannot encode it)."""
    kind = type(key)
    if kind is str or (kind is int and _INT64[0] <= key < _INT64[1]):
        return key  # type: ignore[no-any-return]
    try:
        data: bytes = msgpack.packb(key, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        raise BadRecord(f"key {key!r} (a {kind.__name__}) cannot be kept in keyed state: use "
                        "a str, int, float, bool, bytes, None or a tuple of them") from None
    return data


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def decode_key(enc: Key) -> Any:
    """The key that `encode_key` encoded (tuples come back as tuples)."""
    if isinstance(enc, bytes):
        return _frozen(msgpack.unpackb(enc, raw=False, use_list=True))
    return enc


def _chunk(bucket: Number, index: int) -> bytes:
    data: bytes = msgpack.packb([bucket, index])
    return data


class Timers:
    """The keys due at a time, by bucket (see the module); one task's view."""

    def __init__(self, directory: MutableMapping[Any, Any], chunks: MutableMapping[Any, Any],
                 window: Window) -> None:
        self.directory = directory
        self.chunks = chunks
        self.window = window
        self._seq = itertools.count()
        self.buckets: dict[Number, list[Any]] = {}  # bucket -> [earliest due, chunks stored]
        self.pending: list[tuple[Number, int, Number]] = []  # (due, seq, bucket), not read
        for bucket in directory:
            due, stored = directory[bucket]
            self.buckets[bucket] = [due, stored]
            self.pending.append((due, next(self._seq), bucket))
        heapq.heapify(self.pending)
        self.loaded: set[Number] = set()
        self.ready: list[tuple[Number, int, Key, Number]] = []  # (due, seq, key, bucket)
        self.added: dict[Number, list[list[Any]]] = {}  # unread buckets' new entries

    def add(self, due: Number, enc: Key) -> None:
        """Wake key `enc` once the watermark reaches `due`."""
        bucket = self.window.bucket(due)
        if bucket in self.loaded:
            heapq.heappush(self.ready, (due, next(self._seq), enc, bucket))
            return
        entry = self.buckets.get(bucket)
        if entry is None or due < entry[0]:
            if entry is None:
                self.buckets[bucket] = [due, 0]
            else:
                entry[0] = due
            heapq.heappush(self.pending, (due, next(self._seq), bucket))
        self.added.setdefault(bucket, []).append([due, enc])

    def due(self, mark: Number) -> Iterator[Key]:
        """The keys whose timers are due at watermark `mark`, by due time (a key may come
        more than once: its state says what is due)."""
        closed = self.window.closed
        while self.pending and closed(self.pending[0][0], mark):
            due, _, bucket = heapq.heappop(self.pending)
            entry = self.buckets.get(bucket)
            if bucket in self.loaded or entry is None or entry[0] != due:
                continue  # superseded by an earlier due of the same bucket
            self.loaded.add(bucket)
            for index in range(entry[1]):
                for when, enc in self.chunks.get(_chunk(bucket, index), ()):
                    heapq.heappush(self.ready, (when, next(self._seq), enc, bucket))
            for when, enc in self.added.pop(bucket, ()):
                heapq.heappush(self.ready, (when, next(self._seq), enc, bucket))
        while self.ready and closed(self.ready[0][0], mark):
            yield heapq.heappop(self.ready)[2]

    def flush(self) -> None:
        """Write this task's timers back: new chunks, and the read buckets' remainders."""
        rest: dict[Number, list[list[Any]]] = {}
        for due, _, enc, bucket in self.ready:
            rest.setdefault(bucket, []).append([due, enc])
        for bucket, (due, stored) in self.buckets.items():
            if bucket in self.loaded:
                for index in range(stored):
                    self.chunks.pop(_chunk(bucket, index), None)
                kept = rest.get(bucket)
                if kept:
                    self.chunks[_chunk(bucket, 0)] = kept
                    self.directory[bucket] = [min(d for d, _ in kept), 1]
                else:
                    self.directory.pop(bucket, None)
            elif bucket in self.added:
                self.chunks[_chunk(bucket, stored)] = self.added[bucket]
                self.directory[bucket] = [due, stored + 1]


class WindowState:
    """One window operator's state during one task (see the module)."""

    def __init__(self, name: str, window: Window, grace: Number, aggs: Named, store: Store,
                 meta: MutableMapping[Any, Any]) -> None:
        self.name = name
        self.window = window
        self.grace = grace
        self.aggs = aggs
        self.values = store(name)
        self.timers = Timers(store(f"{name}.timers"), store(f"{name}.chunks"), window)
        self.meta = meta
        self.clock: Number | None = meta.get(f"{name}.clock")
        self.floor: Number | None = meta.get(f"{name}.floor")
        self.mark = watermark(self.clock, grace, self.floor)
        self.clock_moved = self.floor_moved = False
        self.cache: dict[Key, list[Any] | None] = {}
        self.dirty: set[Key] = set()

    def _get(self, enc: Key) -> list[Any] | None:
        try:
            return self.cache[enc]
        except KeyError:
            pass
        stored = self.values.get(enc)
        # windows.py never changes a list it is given, so the windows and the buffer are
        # shared with the stored value, not copied; only this outer list is changed
        value = None if stored is None else [stored[0], stored[1], stored[2]]
        self.cache[enc] = value
        return value

    def windows(self, enc: Key) -> list[Entry]:
        """The open windows of key `enc`."""
        value = self._get(enc)
        return [] if value is None else list(value[1])

    def add(self, enc: Key, t: Number, vals: Sequence[Any]) -> list[Entry]:
        """A record of key `enc` at time t (not late): the windows it updated. BadRecord from
        an aggregation leaves the state as it was."""
        value = self._get(enc)
        if value is None:
            windows, buffer, updated = self.window.add([], [], t, vals, self.aggs)
            value = self.cache[enc] = [None, windows, buffer]
        else:
            value[1], value[2], updated = self.window.add(value[1], value[2], t, vals,
                                                          self.aggs)
        self._reschedule(enc, value)
        return updated

    def _reschedule(self, enc: Key, value: list[Any]) -> None:
        self.dirty.add(enc)
        due = self.window.due(value[1], value[2])
        if due is None:
            self.cache[enc] = None
        elif value[0] is None or due < value[0]:
            self.timers.add(due, enc)
            value[0] = due

    def advance(self, t: Number) -> Iterator[tuple[Key, list[Entry]]]:
        """Take time t into the clock; if the watermark moves, the (key, windows) it closes."""
        if self.clock is not None and t <= self.clock:
            return
        self.clock, self.clock_moved = t, True
        mark = t - self.grace
        floor = self.floor
        if floor is not None and floor > mark:
            mark = floor
        self.mark = mark
        yield from self._close(mark)

    def idle(self) -> Iterator[tuple[Key, list[Entry]]]:
        """The lane went idle: raise the watermark to close every open window (the (key,
        windows) closed); later records below it are late."""
        floor = idle_floor(self.window, self.clock, self.mark)
        if floor is None:
            return
        self.floor = self.mark = floor
        self.floor_moved = True
        yield from self._close(floor)

    def _close(self, mark: Number) -> Iterator[tuple[Key, list[Entry]]]:
        for enc in self.timers.due(mark):
            closed = self._wake(enc, mark)
            if closed:
                yield enc, closed

    def _wake(self, enc: Key, mark: Number) -> list[Entry]:
        value = self._get(enc)
        if value is None:
            return []  # a timer of a key since removed
        timer = value[0]
        if timer is not None and self.window.closed(timer, mark):
            value[0] = None
        buffer = value[2]
        closed, value[1], value[2] = self.window.expire(value[1], buffer, mark)
        if closed or value[0] is None or value[2] is not buffer:
            self._reschedule(enc, value)
        return closed

    def flush(self) -> None:
        """Write the task's changes into keyed state."""
        for enc in self.dirty:
            value = self.cache[enc]
            if value is None:
                self.values.pop(enc, None)
            else:
                self.values[enc] = value
        self.dirty.clear()
        self.timers.flush()
        if self.clock_moved:
            self.meta[f"{self.name}.clock"] = self.clock
            self.clock_moved = False
        if self.floor_moved:
            self.meta[f"{self.name}.floor"] = self.floor
            self.floor_moved = False
