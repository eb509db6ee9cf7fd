"""Bad input and faults, against real driver and executor processes over real sockets."""

from __future__ import annotations

import json
import signal
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from neptune_runtime import protocol
from neptune_runtime.app import App
from neptune_runtime.executor import Executor, ExecutorError
from neptune_runtime.processes import LocalCluster

from .conftest import APPS, read_jsonl, wait_for


def ingest(cluster: LocalCluster, events: Sequence[Mapping[str, object]]) -> None:
    assert cluster.post("/ingest/events", json.dumps(events).encode()) == {
        "accepted": len(events)}


def metrics_text(cluster: LocalCluster) -> str:
    with urllib.request.urlopen(cluster.http + "/metrics", timeout=5) as response:
        text: str = response.read().decode()
        return text


@pytest.mark.parametrize("faults_cluster", [{"env": {"FAULTS_BAD_JOB": "1"}}], indirect=True)
def test_task_that_raises_is_retried_then_its_job_fails_alone(
        faults_cluster: LocalCluster, tmp_path: Path) -> None:
    status = wait_for(lambda: (s := faults_cluster.status())["jobs"]["bad"]["state"] == "failed"
                      and s, 30, "job 'bad' to be marked failed")
    bad = status["jobs"]["bad"]
    assert bad["failures"] == 3, "max_retries=2 means three attempts"
    assert "RuntimeError: bad partition 0" in bad["error"]
    assert status["phase"] == "Degraded"
    # the other jobs keep running
    ingest(faults_cluster, [{"id": i} for i in range(5)])
    wait_for(lambda: len(read_jsonl(tmp_path / "sink.jsonl")) == 5, 20, "5 results")
    sums = faults_cluster.status()["jobs"]["sums"]
    assert sums["state"] == "running" and sums["tasks_finished"] > 0


@pytest.mark.parametrize(("body", "ctype", "message"), [
    (b'{"id": 1', "application/json", "invalid JSON at line 1 column 9"),
    (b"", "application/json", "empty body"),
    (b'{"id": 1}\nnope\n', "application/x-ndjson", "line 2: invalid JSON"),
])
def test_malformed_ingest_is_rejected_counted_and_nothing_else_lost(
        faults_cluster: LocalCluster, tmp_path: Path, body: bytes, ctype: str,
        message: str) -> None:
    ingest(faults_cluster, [{"id": "before"}])
    with pytest.raises(urllib.error.HTTPError) as caught:
        faults_cluster.post("/ingest/events", body, ctype)
    assert caught.value.code == 400
    assert message in json.loads(caught.value.read())["error"]
    ingest(faults_cluster, [{"id": "after"}])
    results = wait_for(lambda: len(r := read_jsonl(tmp_path / "sink.jsonl")) == 2 and r, 20,
                       "both good events")
    assert sorted(r["id"] for r in results) == ["after", "before"]
    assert ('neptune_ingest_rejected_total{job="events",reason="malformed"} 1.0'
            in metrics_text(faults_cluster))
    assert faults_cluster.status()["ingest_rejected"] == 1


def test_unknown_job_ingest_is_404(faults_cluster: LocalCluster) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        faults_cluster.post("/ingest/nope", b"{}")
    assert caught.value.code == 404
    assert "no stream job named 'nope'" in json.loads(caught.value.read())["error"]


@pytest.mark.parametrize("faults_cluster", [{"executors": 1}], indirect=True)
def test_executor_with_wrong_secret_is_rejected_and_counted(
        faults_cluster: LocalCluster, tmp_path: Path) -> None:
    # it tries again (a driver may be restarting) until its connect timeout, then exits
    faults_cluster.add_executor("intruder", secret="0" * 64,
                                env={"NEPTUNE_CONNECT_TIMEOUT": "1s"})
    code = faults_cluster.procs["intruder"].wait(timeout=20)
    assert code != 0
    status = faults_cluster.status()
    assert status["auth_failures"] >= 1
    assert [e["id"] for e in status["executors"]["list"]] == ["exec-0"]
    assert 'neptune_auth_failures_total{reason="secret_mismatch"}' in metrics_text(faults_cluster)
    ingest(faults_cluster, [{"id": i} for i in range(3)])
    wait_for(lambda: len(read_jsonl(tmp_path / "sink.jsonl")) == 3, 20, "the good executor")


