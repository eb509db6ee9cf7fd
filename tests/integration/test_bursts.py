"""Bursts of stream events against coarse batch records (issue 15), with real processes.

Timing is the benchmark's to measure (bench/results); these check the behaviour behind it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from neptune_runtime.processes import LocalCluster

from .conftest import APPS, read_jsonl, wait_for

# batch records of 30 ms (a sleep: like a C call that releases the GIL, nothing can interrupt it)
ENV = {"FAULTS_RECORD_SLEEP_MS": "30", "FAULTS_PARTITION_RECORDS": "40", "FAULTS_EVENT_MS": "1"}


def test_a_burst_is_served_back_to_back_with_one_suspension(tmp_path: Path) -> None:
    sink = tmp_path / "sink.jsonl"
    env = {**ENV, "FAULTS_SINK": str(sink)}
    with LocalCluster(str(APPS / "faults.py"), executors=1, env=env) as cluster:
        wait_for(lambda: cluster.status()["executors"]["list"][0]["running"], 20,
                 "a batch task running")
        for burst in range(3):
            before = cluster.status()["jobs"]["sums"]["suspensions"]
            ids = set(range(burst * 20, burst * 20 + 20))
            cluster.post("/ingest/events", json.dumps([{"id": i} for i in sorted(ids)]).encode())
            wait_for(lambda: {r["id"] for r in read_jsonl(sink)} >= ids, 30,  # noqa: B023
                     "the burst's results")
            time.sleep(0.2)
            # Without the hold, the batch task resumed between two events of the burst and
            # was suspended again for each: 20 suspensions a burst.
            suspended = cluster.status()["jobs"]["sums"]["suspensions"] - before
            assert 1 <= suspended <= 3, f"burst {burst}: {suspended} suspensions"
        # Each next event of a burst was sent behind the running one, to start without a
        # driver round trip in between: all but the first of each burst, give or take the
        # one or two that the driver found a free slot for.
        status = cluster.status()
        assert status["tasks_sent_ahead"] >= 3 * 15, status["tasks_sent_ahead"]
        assert status["executors"]["list"][0]["ahead"] == []


def test_coarse_records_are_measured_and_warned_about(tmp_path: Path) -> None:
    env = {**ENV, "FAULTS_SINK": str(tmp_path / "sink.jsonl")}
    with LocalCluster(str(APPS / "faults.py"), executors=1, env=env) as cluster:
        status = wait_for(lambda: (s := cluster.status())["jobs"]["sums"]["tasks_finished"] >= 2
                          and s, 30, "two batch tasks finished")
    sums = status["jobs"]["sums"]
    assert sums["yield_interval_ms"]["max"] >= 29, sums["yield_interval_ms"]
    # the stream job's SLO is 50 ms: 30 ms records are over a quarter of it
    assert sums["warning"] is not None and "Add checkpoint() calls" in sums["warning"]
    assert "tightest stream SLO (50 ms, job events)" in sums["warning"]
    assert status["warnings"] == [sums["warning"]]
    assert status["jobs"]["events"]["yield_interval_ms"]["max"] < 29
