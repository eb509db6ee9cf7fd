"""Idle lanes close their windows, table-driven against a plain-Python reference: a tick (the
driver's, after `idle_timeout` without events in the partition) raises the watermark to the
window's reach of the highest event time, which closes every open window; later records below
it are late. Also the driver's watch that sends the ticks, and the timeouts' defaults."""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import pytest

from neptune_runtime import App, sinks, sources
from neptune_runtime import dataflow as df
from neptune_runtime.app import StreamJob
from neptune_runtime.dataflow import idle
from neptune_runtime.dataflow.windows import idle_timeout_of
from neptune_runtime.sources import Saved, Source, SourceOutput

from .test_dataflow_windows import (
    KINDS,
    Event,
    Lane,
    closes,
    contains,
    events_of,
    figures,
    one_each,
    random_chunks,
    shuffled,
    spec,
    windows_of,
)

TIMEOUT = 5.0
Item = Event  # an event {"k", "ts", "v"} or a tick {idle.IDLE: seconds}


# -- the reference ------------------------------------------------------------------------------
def reach(kind: str, p: dict[str, float], high: float) -> float:
    """The watermark that closes every window records up to `high` opened."""
    if kind in ("tumbling", "hopping"):
        step = p.get("step", p.get("size", 0))
        return math.floor(high / step) * step + p["size"]
    return high + (p["size"] if kind == "sliding" else p["gap"])


def reference(kind: str, p: dict[str, float], grace: float, items: list[Item],
              timeout: float | None) -> tuple[list[tuple[Any, ...]], list[int]]:
    """(finals as (the item that closed it, key, start, end, figures), the late records)."""
    high: float | None = None
    floor: float | None = None
    accepted, late, marks = [], [], []

    def mark() -> float | None:
        if high is None:
            return floor
        return high - grace if floor is None else max(high - grace, floor)

    for i, item in enumerate(items):
        if idle.IDLE in item:
            if timeout is not None and item[idle.IDLE] >= timeout and high is not None:
                now = mark()
                if now is None or reach(kind, p, high) > now:
                    floor = reach(kind, p, high)
        elif (now := mark()) is not None and item["ts"] < now:
            late.append(i)
        else:
            accepted.append(i)
            high = item["ts"] if high is None else max(high, item["ts"])
        marks.append(mark())
    finals = []
    for key in sorted({items[i]["k"] for i in accepted}):
        mine = [i for i in accepted if items[i]["k"] == key]
        for window in windows_of(kind, p, [items[i]["ts"] for i in mine]):
            inside = [items[i]["v"] for i in mine if contains(kind, window, items[i]["ts"])]
            closed_at = next((i for i, m in enumerate(marks) if closes(kind, window[1], m)), None)
            if closed_at is not None:
                finals.append((closed_at, key, *window, figures(inside)))
    return sorted(finals, key=repr), late


# -- the stream -----------------------------------------------------------------------------------
def declare(window: df.Window, grace: float, timeout: float | None) -> StreamJob:
    app = App("t")
    stream = app.stream("w", sources.HttpIngest(), slo="1s")
    stream.key_by("k").window(window, time="ts", grace=grace, idle_timeout=timeout).agg(
        n=df.count(), total=df.sum("v"), lo=df.min("v"), hi=df.max("v"), avg=df.mean("v"),
        folded=df.reduce(lambda a, b: a + b, "v")).final().to(sinks.Log())
    job = app.job("w")
    assert isinstance(job, StreamJob)
    return job


def run_stream(kind: str, p: dict[str, float], grace: float, items: list[Item],
               timeout: float | None, split: Any) -> tuple[list[tuple[Any, ...]], Lane]:
    lane = Lane(declare(spec(kind, p), grace, timeout))
    rng = random.Random(len(items))
    out = []
    for chunk in split(len(items)):
        for r in lane.run([items[i] for i in chunk], fail_first=rng.random() < 0.2):
            out.append((chunk[-1], r["key"], r["start"], r["end"],
                        {f: r[f] for f in ("n", "total", "lo", "hi", "avg", "folded")}))
        if rng.random() < 0.3:
            lane.restore()
    return out, lane


