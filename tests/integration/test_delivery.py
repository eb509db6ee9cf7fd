"""Nothing acknowledged is lost: a failing sink, a failed job, a poison event, a silent executor.

Each test drives real driver and executor processes over real sockets and counts, at the end,
that every event the driver answered 2xx for reached the sink (at-least-once: duplicates are
allowed, losses are not).
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from neptune_runtime.processes import LocalCluster

from .conftest import APPS, read_jsonl, wait_for


def ingest(cluster: LocalCluster, events: list[dict[str, Any]]) -> None:
    assert cluster.post("/ingest/events", json.dumps(events).encode()) == {
        "accepted": len(events)}


def events_job(cluster: LocalCluster) -> dict[str, Any]:
    figures: dict[str, Any] = cluster.status()["jobs"]["events"]
    return figures


def ids(path: Path) -> set[Any]:
    return {r["id"] for r in read_jsonl(path)}


def test_a_failing_sink_commits_nothing_degrades_the_job_and_loses_nothing(
        tmp_path: Path) -> None:
    missing = tmp_path / "not-yet"
    sink = missing / "sink.jsonl"
    env = {"FAULTS_SINK": str(sink), "FAULTS_EPOCHS": "1"}
    with LocalCluster(str(APPS / "faults.py"), executors=1, env=env,
                      state_dir=str(tmp_path / "state")) as cluster:
        ingest(cluster, [{"id": i} for i in range(40)])
        figures = wait_for(lambda: (f := events_job(cluster))["state"] == "degraded" and f,
                           30, "the job to be degraded by its sink")
        assert "sink" in figures["error"] and "No such file or directory" in figures["error"]
        assert cluster.status()["phase"] == "Degraded"
        time.sleep(1.0)  # the tasks finished long ago: nothing may be committed meanwhile
        figures = events_job(cluster)
        assert figures["offsets"]["committed"] in (None, 0), figures["offsets"]
        assert figures["uncommitted"] == 40
        ingest(cluster, [{"id": i} for i in range(40, 60)])  # still accepted: it is durable
        missing.mkdir()  # the sink recovers
        wait_for(lambda: ids(sink) == set(range(60)), 30, "every event in the recovered sink")
        figures = wait_for(lambda: (f := events_job(cluster))["offsets"]["committed"] == 60
                           and f, 20, "every event committed")
        assert figures["state"] == "running" and figures["error"] is None
        assert figures["sink_failures"] > 0


@pytest.mark.parametrize("faults_cluster", [{"executors": 1, "env": {
    "FAULTS_ON_ERROR": "fail", "FAULTS_EPOCHS": "1"}}], indirect=True)
def test_ingest_into_a_failed_job_is_refused_with_its_state_and_error(
        faults_cluster: LocalCluster) -> None:
    ingest(faults_cluster, [{"id": 0, "poison": True}])
    wait_for(lambda: events_job(faults_cluster)["state"] == "failed", 30, "the job to fail")
    with pytest.raises(urllib.error.HTTPError) as caught:
        faults_cluster.post("/ingest/events", json.dumps([{"id": 1}]).encode())
    assert caught.value.code == 503
    body = json.loads(caught.value.read())
    assert body["state"] == "failed"
    assert "poison event 0" in body["error"]
    assert events_job(faults_cluster)["events"] == 1, "the refused event was counted"


@pytest.mark.parametrize("trigger", [None, "100ms"])
def test_a_poison_event_goes_to_the_dead_letter_sink_and_the_job_goes_on(
        tmp_path: Path, trigger: str | None) -> None:
    sink, dead, state = tmp_path / "sink.jsonl", tmp_path / "dead.jsonl", tmp_path / "state"
    env = {"FAULTS_SINK": str(sink), "FAULTS_DEAD_LETTER": str(dead), "FAULTS_EPOCHS": "1"}
    if trigger:
        env["FAULTS_TRIGGER"] = trigger
    events = [{"id": i, "poison": i == 7} for i in range(30)]
    with LocalCluster(str(APPS / "faults.py"), executors=2, env=env,
                      state_dir=str(state)) as cluster:
        ingest(cluster, events)
        wait_for(lambda: ids(sink) == set(range(30)) - {7}, 30, "every good event's result")
        letters = wait_for(lambda: read_jsonl(dead), 20, "the dead letter")
        assert [letter["record"] for letter in letters] == [{"id": 7, "poison": True}]
        assert letters[0]["job"] == "events" and "poison event 7" in letters[0]["error"]
        figures = wait_for(lambda: (f := events_job(cluster))["offsets"]["committed"] == 30
                           and f, 20, "everything committed")
        assert figures["state"] == "running"
        assert figures["dead_letters"] == 1
        with urllib.request.urlopen(cluster.http + "/metrics", timeout=5) as response:
            assert 'neptune_dead_letter_total{job="events"} 1.0' in response.read().decode()
        # a restarted driver does not replay the poison event: it was handed on, and committed
        cluster.kill_driver()
        cluster.start_driver()
        cluster.wait_for_executors(2)
        ingest(cluster, [{"id": 100}])
        wait_for(lambda: 100 in ids(sink), 20, "an event after the restart")
        assert len(read_jsonl(dead)) == 1
        assert events_job(cluster)["failures"] == 0


def test_a_stopped_executor_is_declared_lost_and_its_tasks_rerun(tmp_path: Path) -> None:
    sink = tmp_path / "sink.jsonl"
    env = {"FAULTS_SINK": str(sink), "FAULTS_EVENT_MS": "20", "FAULTS_EPOCHS": "1",
           "NEPTUNE_HEARTBEAT_TIMEOUT": "2s"}
    with LocalCluster(str(APPS / "faults.py"), executors=2, env=env) as cluster:
        ingest(cluster, [{"id": i} for i in range(100)])
        stopped = cluster.procs["exec-0"]
        stopped.send_signal(signal.SIGSTOP)
        try:
            began = time.monotonic()
            ingest(cluster, [{"id": i} for i in range(100, 200)])
            wait_for(lambda: ids(sink) >= set(range(200)), 30, "every event, on exec-1")
            assert time.monotonic() - began < 15
            status = cluster.status()
            assert status["executors"]["lost"] == 1
            assert [e["id"] for e in status["executors"]["list"]] == ["exec-1"]
        finally:
            stopped.send_signal(signal.SIGCONT)
        # it finds its connection gone, and registers again
        wait_for(lambda: cluster.status()["executors"]["registered"] == 2, 30,
                 "the stopped executor to come back")


def test_healthz_and_status_say_when_no_executor_is_live(tmp_path: Path) -> None:
    env = {"FAULTS_SINK": str(tmp_path / "sink.jsonl"), "FAULTS_EPOCHS": "1",
           "NEPTUNE_HEARTBEAT_TIMEOUT": "1s"}
    with LocalCluster(str(APPS / "faults.py"), executors=1, env=env) as cluster:
        only = cluster.procs["exec-0"]
        only.send_signal(signal.SIGSTOP)
        try:
            status = wait_for(lambda: (s := cluster.status())["executors"]["registered"] == 0
                              and s, 15, "the executor to be declared lost")
            assert status["phase"] == "Waiting"
            assert "no live executor" in status["message"]
            with urllib.request.urlopen(cluster.http + "/healthz", timeout=5) as response:
                assert response.status == 200  # a liveness probe must not restart the driver
                health = json.loads(response.read())
            assert health["executors"] == 0 and "no live executor" in health["warning"]
        finally:
            only.send_signal(signal.SIGCONT)
