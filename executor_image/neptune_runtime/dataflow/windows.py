"""Event-time windows and watermarks (pure).

A window operator reads each record's event time (a field, or a function of the record: a
number, or a datetime taken as its POSIX timestamp) and keeps, per key, the windows that are
still open. Its watermark is the highest event time seen in the source partition minus
`grace`:

- a record whose time is below the watermark is *late*: it is counted, can go to a side
  output, and changes no window;
- any other record updates every window it belongs to; none of them is closed (its end lies
  beyond the watermark);
- a window closes once the watermark passes its end, and is then emitted (by `final()`) and
  removed: the state holds open windows only.

The watermark is per source partition: one lane's records never close another lane's windows,
and an idle lane does not hold the others back. A lane that goes idle would hold its own open
windows forever, so after `idle_timeout` seconds (wall time) without a record in the lane, its
watermark is raised to its *reach*: the end of the last window its highest event time opened
(`Window.reach`). Every open window then closes, and a record that comes later is late if it
is below that watermark, so no window is emitted twice (`idle_floor`).

Kinds, with `size`, `step` and `gap` in the unit of the event times (a duration string such as
"30s" is seconds):

- `tumbling(size)`: [k*size, (k+1)*size), one per record; closes at watermark >= end;
- `hopping(size, step)`: [k*step, k*step + size), size/step of them per record; closes at
  watermark >= end;
- `sliding(size)`: one per distinct event time t of a key, over (t - size, t]: at each record,
  what the key did in the `size` before it, itself included; closes at watermark > t. It keeps
  the values of the key's records of the last `size` (plus grace) to start new windows from;
- `session(gap)`: a key's records closer than `gap` to each other: every record is the interval
  [t, t + gap), and overlapping intervals are one session [first, last + gap); a late-arriving
  record may join two sessions into one. Closes at watermark >= last + gap.

A window's state is a list [start, end, accumulator, ...] (aggregate.py); the functions here
return new lists and never change the ones they are given.
"""

from __future__ import annotations

import datetime
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from ..durations import parse_duration
from . import aggregate
from .aggregate import Named, field_value
from .errors import BadRecord

Number = int | float
Entry = list[Any]  # [start, end, accumulators...]
TimeOf = str | Callable[[Any], Any]
# buckets of the timers of sliding and session windows: this many per size (or gap), so a
# bucket due soon holds a small part of the keys (state.py)
BUCKETS_PER_SPAN = 16


def span(value: Any, what: str) -> Number:
    """A positive length of event time: a number as it is (in the event times' unit), or a
    duration string in seconds ('30s', '5m'), an int when whole."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what}: expected a number or a duration like '30s', got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{what}: must be a positive number, got {value!r}")
        return value
    seconds = parse_duration(value, what=what)
    return int(seconds) if seconds.is_integer() else seconds


def grace_of(value: Any) -> Number:
    """A grace period: 0, a positive number, or a duration string."""
    if not isinstance(value, bool) and isinstance(value, int | float) and value == 0:
        return 0
    return span(value, "grace")


class Window(ABC):
    """A kind of window: how records are assigned to windows of a key, and when they close."""

    kind = "window"
    strict = False  # closes when the watermark is beyond its end, not at it (sliding)
    span: Number  # its size (or gap): how long a window lasts, in the event times' unit

    @abstractmethod
    def describe(self) -> str:
        """The window as it reads in messages, e.g. tumbling(60)."""

    @abstractmethod
    def add(self, windows: list[Entry], buffer: list[Entry], t: Number, vals: Sequence[Any],
            aggs: Named) -> tuple[list[Entry], list[Entry], list[Entry]]:
        """A record at time t with the aggregations' values `vals`: the key's new windows
        (sorted by start), its new buffer, and the windows it updated (sorted by end)."""

    def closed(self, end: Number, watermark: Number) -> bool:
        """Whether a window ending at `end` is closed at `watermark`."""
        return end < watermark if self.strict else end <= watermark

    def expire(self, windows: list[Entry], buffer: list[Entry], watermark: Number
               ) -> tuple[list[Entry], list[Entry], list[Entry]]:
        """(the windows closed at `watermark`, sorted by end; the open ones; the buffer)."""
        closed = [w for w in windows if self.closed(w[1], watermark)]
        if not closed:
            return [], windows, buffer
        return (sorted(closed, key=lambda w: (w[1], w[0])),
                [w for w in windows if not self.closed(w[1], watermark)], buffer)

    def due(self, windows: list[Entry], buffer: list[Entry]) -> Number | None:
        """When the key must be looked at next: the first end of its windows (None: never)."""
        return min(w[1] for w in windows) if windows else None

    def bucket(self, due: Number) -> Number:
        """The timer bucket of a time at which a key is due (state.py)."""
        return due

    @abstractmethod
    def reach(self, high: Number) -> Number:
        """A watermark that closes every window (and forgets every buffered record) that
        records up to the highest event time `high` opened: the end of the last window a
        record at `high` belongs to (sliding: beyond it). Non-decreasing in `high`, so the
        reach of the partition's clock covers every record the partition counted."""

    def __repr__(self) -> str:
        return self.describe()