def t(seconds: float) -> Item:
    return idle.tick(seconds)


def rows(*spec_: tuple[str, float, int] | float) -> list[Item]:
    """Events as (key, time, value), and ticks as their idle seconds."""
    return [t(x) if isinstance(x, int | float) else events_of([x])[0] for x in spec_]


# -- hand-written cases ---------------------------------------------------------------------------
CASES: list[tuple[str, dict[str, float], float, list[Item],
                  list[tuple[int, str, float, float, int]], list[int]]] = [
    # input stops inside [0, 10): the tick closes it; without one it would stay open
    ("tumbling", {"size": 10}, 0, rows(("a", 1, 1), ("a", 4, 1), TIMEOUT),
     [(2, "a", 0, 10, 2)], []),
    # a tick shorter than the timeout changes nothing
    ("tumbling", {"size": 10}, 0, rows(("a", 1, 1), ("a", 4, 1), TIMEOUT - 1), [], []),
    # after the tick the watermark is 10: 7 is late, 10 opens the next window, which the
    # next tick closes
    ("tumbling", {"size": 10}, 2, rows(("a", 1, 1), ("b", 9, 1), TIMEOUT, ("a", 7, 1),
                                       ("a", 10, 1), TIMEOUT + 1),
     [(2, "a", 0, 10, 1), (2, "b", 0, 10, 1), (5, "a", 10, 20, 1)], [3]),
    # grace does not hold an idle lane's windows: they all close at the tick
    ("tumbling", {"size": 10}, 30, rows(("a", 1, 1), ("a", 15, 1), TIMEOUT),
     [(2, "a", 0, 10, 1), (2, "a", 10, 20, 1)], []),
    # hopping: 7 is in [0, 10) and [5, 15); the tick closes both (reach 15)
    ("hopping", {"size": 10, "step": 5}, 0, rows(("a", 7, 1), TIMEOUT, ("a", 14, 1)),
     [(1, "a", 0, 10, 1), (1, "a", 5, 15, 1)], [2]),
    # sliding: the window at 5 closes, and 5 + size is the new watermark
    ("sliding", {"size": 10}, 0, rows(("a", 0, 1), ("a", 5, 1), TIMEOUT, ("a", 14, 1),
                                      ("a", 15, 1), TIMEOUT),
     [(1, "a", -10, 0, 1), (2, "a", -5, 5, 2), (5, "a", 5, 15, 1)], [3]),
    # session: [0, 8) closes at the tick; 8 (its end) starts a new session
    ("session", {"gap": 5}, 0, rows(("a", 0, 1), ("a", 3, 1), TIMEOUT, ("a", 7, 1),
                                    ("a", 8, 1), TIMEOUT),
     [(2, "a", 0, 8, 2), (5, "a", 8, 13, 1)], [3]),
    # a tick before any record, and two ticks in a row: nothing to close, nothing twice
    ("tumbling", {"size": 10}, 0, rows(TIMEOUT, ("a", 1, 1), TIMEOUT, TIMEOUT),
     [(2, "a", 0, 10, 1)], []),
]


@pytest.mark.parametrize(("kind", "p", "grace", "items", "finals", "late"), CASES)
def test_the_idle_reference_says_what_the_semantics_say(
        kind: str, p: dict[str, float], grace: float, items: list[Item],
        finals: list[tuple[int, str, float, float, int]], late: list[int]) -> None:
    got, got_late = reference(kind, p, grace, items, TIMEOUT)
    assert sorted((i, k, s, e, f["n"]) for i, k, s, e, f in got) == finals
    assert got_late == late


