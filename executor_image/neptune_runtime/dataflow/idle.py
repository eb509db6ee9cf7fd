"""Idle lanes: the ticks that let a window operator close its windows when input stops.

A window's watermark moves with the records of its source partition (windows.py), so a
partition that stops sending would keep its open windows, and `final()` would never emit them.
On the driver, a stream with an idle timeout has its source's output watched: once a
partition emitted nothing for a timeout (seconds of wall time), one *tick* goes into that
partition's lane, as an event with the partition's last token (committing it again changes
nothing). It runs in the lane's next task like any event, after every event before it, on
the executor that holds the lane's state; the stream's task function takes it out of the
records and hands it to the window operators whose timeout it reached, which raise their
watermark to close every open window (state.py, `WindowState.idle`). So the closing is
checkpointed with the offsets like any other change of window state, a failed tick's task is
retried as any other, and nothing else of the runtime knows of ticks.

A partition gets one tick per distinct timeout of the stream's windows per idle spell; its next
event starts a new spell. A partition the driver knows from a restart (its saved token) counts
as having emitted at the source's start, so the windows it had open when the driver stopped
close too. A tick counts as one event (and record) in the job's figures.

The watch is installed on the source object itself (its `run` and `restore`), not a wrapper
around it: the runtime recognises sources by their class (HTTP ingest, Kafka).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ..sources import Saved, Source, SourceOutput

IDLE = "neptune.idle"  # a tick is {IDLE: seconds the partition was idle}
TICK_PERIOD = (0.05, 5.0)  # how often the watch looks, at least and at most (seconds)


def tick(idle: float) -> dict[str, float]:
    """The event of a tick after `idle` seconds without events."""
    return {IDLE: round(idle, 3)}


def idle_of(record: Any) -> float | None:
    """How long the partition was idle if `record` is a tick, else None."""
    if record.__class__ is dict and IDLE in record:
        seconds = record[IDLE]
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            return float(seconds)
    return None


class Watch:
    """Per partition: when it last emitted, its last token, and how many of the timeouts
    (ascending) its current idle spell has ticked already."""

    def __init__(self, timeouts: list[float], now: float) -> None:
        self.timeouts = sorted(set(timeouts))
        self.seen: dict[int, list[Any]] = {}  # partition -> [at, token, ticked]
        self.start = now

    def emitted(self, partition: int, token: Any, now: float) -> None:
        """An event of `partition` with `token`: a new idle spell starts."""
        entry = self.seen.get(partition)
        if entry is None:
            self.seen[partition] = [now, token, 0]
        else:
            entry[0], entry[1], entry[2] = now, token, 0

    def known(self, partition: int, token: Any) -> None:
        """A partition with a saved token: idle since the start, unless it emits."""
        self.seen.setdefault(partition, [self.start, token, 0])

    def due(self, now: float) -> list[tuple[int, Any, float]]:
        """The ticks to send now, as (partition, token, idle seconds); each once a spell."""
        out = []
        timeouts = self.timeouts
        for partition, entry in self.seen.items():
            at, token, ticked = entry
            idle = now - at
            passed = ticked
            while passed < len(timeouts) and idle >= timeouts[passed]:
                passed += 1
            if passed > ticked:
                entry[2] = passed
                out.append((partition, token, idle))
        return out

    @property
    def period(self) -> float:
        """How often to look: a quarter of the shortest timeout, within TICK_PERIOD."""
        low, high = TICK_PERIOD
        return min(high, max(low, self.timeouts[0] / 4))


class WatchedOutput:
    """A source's output that tells the watch of every event (and passes the rest on)."""

    def __init__(self, out: SourceOutput, watch: Watch) -> None:
        self._out = out
        self._watch = watch

    def emit(self, value: Any, token: Any, partition: int = 0) -> None:
        """One event: passed on, and its partition's idle spell starts again."""
        self._out.emit(value, token, partition)
        self._watch.emitted(partition, token, time.monotonic())

    def emit_all(self, events: list[tuple[Any, Any]], partition: int = 0) -> None:
        """Several events of one partition: passed on, and its idle spell starts again."""
        self._out.emit_all(events, partition)
        if events:
            self._watch.emitted(partition, events[-1][1], time.monotonic())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)


async def ticking(out: SourceOutput, watch: Watch) -> None:
    """Send the ticks that are due, until cancelled."""
    while True:
        await asyncio.sleep(watch.period)
        for partition, token, idle in watch.due(time.monotonic()):
            out.emit(tick(idle), token, partition)


def install(source: Source, timeouts: Callable[[], list[float]]) -> None:
    """Watch `source` for idle partitions once it runs, with the timeouts `timeouts()` gives
    then (every operator is declared by then); none: it runs as it was."""
    run: Callable[[SourceOutput], Coroutine[Any, Any, None]] = source.run
    restore: Callable[[Saved], None] = source.restore
    saved: dict[int, Any] = {}

    def restoring(state: Saved) -> None:
        restore(state)
        saved.update({p: t for p, t in state.partitions.items() if t is not None})
        if not saved and state.committed is not None:
            saved[0] = state.committed

    async def running(out: SourceOutput) -> None:
        chosen = timeouts()
        if not chosen:
            return await run(out)
        watch = Watch(chosen, time.monotonic())
        for partition, token in saved.items():
            watch.known(partition, token)
        ticker = asyncio.ensure_future(ticking(out, watch))
        try:
            await run(WatchedOutput(out, watch))
        finally:
            ticker.cancel()

    setattr(source, "run", running)  # noqa: B010 - an instance attribute over the method
    setattr(source, "restore", restoring)  # noqa: B010
