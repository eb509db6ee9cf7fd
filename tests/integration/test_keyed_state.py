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


def _shipping(cluster: LocalCluster) -> dict[str, Any] | None:
    """The executor whose keyed task is shipping its changes, if any (/status)."""
    return next((e for e in cluster.status()["executors"]["list"] if e["shipping"]), None)


def _bulk(cluster: LocalCluster, event: dict[str, Any]) -> None:
    assert cluster.post("/ingest/bulk", json.dumps([event]).encode()) == {"accepted": 1}


def test_many_changes_ship_after_the_task_with_its_slot_free_and_are_checkpointed(
        tmp_path: Path) -> None:
    sink, bulk, state = tmp_path / "sink.jsonl", tmp_path / "bulk.jsonl", tmp_path / "state"
    env = {"KEYED_SINK": str(sink), "KEYED_BULK_SINK": str(bulk)}
    keys = 400_000
    with LocalCluster(str(APPS / "keyed_app.py"), executors=1, env=env,
                      state_dir=str(state)) as cluster:
        _bulk(cluster, {"id": 0, "n": keys})
        seen = wait_for(lambda: _shipping(cluster), 30, "the bulk task shipping its changes")
        assert seen["running"] is None or not seen["running"].startswith("bulk"), \
            "the slot of a shipping task is free"
        # the other job's events run on that slot meanwhile, and nothing waits for the bulk
        ingest(cluster, events(0, 20))
        wait_for(lambda: len(read_jsonl(sink)) == 20, 30, "the counts job's results")
        wait_for(lambda: read_jsonl(bulk), 30, "the bulk task's result")
        _bulk(cluster, {"id": 1, "n": 0})  # the lane's next task sees every key merged
        wait_for(lambda: len(read_jsonl(bulk)) == 2, 30, "the next bulk result")
        wait_for(lambda: cluster.status()["jobs"]["bulk"]["uncommitted"] == 0, 20,
                 "the checkpoint")
        cluster.kill_driver()
        cluster.start_driver()
        cluster.wait_for_executors(1)
        _bulk(cluster, {"id": 2, "n": 0})  # restored from the checkpoint
        wait_for(lambda: len(read_jsonl(bulk)) == 3, 30, "the bulk result after a restart")
    assert [r["size"] for r in read_jsonl(bulk)] == [keys] * 3
    check_counts(sink, 20)


def test_an_executor_lost_while_shipping_re_runs_the_task_and_counts_it_once(
        tmp_path: Path) -> None:
    bulk = tmp_path / "bulk.jsonl"
    keys = 1_000_000
    with LocalCluster(str(APPS / "keyed_app.py"), executors=2,
                      env={"KEYED_BULK_SINK": str(bulk)}) as cluster:
        _bulk(cluster, {"id": 0, "n": 10})
        wait_for(lambda: read_jsonl(bulk), 30, "the first bulk result")
        _bulk(cluster, {"id": 1, "n": keys})
        owner = wait_for(lambda: _shipping(cluster), 60, "the bulk task shipping its changes")
        cluster.procs[owner["id"]].send_signal(signal.SIGKILL)
        wait_for(lambda: len(read_jsonl(bulk)) >= 2, 120, "the re-run's result")
        _bulk(cluster, {"id": 2, "n": 0})
        wait_for(lambda: len(read_jsonl(bulk)) >= 3, 60, "the next result")
        status = cluster.status()
    assert status["executors"]["lost"] == 1 and status["reruns"] >= 1
    sizes = {r["id"]: r["size"] for r in read_jsonl(bulk)}
    assert sizes == {0: 10, 1: keys, 2: keys}, "the lost shipment's keys were kept, or lost"


def test_an_unstorable_value_among_many_changes_fails_the_task_and_keeps_none(
        tmp_path: Path) -> None:
    bulk, dead = tmp_path / "bulk.jsonl", tmp_path / "dead.jsonl"
    env = {"KEYED_BULK_SINK": str(bulk), "KEYED_DEAD_LETTER": str(dead)}
    with LocalCluster(str(APPS / "keyed_app.py"), executors=1, env=env) as cluster:
        _bulk(cluster, {"id": 0, "n": 50_000, "bad": True})
        letter = wait_for(lambda: (r := read_jsonl(dead)) and r[0], 30, "a dead letter")
        _bulk(cluster, {"id": 1, "n": 3})
        wait_for(lambda: read_jsonl(bulk), 30, "the next result")
    assert "keyed state 'keys': the value for key 'bad' cannot be stored" in letter["error"]
    assert read_jsonl(bulk) == [{"id": 1, "size": 3}], "the failed task's 50,000 keys stayed"
