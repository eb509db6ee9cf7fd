"""A driver killed with SIGKILL and started again with the same state directory: it resumes
every stream job from its committed offsets and loses no event that ingest answered 2xx."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from neptune_runtime.processes import LocalCluster

from .conftest import APPS, wait_for


def sink_lines(path: Path) -> list[Any]:
    """The sink's outputs; a line the killed driver was writing may be torn: skip it."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


class Poster:
    """Threads POSTing batches of events with fresh ids, keeping the ids answered 2xx."""

    def __init__(self, cluster: LocalCluster, threads: int = 2, batch: int = 10) -> None:
        self.cluster = cluster
        self.batch = batch
        self.ids = itertools.count()
        self.acked: set[int] = set()
        self.failures = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def _loop(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                batch = [next(self.ids) for _ in range(self.batch)]
            body = json.dumps([{"id": i} for i in batch]).encode()
            try:
                self.cluster.post("/ingest/events", body)
            except (OSError, http.client.HTTPException, ValueError):
                # the driver is down, or not accepting yet: these events may or may not be in
                with self.lock:
                    self.failures += 1
                time.sleep(0.02)
                continue
            with self.lock:
                self.acked.update(batch)

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def __enter__(self) -> Poster:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(15)


def test_http_ingest_loses_no_accepted_event_when_the_driver_is_killed(tmp_path: Path) -> None:
    sink, state = tmp_path / "sink.jsonl", tmp_path / "state"
    env = {"FAULTS_SINK": str(sink), "FAULTS_EPOCHS": "1"}
    with LocalCluster(str(APPS / "faults.py"), executors=2, env=env,
                      state_dir=str(state)) as cluster:
        assert cluster.status()["state_dir"] == str(state)
        with Poster(cluster) as poster:
            wait_for(lambda: poster.count() >= 300 and len(sink_lines(sink)) >= 100, 60,
                     "events accepted and processed by the first driver")
            wait_for(lambda: (state / "offsets.json").exists(), 10, "saved offsets")
            cluster.kill_driver()  # the posters go on: requests in flight die with it
            before = poster.count()
            cluster.start_driver()
            cluster.wait_for_executors(2)  # the same executor processes, reconnected
            assert set(cluster.exited()) == set(), "an executor exited instead of reconnecting"
            wait_for(lambda: poster.count() >= before + 300, 60, "events after the restart")
        assert poster.failures > 0, "no request met the dead driver"

        def settled() -> dict[str, Any] | None:
            figures: dict[str, Any] = cluster.status()["jobs"]["events"]
            offsets = figures["offsets"]
            return figures if (figures["uncommitted"] == 0
                               and offsets["committed"] == offsets["accepted"]) else None

        figures = wait_for(settled, 60, "every accepted event committed")
        offsets = figures["offsets"]
        assert offsets["resumed_from"] is not None and offsets["resumed_from"] > 0
        assert offsets["accepted"] >= len(poster.acked)
        # the restarted driver's events: the logged ones after the committed token (one
        # segment: none compacted), then the new ones
        assert figures["events"] == offsets["accepted"] - offsets["resumed_from"]
    results = {r["id"] for r in sink_lines(sink)}
    missing = poster.acked - results
    assert not missing, f"{len(missing)} accepted event(s) lost, e.g. {sorted(missing)[:5]}"


def test_synthetic_resumes_after_the_committed_index(tmp_path: Path) -> None:
    sink, state = tmp_path / "sink.jsonl", tmp_path / "state"
    env = {"SYNTH_SINK": str(sink), "SYNTH_RATE": "300"}
    with LocalCluster(str(APPS / "synthetic_app.py"), executors=1, env=env,
                      state_dir=str(state)) as cluster:
        wait_for(lambda: len(sink_lines(sink)) >= 150, 30, "events of the first driver")
        cluster.kill_driver()
        saved = json.loads((state / "offsets.json").read_text())["numbers"]["committed"]
        first_run = {r["index"]: r for r in sink_lines(sink)}
        cluster.start_driver()
        wait_for(lambda: len(sink_lines(sink)) >= len(first_run) + 150, 30,
                 "events of the restarted driver")
        offsets = cluster.status()["jobs"]["numbers"]["offsets"]
    assert offsets["resumed_from"] == saved >= 100
    outputs = sink_lines(sink)
    indexes = [r["index"] for r in outputs]
    assert set(indexes) == set(range(max(indexes) + 1)), "an event was skipped"
    counts = {i: indexes.count(i) for i in set(indexes)}
    assert all(counts[i] == 1 for i in range(saved + 1)), "committed events were emitted again"
    # The restarted driver's events (replayed ones included) are the ones the first would have
    # made: the per-partition generators were fast-forwarded, not restarted.
    assert all(first_run.get(r["index"], r) == r for r in outputs)


def test_without_a_state_dir_offsets_are_reported_from_memory(
        faults_cluster: LocalCluster) -> None:
    faults_cluster.post("/ingest/events", json.dumps([{"id": i} for i in range(5)]).encode())
    status = wait_for(lambda: (s := faults_cluster.status())["jobs"]["events"]["offsets"][
        "committed"] == 5 and s, 20, "5 events committed")
    assert status["state_dir"] is None
    assert status["jobs"]["events"]["offsets"] == {"committed": 5, "resumed_from": None,
                                                   "accepted": 5}


def test_an_unusable_state_dir_stops_the_driver_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    def driver(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "NEPTUNE_SECRET": "s" * 64,
               "NEPTUNE_STATE_DIR": str(blocker / "from-env")}
        return subprocess.run([sys.executable, "-m", "neptune_runtime.cli", "driver", "--app",
                               str(APPS / "faults.py"), "--port", "0", "--http-port", "0", *args],
                              capture_output=True, text=True, timeout=30, env=env)

    from_env = driver()
    assert from_env.returncode == 2
    assert f"state directory {blocker / 'from-env'} is not usable" in from_env.stderr
    flag = driver("--state-dir", str(blocker / "from-flag"))  # the flag wins over the variable
    assert flag.returncode == 2
    assert f"state directory {blocker / 'from-flag'} is not usable" in flag.stderr
