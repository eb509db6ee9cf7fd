"""Window semantics, table-driven against a plain-Python reference: tumbling, hopping, sliding
and session boundaries, grace, late records and out-of-order input.

The stream runs as the runtime runs it, without processes: its task function over the records
of each task, the task's keyed-state writes committed (keyed.py), and, between tasks, the state
sometimes rebuilt from the changes as a new owner gets them (a `restore`, through msgpack),
and sometimes a task that fails and runs again (its writes dropped)."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from neptune_runtime import App, sinks, sources
from neptune_runtime import dataflow as df
from neptune_runtime.app import StreamJob, TaskContext
from neptune_runtime.dataflow import Window
from neptune_runtime.keyed import Change, PartitionState

Event = dict[str, Any]


# -- the reference: plain Python over the whole input -------------------------------------------
def accepted_and_marks(events: list[Event], grace: float) -> tuple[list[int], list[int],
                                                                   list[float | None]]:
    """Which records count (not late), which are late, and the watermark after each."""
    high: float | None = None
    accepted, late, marks = [], [], []
    for i, e in enumerate(events):
        mark = None if high is None else high - grace
        if mark is not None and e["ts"] < mark:
            late.append(i)
        else:
            accepted.append(i)
            high = e["ts"] if high is None else max(high, e["ts"])
        marks.append(None if high is None else high - grace)
    return accepted, late, marks


def figures(values: list[int]) -> dict[str, Any]:
    return {"n": len(values), "total": sum(values), "lo": min(values), "hi": max(values),
            "avg": sum(values) / len(values), "folded": sum(values)}


def windows_of(kind: str, p: dict[str, float], times: list[float]) -> list[tuple[float, float]]:
    """Every window (start, end) of one key, given all its counted event times."""
    if kind == "tumbling":
        return sorted({(math.floor(t / p["size"]) * p["size"],
                        math.floor(t / p["size"]) * p["size"] + p["size"]) for t in times})
    if kind == "hopping":
        out = set()
        for t in times:
            for k in range(math.floor((t - p["size"]) / p["step"]) - 1,
                           math.floor(t / p["step"]) + 2):
                if k * p["step"] <= t < k * p["step"] + p["size"]:
                    out.add((k * p["step"], k * p["step"] + p["size"]))
        return sorted(out)
    if kind == "sliding":
        return sorted({(t - p["size"], t) for t in times})
    sessions: list[list[float]] = []
    for t in sorted(times):
        if sessions and t < sessions[-1][1]:
            sessions[-1][1] = max(sessions[-1][1], t + p["gap"])
        else:
            sessions.append([t, t + p["gap"]])
    return [(s, e) for s, e in sessions]


def contains(kind: str, window: tuple[float, float], t: float) -> bool:
    start, end = window
    return start < t <= end if kind == "sliding" else start <= t < end


def closes(kind: str, end: float, mark: float | None) -> bool:
    return mark is not None and (end < mark if kind == "sliding" else end <= mark)


def reference(kind: str, p: dict[str, float], grace: float, events: list[Event]
              ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[int]]:
    """(finals as (closing record, key, start, end, figures), currents as (record, key, start,
    end, figures), the late records)."""
    accepted, late, marks = accepted_and_marks(events, grace)
    finals, currents = [], []
    keys = sorted({events[i]["k"] for i in accepted})
    for key in keys:
        mine = [i for i in accepted if events[i]["k"] == key]
        for window in windows_of(kind, p, [events[i]["ts"] for i in mine]):
            inside = [events[i]["v"] for i in mine if contains(kind, window, events[i]["ts"])]
            closed_at = next((i for i, m in enumerate(marks) if closes(kind, window[1], m)), None)
            if closed_at is not None:
                finals.append((closed_at, key, *window, figures(inside)))
    for n, i in enumerate(accepted):
        e = events[i]
        so_far = [j for j in accepted[:n + 1] if events[j]["k"] == e["k"]]
        times = [events[j]["ts"] for j in so_far]
        for window in windows_of(kind, p, times):
            if contains(kind, window, e["ts"]):
                inside = [events[j]["v"] for j in so_far
                          if contains(kind, window, events[j]["ts"])]
                currents.append((i, e["k"], *window, figures(inside)))
    return sorted(finals, key=repr), currents, late


# -- the stream, run as the runtime runs it -----------------------------------------------------
def spec(kind: str, p: dict[str, float]) -> Window:
    if kind == "tumbling":
        return df.tumbling(p["size"])
    if kind == "hopping":
        return df.hopping(p["size"], p["step"])
    if kind == "sliding":
        return df.sliding(p["size"])
    return df.session(p["gap"])


def declare(window: Window, grace: float, final: bool) -> StreamJob:
    app = App("t")
    stream = app.stream("w", sources.HttpIngest(), slo="1s")
    aggregated = stream.key_by("k").window(window, time="ts", grace=grace).agg(
        n=df.count(), total=df.sum("v"), lo=df.min("v"), hi=df.max("v"), avg=df.mean("v"),
        folded=df.reduce(lambda a, b: a + b, "v"))
    (aggregated.final() if final else aggregated.current()).map(
        lambda r: {**r, "tag": r["key"]}).to(sinks.Log())
    job = app.job("w")
    assert isinstance(job, StreamJob) and job.keyed and job.batchable
    return job


class Lane:
    """A keyed lane: the executor's state, and the changes a new owner is restored from."""

    def __init__(self, job: StreamJob) -> None:
        self.job = job
        self.state = PartitionState()
        self.changes: list[Change] = []  # every task's, as the driver and its store keep them

    def run(self, records: list[Event], fail_first: bool = False) -> list[Any]:
        if fail_first:  # a task that dies: its writes never count
            lost = self.state.begin()
            self.job.task(TaskContext("t", "w", 0, 0, 0, {}, keyed=lost), iter(records))
        task = self.state.begin()
        out = self.job.task(TaskContext("t", "w", 0, 0, 1, {}, keyed=task), iter(records))
        changes = task.changes()
        task.commit()
        self.changes += changes
        got: list[Any] = msgpack.unpackb(msgpack.packb(out), raw=False)  # as the driver has it
        return got

    def restore(self) -> None:
        """A new owner: every change, through the wire."""
        self.state = self.restored()

    def restored(self) -> PartitionState:
        """What a new owner would hold."""
        state = PartitionState()
        state.restore(msgpack.unpackb(msgpack.packb(self.changes, use_bin_type=True),
                                      raw=False))
        return state

    @property
    def driver(self) -> dict[str, dict[Any, Any]]:
        return self.restored().maps