@pytest.mark.parametrize(("kind", "p", "grace", "items", "finals", "late"), CASES)
def test_a_tick_closes_the_idle_lane_s_windows(
        kind: str, p: dict[str, float], grace: float, items: list[Item],
        finals: list[tuple[int, str, float, float, int]], late: list[int]) -> None:
    out, lane = run_stream(kind, p, grace, items, TIMEOUT, one_each)
    assert sorted((i, k, s, e, f["n"]) for i, k, s, e, f in out) == finals
    assert lane.driver.get("dataflow", {}).get("window#2.late", 0) == len(late)


def test_without_an_idle_timeout_ticks_change_nothing() -> None:
    items = rows(("a", 1, 1), 1e9, ("a", 4, 1), 1e9)
    out, lane = run_stream("tumbling", {"size": 10}, 0, items, None, one_each)
    assert out == [] and len(lane.driver["window#2"]) == 1


# -- generated input: ticks at random places, some shorter than the timeout ---------------------
def with_ticks(seed: int, n: int = 150) -> list[Item]:
    rng = random.Random(seed)
    out: list[Item] = []
    for e in shuffled(seed, n=n):
        if rng.random() < 0.08:
            out.append(t(rng.choice([TIMEOUT / 2, TIMEOUT, TIMEOUT * 3])))
        out.append(e)
    return [*out, t(TIMEOUT)]


@pytest.mark.parametrize(("kind", "p"), KINDS, ids=[f"{k}-{p}" for k, p in KINDS])
@pytest.mark.parametrize("grace", [0, 4])
@pytest.mark.parametrize("seed", [1, 2])
def test_final_results_with_idle_ticks_equal_the_reference(
        kind: str, p: dict[str, float], grace: float, seed: int) -> None:
    items = with_ticks(seed)
    finals, late = reference(kind, p, grace, items, TIMEOUT)
    out, lane = run_stream(kind, p, grace, items, TIMEOUT, one_each)
    assert sorted(out, key=repr) == finals
    assert lane.driver["dataflow"]["window#2.late"] == len(late)
    assert not lane.driver.get("window#2"), "the last tick leaves no window open"
    batched, _ = run_stream(kind, p, grace, items, TIMEOUT, random_chunks)
    assert sorted(o[1:] for o in batched) == sorted(f[1:] for f in finals)


def test_a_tick_goes_through_chained_windows_upstream_first() -> None:
    app = App("t")
    out = sinks.Log()
    minutes = app.stream("w", sources.HttpIngest(), slo="1s").key_by("k").window(
        df.tumbling(10), time="ts", idle_timeout=1).count().final()
    minutes.window(df.tumbling(20), time="start", idle_timeout=1).agg(
        n=df.sum("count")).final().to(out)
    job = app.job("w")
    assert isinstance(job, StreamJob)
    lane = Lane(job)
    assert lane.run(events_of([("a", 1, 0), ("a", 12, 0), ("a", 13, 0)])) == []
    assert lane.run([t(1)]) == [{"key": "a", "start": 0, "end": 20, "n": 3}]


# -- the timeouts ---------------------------------------------------------------------------------
def test_idle_timeouts_auto_none_and_given() -> None:
    assert idle_timeout_of("auto", df.tumbling("1m"), 10) == 70
    assert idle_timeout_of("auto", df.session(0.2), 0) == 1.0  # at least a second
    assert idle_timeout_of("auto", df.hopping(30, 10), 0) == 30
    assert idle_timeout_of(None, df.tumbling(5), 0) is None
    assert idle_timeout_of("250ms", df.tumbling(5), 0) == 0.25
    assert idle_timeout_of(3, df.tumbling(5), 0) == 3
    stream = App("t").stream("w", sources.HttpIngest(), slo="1s")
    with pytest.raises(ValueError, match="job w: idle_timeout"):
        stream.window(df.tumbling(5), time="ts", idle_timeout=-1)


