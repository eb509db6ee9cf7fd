"""Keyed state with real processes: restored where its partition runs next, checkpointed with
the offsets, never counting an event twice, whatever is killed."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from neptune_runtime.processes import LocalCluster

from .conftest import APPS, read_jsonl, wait_for

KEYS = 7


def events(first: int, count: int) -> list[dict[str, Any]]:
    return [{"id": i, "key": f"k{i % KEYS}"} for i in range(first, first + count)]


def ingest(cluster: LocalCluster, batch: list[dict[str, Any]]) -> None:
    assert cluster.post("/ingest/counts", json.dumps(batch).encode()) == {"accepted": len(batch)}


def totals(sink: Path) -> dict[str, int]:
    """The highest count output per key: the state's total for it."""
    best: dict[str, int] = {}
    for row in read_jsonl(sink):
        best[row["key"]] = max(best.get(row["key"], 0), row["count"])
    return best


def truth(sent: int) -> dict[str, int]:
    return dict(Counter(f"k{i % KEYS}" for i in range(sent)))


def check_counts(sink: Path, sent: int) -> None:
    rows = read_jsonl(sink)
    assert {r["id"] for r in rows} == set(range(sent)), "an event was lost"
    assert totals(sink) == truth(sent), "an event was counted twice, or not at all, in state"
    for key, total in truth(sent).items():  # every count 1..total appears: no gap, no jump
        assert {r["count"] for r in rows if r["key"] == key} == set(range(1, total + 1)), key


def test_a_killed_executor_s_lane_restores_elsewhere_and_counts_every_event_once(
        tmp_path: Path) -> None:
    sink = tmp_path / "sink.jsonl"
    env = {"KEYED_SINK": str(sink), "KEYED_EVENT_MS": "2"}
    with LocalCluster(str(APPS / "keyed_app.py"), executors=2, env=env) as cluster:
        ingest(cluster, events(0, 100))
        wait_for(lambda: len(read_jsonl(sink)) >= 30, 30, "some results")
        owner = next(e for e in cluster.status()["executors"]["list"] if e["running"])
        cluster.procs[owner["id"]].send_signal(signal.SIGKILL)
        ingest(cluster, events(100, 100))
        wait_for(lambda: {r["id"] for r in read_jsonl(sink)} >= set(range(200)), 60,
                 "every event processed")
        status = cluster.status()
    assert status["executors"]["lost"] == 1
    check_counts(sink, 200)


def test_a_killed_driver_resumes_from_its_checkpoint_and_counts_every_event_once(
        tmp_path: Path) -> None:
    sink, state = tmp_path / "sink.jsonl", tmp_path / "state"
    env = {"KEYED_SINK": str(sink), "KEYED_EVENT_MS": "1"}
    with LocalCluster(str(APPS / "keyed_app.py"), executors=2, env=env,
                      state_dir=str(state)) as cluster:
        ingest(cluster, events(0, 150))
        wait_for(lambda: len(read_jsonl(sink)) >= 60, 30, "some results")
        time.sleep(0.2)  # a checkpoint or two
        cluster.kill_driver()
        cluster.start_driver()
        cluster.wait_for_executors(2)
        ingest(cluster, events(150, 50))
        wait_for(lambda: {r["id"] for r in read_jsonl(sink)} >= set(range(200)), 60,
                 "every event processed")
        figures = wait_for(lambda: (f := cluster.status()["jobs"]["counts"])["offsets"][
            "committed"] == 200 and f, 20, "everything committed")
    assert (state / "keyed.rocksdb").is_dir()
    assert figures["offsets"]["resumed_from"] is not None and figures["uncommitted"] == 0
    check_counts(sink, 200)


def test_a_value_keyed_state_cannot_store_fails_its_task_clearly_and_changes_nothing(
        tmp_path: Path) -> None:
    sink, dead = tmp_path / "sink.jsonl", tmp_path / "dead.jsonl"
    env = {"KEYED_SINK": str(sink), "KEYED_DEAD_LETTER": str(dead)}
    with LocalCluster(str(APPS / "keyed_app.py"), executors=1, env=env) as cluster:
        batch = events(0, 10)
        batch[4]["bad"] = True
        ingest(cluster, batch)
        wait_for(lambda: len(read_jsonl(sink)) == 9 and read_jsonl(dead), 30,
                 "nine results and a dead letter")
        letter = read_jsonl(dead)[0]
        assert letter["record"]["id"] == 4
        assert "keyed state 'counts': the value for key 'k4' cannot be stored" in letter["error"]
        # the bad event's writes were dropped: k4 still counts from 1 afterwards
        ingest(cluster, [{"id": 11, "key": "k4"}])
        wait_for(lambda: any(r["id"] == 11 for r in read_jsonl(sink)), 20, "the next k4")
        assert next(r for r in read_jsonl(sink) if r["id"] == 11)["count"] == 1
        # a job that is not keyed is told how to become one
        cluster.post("/ingest/unkeyed", json.dumps([{"id": 0, "key": "x"}]).encode())
        letters = wait_for(lambda: len(r := read_jsonl(dead)) == 2 and r, 20, "its letter")
        assert "declare it with app.stream_job(..., keyed=True)" in letters[1]["error"]