@pytest.mark.parametrize("faults_cluster", [{"env": {"FAULTS_EVENT_MS": "20"}}], indirect=True)
def test_killed_executor_tasks_rerun_and_every_event_is_processed(
        faults_cluster: LocalCluster, tmp_path: Path) -> None:
    sent = [{"id": i} for i in range(300)]
    ingest(faults_cluster, sent[:150])
    wait_for(lambda: len(read_jsonl(tmp_path / "sink.jsonl")) >= 20, 20, "some results")
    faults_cluster.procs["exec-0"].send_signal(signal.SIGKILL)
    ingest(faults_cluster, sent[150:])
    wait_for(lambda: {r["id"] for r in read_jsonl(tmp_path / "sink.jsonl")} >= set(range(300)),
             60, "every ingested event to be processed")
    # every result is in the sink; their offsets commit within a commit interval
    status = wait_for(lambda: (s := faults_cluster.status())["jobs"]["events"]["uncommitted"]
                      == 0 and s, 10, "every event committed")
    assert status["executors"]["lost"] == 1
    assert status["executors"]["registered"] == 1


# batch tasks of ~0.5 s: a task is surely still running when the signal comes
@pytest.mark.parametrize("faults_cluster", [{"env": {"FAULTS_PARTITION_RECORDS": "2000000"}}],
                         indirect=True)
def test_an_executor_stopped_on_purpose_leaves_without_being_lost(
        faults_cluster: LocalCluster) -> None:
    # SIGTERM (a scale-down): its running batch task re-runs elsewhere, but it is no loss.
    wait_for(lambda: all(e["running"] for e in faults_cluster.status()["executors"]["list"]),
             20, "a task running on each executor")
    leaving = faults_cluster.procs["exec-1"]
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(10) == 0
    status = wait_for(lambda: (s := faults_cluster.status())["executors"]["registered"] == 1
                      and s, 10, "the executor to leave")
    assert status["executors"]["lost"] == 0
    assert status["reruns"] >= 1  # what it was running runs again on exec-0


RECORDS = 300_000


ONE_EPOCH = {"FAULTS_EPOCHS": "1", "FAULTS_PARTITION_RECORDS": str(RECORDS)}


@pytest.mark.parametrize("faults_cluster", [
    {"executors": 1, "env": ONE_EPOCH},
    # the pods' path: the driver cannot open the executor's doorbell, so it forewarns over
    # the socket, and the executor's own watcher thread rings the doorbell (_bellwatch.c)
    {"executors": 1, "env": {**ONE_EPOCH, "FAULTS_NO_DOORBELL": "1"}},
], indirect=True, ids=["doorbell", "socket"])
def test_suspended_batch_tasks_lose_no_progress(faults_cluster: LocalCluster,
                                                tmp_path: Path) -> None:
    # Stream tasks arrive while the batch job runs on the only executor: they must suspend
    # batch tasks, and the batch result must still be exact.
    rung = faults_cluster.env.get("FAULTS_NO_DOORBELL") != "1"
    def published() -> dict[str, Any] | None:
        status = faults_cluster.status()
        if status["shared_state"]["sums"] == 1:
            return status
        ingest(faults_cluster, [{"id": "tick"}])
        time.sleep(0.02)
        return None

    status = wait_for(published, 120, "the batch epoch to publish its result")
    assert status["jobs"]["sums"]["suspensions"] > 0, "no batch task was ever suspended"
    expected = sum(r * r % 7 for r in range(6 * RECORDS))
    assert status["jobs"]["sums"]["state"] == "done"
    # a suspension is not a failure: no batch task failed (and ran again)
    assert status["jobs"]["sums"]["failures"] == 0, status["jobs"]["sums"]
    assert status["preemption"]["send_to_start_us"]["count"] > 0
    # one host: the driver rings the executor's doorbell, and keeps its send path warm
    assert [e["doorbell"] for e in status["executors"]["list"]] == [rung]
    if rung:
        assert status["preemption"]["rehearsals"] > 0
    assert status["preemption"]["forewarnings"] > 0
    # preempting runs were taken in the running task's greenlet, from the express slot or
    # (no ringing driver) from the socket, not after a switch to the hub
    taken = status["preemption"]["taken"]
    fast = taken["express" if rung else "socket"]
    assert fast > 0 and fast >= taken["hub"], f"preemptions taken where: {taken}"
    assert taken["socket" if rung else "express"] == 0, taken
    # the slowest preemptions, slowest first, each split where a yield point noticed it
    slowest = status["preemption"]["slowest"]
    assert 0 < len(slowest) <= 5, slowest
    assert [p["send_to_start_us"] for p in slowest] == sorted(
        (p["send_to_start_us"] for p in slowest), reverse=True)
    assert all(0 <= p["arrival_to_notice_us"] <= p["arrival_to_start_us"]
               and p["notice_span_us"] >= 0 for p in slowest
               if p["arrival_to_notice_us"] is not None), slowest
    # preempting runs came through the doorbell's express slot and the socket: each ran once
    runs = (tmp_path / "runs.log").read_text().split()
    assert runs and len(runs) == len(set(runs)), "a stream task attempt started twice"
    assert faults_cluster.get("/state/sums") == {"name": "sums", "version": 1,
                                                  "value": expected}
    assert 'neptune_shared_state_version{name="sums"} 1.0' in metrics_text(faults_cluster)