class Hopping(Window):
    """Windows [k*step, k*step + size): each record belongs to the ones that contain it."""

    kind = "hopping"

    def __init__(self, size: Any, step: Any) -> None:
        self.size = self.span = span(size, f"{self.kind} window: size")
        self.step = span(step, f"{self.kind} window: step")
        if self.step > self.size:
            raise ValueError(f"{self.kind} window: step {step!r} is longer than size {size!r} "
                             "(records between windows would belong to none)")

    def describe(self) -> str:
        """hopping(size, step)."""
        return f"hopping({self.size}, {self.step})"

    def assign(self, t: Number) -> list[tuple[Number, Number]]:
        """The (start, end) of every window that contains t, by start."""
        last = t - t % self.step
        out = []
        i = 0
        while True:
            start = last - i * self.step
            if start <= t - self.size:
                break
            out.append((start, start + self.size))
            i += 1
        out.reverse()
        return out

    def reach(self, high: Number) -> Number:
        """The end of the last window that contains `high`."""
        return high - high % self.step + self.size

    def add(self, windows: list[Entry], buffer: list[Entry], t: Number, vals: Sequence[Any],
            aggs: Named) -> tuple[list[Entry], list[Entry], list[Entry]]:
        """Fold the record into each window that contains it, starting those it opens."""
        by_start = {w[0]: w for w in windows}
        updated = []
        for start, end in self.assign(t):
            old = by_start.get(start)
            accs = aggregate.start(aggs, vals) if old is None else aggregate.fold(
                aggs, old[2:], vals)
            entry = [start, end, *accs]
            by_start[start] = entry
            updated.append(entry)
        return [by_start[s] for s in sorted(by_start)], buffer, updated


class Tumbling(Hopping):
    """Windows [k*size, (k+1)*size): each record belongs to exactly one."""

    kind = "tumbling"

    def __init__(self, size: Any) -> None:
        super().__init__(size, size)

    def describe(self) -> str:
        """tumbling(size)."""
        return f"tumbling({self.size})"

    def assign(self, t: Number) -> list[tuple[Number, Number]]:
        """The (start, end) of the one window that contains t."""
        start = t - t % self.size
        return [(start, start + self.size)]

    def add(self, windows: list[Entry], buffer: list[Entry], t: Number, vals: Sequence[Any],
            aggs: Named) -> tuple[list[Entry], list[Entry], list[Entry]]:
        """Fold the record into its window, or open it."""
        start = t - t % self.size
        for i, w in enumerate(windows):
            if w[0] == start:
                entry = [start, w[1], *aggregate.fold(aggs, w[2:], vals)]
                return [*windows[:i], entry, *windows[i + 1:]], buffer, [entry]
        entry = [start, start + self.size, *aggregate.start(aggs, vals)]
        if not windows or windows[-1][0] < start:
            return [*windows, entry], buffer, [entry]
        return sorted([*windows, entry], key=lambda w: w[0]), buffer, [entry]


