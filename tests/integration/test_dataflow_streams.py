"""The dataflow API's streams on real driver and executor processes: a tumbling-window count
over HTTP-ingested events equals the plain-Python one, with an executor killed mid-run too,
and a window job's stream tasks still preempt a running batch task, losing nothing."""

from __future__ import annotations

import json
import math
import random
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from neptune_runtime.processes import LocalCluster

from .conftest import APPS, read_jsonl, wait_for

KEYS = 5
SIZE = 10


def events(first: int, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Times rising by 0.25 a record, one in five up to 6 back (some of those late)."""
    rng = random.Random(seed + first)
    out = []
    for i in range(first, first + count):
        back = rng.choice([0, 0, 0, 0, 1.5, 6])
        out.append({"id": i, "key": f"k{i % KEYS}", "ts": i / 4 - back, "v": i % 7})
    return out


def flush(after: int) -> dict[str, Any]:
    """An event far ahead: every window before it closes."""
    return {"id": -1, "key": "flush", "ts": after / 4 + 10 * SIZE, "v": 0}


def reference(sent: list[dict[str, Any]], grace: float) -> tuple[Counter[Any], list[int]]:
    """The closed windows {(key, start, end, n, total): 1} and the late events' ids."""
    high: float | None = None
    late, kept = [], []
    for e in sent:
        if high is not None and e["ts"] < high - grace:
            late.append(e["id"])
            continue
        kept.append(e)
        high = e["ts"] if high is None else max(high, e["ts"])
    assert high is not None
    windows: dict[tuple[str, float], list[int]] = {}
    for e in kept:
        start = math.floor(e["ts"] / SIZE) * SIZE
        windows.setdefault((e["key"], start), []).append(e["v"])
    closed = Counter((key, start, start + SIZE, len(vs), sum(vs))
                     for (key, start), vs in windows.items() if start + SIZE <= high - grace)
    return closed, late


def results(sink: Path) -> Counter[Any]:
    return Counter((r["key"], r["start"], r["end"], r["n"], r["total"]) for r in read_jsonl(sink))


def processed(cluster: LocalCluster) -> int:
    records: int = cluster.status()["jobs"]["clicks"]["records"]
    return records


def ingest(cluster: LocalCluster, batch: list[dict[str, Any]]) -> None:
    assert cluster.post("/ingest/clicks", json.dumps(batch).encode()) == {"accepted": len(batch)}


def test_a_tumbling_window_count_equals_plain_python_with_an_executor_killed(
        tmp_path: Path) -> None:
    sink, late = tmp_path / "windows.jsonl", tmp_path / "late.jsonl"
    grace = 2.0
    env = {"DF_SINK": str(sink), "DF_LATE": str(late), "DF_GRACE": str(grace),
           "DF_EVENT_MS": "5"}
    sent = events(0, 400)
    with LocalCluster(str(APPS / "dataflow_app.py"), executors=2, env=env) as cluster:
        ingest(cluster, sent[:200])
        wait_for(lambda: len(read_jsonl(sink)) >= 10, 30, "some windows closed")
        ingest(cluster, sent[200:300])  # one task of 100 events, 0.5 s: killed in its midst
        owner = wait_for(lambda: next((e for e in cluster.status()["executors"]["list"]
                                       if e["running"]), None), 10, "the lane's task running")
        cluster.procs[owner["id"]].send_signal(signal.SIGKILL)
        ingest(cluster, sent[300:])
        ingest(cluster, [flush(400)])
        expected, late_ids = reference([*sent, flush(400)], grace)
        wait_for(lambda: results(sink) == expected or results(sink) - expected, 60,
                 "every window")
        figures = wait_for(lambda: (f := cluster.status()["jobs"]["clicks"])["uncommitted"]
                           == 0 and f, 20, "everything handed on")
        status = cluster.status()
    assert status["executors"]["lost"] == 1
    assert results(sink) == expected, "a window was lost, counted twice or counted wrong"
    assert late_ids, "the input should have late events"
    assert sorted(r["record"]["id"] for r in read_jsonl(late)) == sorted(late_ids)
    assert all(r["operator"] == "window#3" and r["time"] < r["watermark"]
               for r in read_jsonl(late))
    assert figures["events"] == figures["records"] == 401 and figures["dead_letters"] == 0
    assert status["jobs"]["clicks"]["dataflow"]["late"] == len(late_ids)


def test_a_window_job_s_stream_tasks_preempt_a_running_batch_task_and_lose_nothing(
        tmp_path: Path) -> None:
    sink = tmp_path / "windows.jsonl"
    env = {"DF_SINK": str(sink), "DF_BATCH": "1", "DF_BATCH_US": "300"}  # batch tasks of ~3 s
    sent = events(0, 120, seed=3)
    with LocalCluster(str(APPS / "dataflow_app.py"), executors=1, env=env) as cluster:
        wait_for(lambda: cluster.status()["executors"]["list"][0]["running"], 20,
                 "a batch task running")
        for start in range(0, 120, 10):  # a few at a time, while batch tasks run
            ingest(cluster, sent[start:start + 10])
            wait_for(lambda: processed(cluster) >= start + 10, 20, "the events processed")  # noqa: B023
        ingest(cluster, [flush(120)])
        expected, _ = reference([*sent, flush(120)], 0)
        wait_for(lambda: results(sink) == expected or results(sink) - expected, 30,
                 "every window")
        status = cluster.status()
    assert results(sink) == expected
    clicks, crunch = status["jobs"]["clicks"], status["jobs"]["crunch"]
    assert crunch["suspensions"] > 0, "no batch task was suspended for the window job"
    assert status["preemption"]["send_to_start_us"]["count"] > 0
    assert clicks["events"] == clicks["records"] == 121 and clicks["dead_letters"] == 0
    assert clicks["state"] == "running" and crunch["state"] == "running"


IDLE_APP = '''
import os

from neptune_runtime import App, sinks, sources
from neptune_runtime import dataflow as df

app = App("idle")
(app.stream("clicks", sources.HttpIngest(), slo="1s")
 .key_by("key")
 .window(df.tumbling(10), time="ts", grace=2, idle_timeout="1s")
 .agg(n=df.count(), total=df.sum("v"))
 .final()
 .to(sinks.JsonLines(os.environ["DF_SINK"])))
'''


def test_an_idle_partition_closes_its_windows_and_final_emits_after_input_stops(
        tmp_path: Path) -> None:
    """No event far ahead this time: the input stops, and after the idle timeout (1 s) the
    lane's watermark rises and every window still open is emitted, once."""
    app, sink = tmp_path / "idle_app.py", tmp_path / "windows.jsonl"
    app.write_text(IDLE_APP)
    sent = [e for e in events(0, 120, seed=5) if e["ts"] >= 0]  # ts up to ~30: 4 windows a key
    with LocalCluster(str(app), executors=2, env={"DF_SINK": str(sink)}) as cluster:
        ingest(cluster, sent)
        wait_for(lambda: processed(cluster) >= len(sent), 20, "the events processed")
        on_time, _ = reference(sent, 2.0)  # what the events themselves close
        # the reference with the lane flushed: every window of the counted events
        everything, late_ids = reference([*sent, flush(10_000)], 2.0)
        assert on_time != everything, "the events alone should leave windows open"
        wait_for(lambda: results(sink) == everything or results(sink) - everything, 20,
                 "the idle lane's windows")
        figures = wait_for(lambda: (f := cluster.status()["jobs"]["clicks"])["uncommitted"]
                           == 0 and f, 20, "everything handed on")
        ingest(cluster, [{"id": 999, "key": "k0", "ts": 1.0, "v": 1}])  # below the new mark
        wait_for(lambda: cluster.status()["jobs"]["clicks"]["dataflow"].get("late", 0)
                 == len(late_ids) + 1, 20, "the late event counted")
        ends = max(end for _, _, end, _, _ in results(sink))
    assert results(sink) == everything, "a window was lost, emitted twice or counted wrong"
    assert max(e["ts"] for e in sent) < ends  # the last window closed without a later event
    ticks = figures["events"] - len(sent)
    assert ticks >= 1 and figures["records"] == figures["events"]  # a tick counts as an event
    assert figures["dead_letters"] == 0 and figures["state"] == "running"