@pytest.mark.parametrize("faults_cluster", [{"executors": 1}], indirect=True)
def test_peer_with_a_forged_hmac_is_dropped_before_any_task(faults_cluster: LocalCluster) -> None:
    with socket.create_connection(("127.0.0.1", faults_cluster.port), timeout=5) as sock:
        sock.sendall(protocol.encode({"t": "hello", "v": protocol.VERSION, "app": "faults",
                                      "executor": "forger", "nonce": protocol.new_nonce()}))
        frames = protocol.FrameBuffer()
        challenge = next(iter(frames.feed(sock.recv(4096))))
        assert challenge["t"] == "challenge"
        sock.sendall(protocol.encode({"t": "auth", "mac": b"\x00" * 32}))
        assert sock.recv(4096) == b"", "the driver must close without sending anything more"
    status = faults_cluster.status()
    assert status["auth_failures"] == 1
    assert status["executors"]["registered"] == 1
    assert 'neptune_auth_failures_total{reason="bad_hmac"} 1.0' in metrics_text(faults_cluster)


@pytest.mark.parametrize("faults_cluster", [{"env": {"FAULTS_EVENT_MS": "0"}}], indirect=True)
def test_bulk_ingest_of_thousands_of_events_is_processed(
        faults_cluster: LocalCluster, tmp_path: Path) -> None:
    started = time.monotonic()
    ingest(faults_cluster, [{"id": i} for i in range(5000)])
    wait_for(lambda: len(read_jsonl(tmp_path / "sink.jsonl")) >= 5000, 90, "5000 results")
    assert {r["id"] for r in read_jsonl(tmp_path / "sink.jsonl")} == set(range(5000))
    print(f"5000 events in {time.monotonic() - started:.1f}s")


def test_driver_applies_job_settings_from_the_resource(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps({"jobs": {"events": {"kind": "stream", "slo": "3ms"},
                                         "sums": {"kind": "batch", "partitions": 2},
                                         "ghost": {"kind": "stream", "slo": "1s"}}}))
    env = {"FAULTS_SINK": str(tmp_path / "sink.jsonl"), "NEPTUNE_JOBS_FILE": str(jobs)}
    with LocalCluster(str(APPS / "faults.py"), executors=1, env=env) as cluster:
        status = cluster.status()
    assert status["jobs"]["events"]["slo_ms"] == 3.0
    assert status["phase"] == "Degraded"
    assert status["config_problems"] == [
        "job 'ghost' is in the resource but the app module declares only events, sums"]


def test_an_executor_retries_a_driver_that_resets_it_until_its_deadline() -> None:
    # A dying driver's listening socket can accept, even answer, and then reset: to the
    # executor that is "not up yet", whichever of its reads or writes meets the reset.
    listener = socket.create_server(("127.0.0.1", 0))
    attempts: list[int] = []

    def challenge_then_reset() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            attempts.append(1)
            frames = protocol.FrameBuffer()
            hello = None
            while hello is None:
                hello = next(frames.feed(conn.recv(4096)), None)
            nonce = protocol.new_nonce()
            conn.sendall(protocol.encode({
                "t": "challenge", "v": protocol.VERSION, "nonce": nonce,
                "mac": protocol.driver_mac("secret", hello["nonce"], nonce)}))
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST, before the executor's `auth`

    threading.Thread(target=challenge_then_reset, daemon=True).start()
    executor = Executor(App("resets"), "resets", listener.getsockname(), "secret", "exec-0",
                        connect_timeout=1.0)
    try:
        with pytest.raises(ExecutorError, match="cannot reach driver"):
            executor.connect()
    finally:
        listener.close()
    assert len(attempts) >= 2, "the executor did not try again after a reset"