class Sliding(Window):
    """A window (t - size, t] at each distinct event time t of a key (see the module)."""

    kind = "sliding"
    strict = True

    def __init__(self, size: Any) -> None:
        self.size = self.span = span(size, "sliding window: size")

    def describe(self) -> str:
        """sliding(size)."""
        return f"sliding({self.size})"

    def add(self, windows: list[Entry], buffer: list[Entry], t: Number, vals: Sequence[Any],
            aggs: Named) -> tuple[list[Entry], list[Entry], list[Entry]]:
        """Fold the record into the key's windows at times in [t, t + size), and open the
        window at t (from the buffered records of (t - size, t]) if there is none."""
        size = self.size
        out, updated, own = [], [], False
        for w in windows:
            end = w[1]
            if end - size < t <= end:
                w = [w[0], end, *aggregate.fold(aggs, w[2:], vals)]
                updated.append(w)
                own = own or end == t
            out.append(w)
        if not own:
            accs: list[Any] | None = None
            for b in buffer:
                if t - size < b[0] <= t:
                    accs = aggregate.start(aggs, b[1:]) if accs is None else aggregate.fold(
                        aggs, accs, b[1:])
            accs = aggregate.start(aggs, vals) if accs is None else aggregate.fold(
                aggs, accs, vals)
            entry = [t - size, t, *accs]
            out.append(entry)
            out.sort(key=lambda w: w[1])
            updated.append(entry)
            updated.sort(key=lambda w: w[1])
        return out, [*buffer, [t, *vals]], updated

    def expire(self, windows: list[Entry], buffer: list[Entry], watermark: Number
               ) -> tuple[list[Entry], list[Entry], list[Entry]]:
        """Close the windows the watermark passed, and forget the buffered records that no
        window still to open can hold (time <= watermark - size)."""
        closed, windows, _ = super().expire(windows, buffer, watermark)
        horizon = watermark - self.size
        if any(b[0] <= horizon for b in buffer):
            buffer = [b for b in buffer if b[0] > horizon]
        return closed, windows, buffer

    def due(self, windows: list[Entry], buffer: list[Entry]) -> Number | None:
        """The first window's end; without windows, when the buffer is all forgotten."""
        if windows:
            first: Number = min(w[1] for w in windows)
            return first
        if not buffer:
            return None
        last: Number = max(b[0] for b in buffer)
        return last + self.size

    def bucket(self, due: Number) -> Number:
        """Buckets of size / BUCKETS_PER_SPAN."""
        return math.floor(due * BUCKETS_PER_SPAN / self.size)

    def reach(self, high: Number) -> Number:
        """high + size: beyond the window at `high` (strict), and its buffer forgotten."""
        return high + self.size


class Session(Window):
    """A key's records closer than `gap` to each other (see the module)."""

    kind = "session"

    def __init__(self, gap: Any) -> None:
        self.gap = self.span = span(gap, "session window: gap")

    def describe(self) -> str:
        """session(gap)."""
        return f"session({self.gap})"

    def add(self, windows: list[Entry], buffer: list[Entry], t: Number, vals: Sequence[Any],
            aggs: Named) -> tuple[list[Entry], list[Entry], list[Entry]]:
        """The record's interval [t, t + gap), merged with the sessions it overlaps."""
        lo, hi = t, t + self.gap
        keep: list[Entry] = []
        joined: list[Entry] = []
        for w in windows:
            (joined if w[0] < hi and lo < w[1] else keep).append(w)
        if joined:
            accs = joined[0][2:]
            for w in joined[1:]:
                accs = aggregate.merged(aggs, accs, w[2:])
            accs = aggregate.fold(aggs, accs, vals)
            entry = [min(lo, joined[0][0]), max(hi, *(w[1] for w in joined)), *accs]
        else:
            entry = [lo, hi, *aggregate.start(aggs, vals)]
        keep.append(entry)
        keep.sort(key=lambda w: w[0])
        return keep, buffer, [entry]

    def bucket(self, due: Number) -> Number:
        """Buckets of gap / BUCKETS_PER_SPAN."""
        return math.floor(due * BUCKETS_PER_SPAN / self.gap)

    def reach(self, high: Number) -> Number:
        """high + gap: no session of a key ends later than its last record plus the gap."""
        return high + self.gap