# -- the driver's watch ---------------------------------------------------------------------------
def test_the_watch_ticks_each_timeout_once_a_spell() -> None:
    watch = idle.Watch([5, 1, 5], now=0)
    assert watch.due(100) == []  # nothing emitted yet: nothing to close
    watch.emitted(0, "t0", now=10)
    watch.emitted(1, "t1", now=10)
    assert watch.due(10.5) == []
    assert watch.due(11) == [(0, "t0", 1), (1, "t1", 1)]
    assert watch.due(12) == []
    watch.emitted(1, "t1b", now=12)  # a new spell for partition 1
    assert watch.due(12.5) == []
    assert watch.due(15) == [(0, "t0", 5), (1, "t1b", 3)]
    assert watch.due(20) == [(1, "t1b", 8)]
    assert watch.due(99) == []
    watch.known(2, "saved")  # known from a restart: idle since the start
    watch.known(0, "older")  # already seen: stays as it is
    assert watch.due(100) == [(2, "saved", 100)]
    assert idle.Watch([0.01], 0).period == idle.TICK_PERIOD[0]
    assert idle.Watch([60], 0).period == idle.TICK_PERIOD[1]


class _Out:
    def __init__(self) -> None:
        self.events: list[tuple[Any, Any, int]] = []

    def emit(self, value: Any, token: Any, partition: int = 0) -> None:
        self.events.append((value, token, partition))

    def emit_all(self, events: list[tuple[Any, Any]], partition: int = 0) -> None:
        self.events += [(v, tok, partition) for v, tok in events]

    def lag(self, partition: int, records: int) -> None:
        self.events.append(("lag", records, partition))

    def malformed(self, reason: str) -> None:
        raise AssertionError(reason)

    async def room(self) -> None:
        return None

    def degraded(self, cause: str | None) -> None:
        raise AssertionError(cause)


class _Burst(Source):
    """Emits two events on partition 3 and one on 4, then waits."""

    def __init__(self) -> None:
        self.restored: Saved | None = None

    async def run(self, out: SourceOutput) -> None:
        out.emit_all([("a", 1), ("b", 2)], 3)
        out.emit("c", 7, 4)
        out.lag(3, 0)
        await asyncio.Event().wait()

    def restore(self, saved: Saved) -> None:
        self.restored = saved


def _run_for(source: Source, out: _Out, seconds: float) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(source.run(out))
        await asyncio.sleep(seconds)
        task.cancel()
    asyncio.run(main())


def test_an_installed_watch_sends_ticks_with_the_last_tokens(tmp_path: Any) -> None:
    source = _Burst()
    idle.install(source, lambda: [0.2])
    source.restore(Saved("w", None, tmp_path, {9: "saved"}))
    assert source.restored is not None and source.restored.partitions == {9: "saved"}
    out = _Out()
    _run_for(source, out, 0.6)
    events, ticks = out.events[:4], out.events[4:]
    assert events == [("a", 1, 3), ("b", 2, 3), ("c", 7, 4), ("lag", 0, 3)]
    assert sorted((p, tok) for _, tok, p in ticks) == [(3, 2), (4, 7), (9, "saved")]
    assert all(0.2 <= (idle.idle_of(v) or 0) < 0.6 for v, _, _ in ticks)


def test_a_stream_without_idle_timeouts_runs_its_source_as_it_was() -> None:
    source = _Burst()
    app = App("t")
    app.stream("w", source, slo="1s").key_by("k").window(
        df.tumbling(5), time="ts", idle_timeout=None).count().final().to(sinks.Log())
    out = _Out()
    _run_for(source, out, 0.1)
    assert len(out.events) == 4  # no watch, so no ticks however long


def test_ticks_are_told_apart_from_records() -> None:
    assert idle.idle_of(idle.tick(2.5)) == 2.5
    assert idle.idle_of({"neptune.idle": "x"}) is None
    assert idle.idle_of({"ts": 1}) is None and idle.idle_of([idle.IDLE]) is None