def run_stream(kind: str, p: dict[str, float], grace: float, events: list[Event], final: bool,
               split: Callable[[int], list[list[int]]]) -> tuple[list[tuple[Any, ...]], Lane]:
    """(outputs as (last record of their task, key, start, end, figures)), the lane)."""
    lane = Lane(declare(spec(kind, p), grace, final))
    rng = random.Random(len(events))
    out = []
    for chunk in split(len(events)):
        for r in lane.run([events[i] for i in chunk], fail_first=rng.random() < 0.2):
            assert r["tag"] == r["key"]
            out.append((chunk[-1], r["key"], r["start"], r["end"],
                        {f: r[f] for f in ("n", "total", "lo", "hi", "avg", "folded")}))
        if rng.random() < 0.3:
            lane.restore()
    return out, lane


def one_each(n: int) -> list[list[int]]:
    return [[i] for i in range(n)]


def random_chunks(n: int) -> list[list[int]]:
    rng = random.Random(n * 7)
    cuts = sorted(rng.sample(range(1, n), k=min([n // 3, n - 1]))) if n > 1 else []
    bounds = [0, *cuts, n]
    return [list(range(a, b)) for a, b in itertools.pairwise(bounds) if b > a]


def events_of(rows: list[tuple[str, float, int]]) -> list[Event]:
    return [{"k": k, "ts": t, "v": v} for k, t, v in rows]


def shuffled(seed: int, n: int = 120, keys: int = 3, disorder: float = 12) -> list[Event]:
    """Mostly increasing times with some records out of order (some of them late)."""
    rng = random.Random(seed)
    rows, now = [], 0.0
    for _ in range(n):
        now += rng.choice([0, 0.5, 1, 2, 3])
        t = now - (rng.random() * disorder if rng.random() < 0.3 else 0)
        rows.append((f"k{rng.randrange(keys)}", round(t * 2) / 2, rng.randrange(-5, 20)))
    return events_of(rows)


KINDS = [("tumbling", {"size": 10}), ("hopping", {"size": 10, "step": 5}),
         ("hopping", {"size": 9, "step": 3}), ("hopping", {"size": 10, "step": 4}),
         ("sliding", {"size": 6}), ("session", {"gap": 4}),
         ("tumbling", {"size": 2.5}), ("session", {"gap": 0.5})]


# -- hand-written cases: the reference agrees with what the semantics say -----------------------
def finals_of(kind: str, p: dict[str, float], grace: float, rows: list[tuple[str, float, int]]
              ) -> list[tuple[int, str, float, float, int]]:
    finals, _, _ = reference(kind, p, grace, events_of(rows))
    return sorted((i, k, s, e, f["n"]) for i, k, s, e, f in finals)


CASES: list[tuple[str, dict[str, float], float, list[tuple[str, float, int]],
                  list[tuple[int, str, float, float, int]], list[int]]] = [
    # tumbling: [0, 10) holds 0 and 9 and closes as 10 arrives; 10 opens the next
    ("tumbling", {"size": 10}, 0, [("a", 0, 1), ("a", 9, 1), ("a", 10, 1), ("a", 19, 1),
                                   ("a", 20, 1)], [(2, "a", 0, 10, 2), (4, "a", 10, 20, 2)], []),
    # grace 5: 3 after 12 is late (watermark 7), 8 is not; [0, 10) closes at watermark 10
    ("tumbling", {"size": 10}, 5, [("a", 0, 1), ("a", 12, 1), ("a", 3, 1), ("a", 8, 1),
                                   ("a", 14, 1), ("a", 15, 1)], [(5, "a", 0, 10, 2)], [2]),
    # the watermark is the partition's: b's record closes a's window
    ("tumbling", {"size": 10}, 0, [("a", 1, 1), ("b", 11, 1)], [(1, "a", 0, 10, 1)], []),
    # hopping: 7 is in [0, 10) and [5, 15); 12 in [5, 15) and [10, 20)
    ("hopping", {"size": 10, "step": 5}, 0, [("a", 7, 1), ("a", 12, 1), ("a", 30, 1)],
     [(1, "a", 0, 10, 1), (2, "a", 5, 15, 2), (2, "a", 10, 20, 1)], []),
    # sliding: at 0 {0}, at 5 {0, 5}, at 12 {5, 12} (10 before 12: 2 < t <= 12)
    ("sliding", {"size": 10}, 0, [("a", 0, 1), ("a", 5, 1), ("a", 12, 1), ("a", 13, 1)],
     [(1, "a", -10, 0, 1), (2, "a", -5, 5, 2), (3, "a", 2, 12, 2)], []),
    # sliding closes once the watermark is beyond t: a second record at 5 still counts
    ("sliding", {"size": 10}, 0, [("a", 5, 1), ("a", 5, 1), ("a", 6, 1)],
     [(2, "a", -5, 5, 2)], []),
    # session: 0 and 3 are one session [0, 8); 10 starts another; touching is not joining
    ("session", {"gap": 5}, 0, [("a", 0, 1), ("a", 3, 1), ("a", 10, 1), ("a", 15, 1),
                                ("a", 30, 1)], [(2, "a", 0, 8, 2), (3, "a", 10, 15, 1),
                                                (4, "a", 15, 20, 1)], []),
    # a late-arriving 4 joins [0, 5) and [8, 13) into [0, 13)
    ("session", {"gap": 5}, 10, [("a", 0, 1), ("a", 8, 1), ("a", 4, 1), ("a", 30, 1)],
     [(3, "a", 0, 13, 3)], []),
]


@pytest.mark.parametrize(("kind", "p", "grace", "rows", "finals", "late"), CASES)
def test_the_reference_says_what_the_semantics_say(
        kind: str, p: dict[str, float], grace: float, rows: list[tuple[str, float, int]],
        finals: list[tuple[int, str, float, float, int]], late: list[int]) -> None:
    assert finals_of(kind, p, grace, rows) == finals
    assert reference(kind, p, grace, events_of(rows))[2] == late


@pytest.mark.parametrize(("kind", "p", "grace", "rows", "finals", "late"), CASES)
def test_hand_written_cases_close_when_the_watermark_passes_the_end(
        kind: str, p: dict[str, float], grace: float, rows: list[tuple[str, float, int]],
        finals: list[tuple[int, str, float, float, int]], late: list[int]) -> None:
    out, lane = run_stream(kind, p, grace, events_of(rows), True, one_each)
    assert sorted((i, k, s, e, f["n"]) for i, k, s, e, f in out) == finals
    assert lane.driver.get("dataflow", {}).get("window#2.late", 0) == len(late)


# -- generated input: every kind, several graces, out of order ----------------------------------
@pytest.mark.parametrize(("kind", "p"), KINDS, ids=[f"{k}-{p}" for k, p in KINDS])
@pytest.mark.parametrize("grace", [0, 3, 7.5])
@pytest.mark.parametrize("seed", [1, 2])
def test_final_results_equal_the_reference_record_by_record(
        kind: str, p: dict[str, float], grace: float, seed: int) -> None:
    events = shuffled(seed)
    finals, _, late = reference(kind, p, grace, events)
    out, lane = run_stream(kind, p, grace, events, True, one_each)
    assert sorted(out, key=repr) == finals
    assert late, "the input should have late records"
    assert lane.driver["dataflow"]["window#2.late"] == len(late)


@pytest.mark.parametrize(("kind", "p"), KINDS, ids=[f"{k}-{p}" for k, p in KINDS])
@pytest.mark.parametrize("grace", [0, 4])
def test_final_results_equal_the_reference_in_tasks_of_many_records(
        kind: str, p: dict[str, float], grace: float) -> None:
    events = shuffled(11, n=300, keys=5)
    finals, _, _ = reference(kind, p, grace, events)
    out, _ = run_stream(kind, p, grace, events, True, random_chunks)
    assert sorted(o[1:] for o in out) == sorted(f[1:] for f in finals)
    whole, _ = run_stream(kind, p, grace, events, True, lambda n: [list(range(n))])
    assert sorted(o[1:] for o in whole) == sorted(f[1:] for f in finals)


@pytest.mark.parametrize(("kind", "p"), KINDS, ids=[f"{k}-{p}" for k, p in KINDS])
@pytest.mark.parametrize("grace", [0, 5])
def test_current_results_equal_the_reference_update_by_update(
        kind: str, p: dict[str, float], grace: float) -> None:
    events = shuffled(5, n=100)
    _, currents, _ = reference(kind, p, grace, events)
    out, _ = run_stream(kind, p, grace, events, False, one_each)
    assert out == currents
    batched, _ = run_stream(kind, p, grace, events, False, random_chunks)
    assert [o[1:] for o in batched] == [c[1:] for c in currents]


@pytest.mark.parametrize(("kind", "p"), KINDS, ids=[f"{k}-{p}" for k, p in KINDS])
def test_window_state_is_bounded_closed_windows_are_removed(
        kind: str, p: dict[str, float]) -> None:
    """After a long run the state holds the open windows only, and timers for them."""
    events, grace = shuffled(3, n=2000, keys=4, disorder=5), 2
    _, lane = run_stream(kind, p, grace, events, True, random_chunks)
    accepted, _, marks = accepted_and_marks(events, grace)
    mark, high = marks[-1], max(events[i]["ts"] for i in accepted)
    assert mark is not None
    values = lane.driver["window#2"]
    assert len(values) <= 4
    windows = [w for value in values.values() for w in value[1]]
    assert windows and all(not closes(kind, w[1], mark) for w in windows), "a closed window"
    assert all(w[1] <= high + p.get("size", 0) + p.get("gap", 0) for w in windows)
    # a sliding window's buffer: what windows still to open need, and what waits for the
    # key's next timer (at most one size more)
    assert all(b[0] > mark - 2 * p["size"] for value in values.values() for b in value[2])
    timers = sum(len(c) for c in lane.driver.get("window#2.chunks", {}).values())
    assert timers <= 2 * (len(windows) + len(values))
    assert len(lane.driver["window#2.timers"]) <= timers