def tumbling(size: Any) -> Tumbling:
    """Tumbling windows of `size` (a number in the event times' unit, or a duration string)."""
    return Tumbling(size)


def hopping(size: Any, step: Any) -> Hopping:
    """Windows of `size` that start every `step` (step <= size): they overlap."""
    return Hopping(size, step)


def sliding(size: Any) -> Sliding:
    """A window over the `size` before each record of a key, itself included."""
    return Sliding(size)


def session(gap: Any) -> Session:
    """Session windows: a key's records with less than `gap` between them."""
    return Session(gap)


def event_time(record: Any, time: TimeOf) -> Number:
    """A record's event time: its field `time`, or `time(record)`; a finite number, or a
    datetime (its POSIX timestamp). BadRecord naming the field otherwise."""
    if isinstance(time, str):
        value = field_value(record, time, "event-time field")
        kind = type(value)
        if kind is int or (kind is float and math.isfinite(value)):
            return value  # type: ignore[no-any-return]
        source = f"event-time field {time!r}"
    else:
        try:
            value = time(record)
        except Exception as exc:
            raise BadRecord(f"the event-time function raised {type(exc).__name__}: "
                            f"{exc}") from exc
        source = "the event-time function's value"
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRecord(f"{source} is {value!r} (a {type(value).__name__}), not a number "
                        "or a datetime")
    if not math.isfinite(value):
        raise BadRecord(f"{source} is {value!r}, not a finite number")
    return value


def watermark(clock: Number | None, grace: Number, floor: Number | None = None
              ) -> Number | None:
    """The watermark after a highest event time `clock` (None before any record), raised to
    `floor` if an idle lane raised it there (`idle_floor`)."""
    if clock is None:
        return floor
    mark = clock - grace
    return floor if floor is not None and floor > mark else mark


def idle_floor(window: Window, clock: Number | None, mark: Number | None) -> Number | None:
    """The watermark of a lane that went idle at highest event time `clock` and watermark
    `mark`: the window's reach of the clock, which closes every open window; None when there
    is nothing to close (no record yet, or the watermark is there already)."""
    if clock is None:
        return None
    floor = window.reach(clock)
    return None if mark is not None and mark >= floor else floor


AUTO = "auto"
MIN_IDLE = 1.0  # seconds: the shortest automatic idle timeout


def idle_timeout_of(value: Any, window: Window, grace: Number) -> float | None:
    """A window's idle timeout in seconds of wall time: None (never: an idle lane keeps its
    windows open until its next record), a positive number of seconds or a duration string,
    or "auto": the window's span plus its grace, read as seconds (at least MIN_IDLE). With
    event times in seconds, "auto" never makes late a record that comes at the pace of
    wall time: one that comes after the lane was idle for span + grace has a time beyond
    every window the lane had open."""
    if value is None:
        return None
    if value == AUTO:
        return max(MIN_IDLE, float(window.span + grace))
    return float(span(value, "idle_timeout"))


def is_late(t: Number, mark: Number | None) -> bool:
    """Whether a record at time t is late at watermark `mark`."""
    return mark is not None and t < mark
