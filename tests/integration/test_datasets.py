"""The dataset API on real driver and executor processes: shuffles between executors, a lost
executor's outputs computed again, and stream tasks preempting shuffle-map tasks."""

from __future__ import annotations

import json
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from neptune_runtime.loader import load_app
from neptune_runtime.processes import LocalCluster

from .conftest import APPS, wait_for

# the app's own generator: the reference counts the same data
load_app(str(APPS / "dataset_app.py"))
dataset_app: Any = sys.modules["neptune_app_dataset_app"]


def reference_counts(env: dict[str, str]) -> dict[str, int]:
    count = int(env["DS_WORDS"])
    return dict(Counter(w for p in range(dataset_app.PARTITIONS)
                        for w in dataset_app.words(p, 0, count)))


def reference_pairs() -> list[Any]:
    right = {k: -k for p in range(4) for k in range(p, 600, 12)}
    return sorted([k, [k * k, right[k]]] for k in range(400) if k in right)


def published(cluster: LocalCluster, name: str) -> Any:
    status = cluster.status()
    if status["shared_state"].get(name, 0) < 1:
        cluster.post("/ingest/events", json.dumps([{"tick": 1}]).encode())  # keep preempting
        return None
    return cluster.get(f"/state/{name}")["value"]


def test_a_word_count_and_a_join_across_two_executors_equal_plain_python(
        tmp_path: Path) -> None:
    env = {"DS_WORDS": "20000"}
    with LocalCluster(str(APPS / "dataset_app.py"), executors=2, env=env) as cluster:
        counts = wait_for(lambda: published(cluster, "counts"), 120, "the word count")
        pairs = wait_for(lambda: published(cluster, "pairs"), 60, "the join")
        status = cluster.status()
    assert dict(counts) == reference_counts(env)
    assert sorted(pairs) == reference_pairs()
    assert status["jobs"]["wordcount"]["state"] == "done"
    stages = status["jobs"]["wordcount"]["stages"]
    assert [(s["partitions"], s["writes_shuffle"], s["finished"]) for s in stages] == [
        (4, True, 4), (3, False, 3)]


def test_stream_tasks_preempt_shuffle_map_tasks_and_nothing_is_lost(tmp_path: Path) -> None:
    env = {"DS_WORDS": "4000", "DS_SLOW_US": "200"}  # one executor, map tasks of ~1 s
    with LocalCluster(str(APPS / "dataset_app.py"), executors=1, env=env) as cluster:
        counts = wait_for(lambda: published(cluster, "counts"), 120, "the word count")
        status = cluster.status()
    assert dict(counts) == reference_counts(env)
    assert status["jobs"]["wordcount"]["suspensions"] > 0, "no shuffle-map task was preempted"
    assert status["preemption"]["send_to_start_us"]["count"] > 0
    events = status["jobs"]["events"]
    assert events["events"] == events["results"], "a preempting stream event was lost"


def test_an_executor_killed_mid_shuffle_loses_nothing(tmp_path: Path) -> None:
    env = {"DS_WORDS": "6000", "DS_SLOW_US": "300"}  # map tasks of ~2 s
    with LocalCluster(str(APPS / "dataset_app.py"), executors=2, env=env) as cluster:
        wait_for(lambda: cluster.status()["jobs"]["wordcount"]["tasks_finished"] >= 1, 60,
                 "a map task finished (its output held by its executor)")
        victim = next(e["id"] for e in cluster.status()["executors"]["list"] if e["running"])
        cluster.procs[victim].send_signal(signal.SIGKILL)
        counts = wait_for(lambda: published(cluster, "counts"), 120, "the word count")
        status = cluster.status()
    assert status["executors"]["lost"] == 1
    assert dict(counts) == reference_counts(env), "a lost output was not computed again"
