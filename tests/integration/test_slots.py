"""`neptunectl executor --slots N`: N real slot processes behind one metrics port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from neptune_runtime.processes import LocalCluster, free_port

from .conftest import APPS, wait_for


def test_one_supervisor_runs_several_slots_and_serves_their_metrics(tmp_path: Path) -> None:
    env = {"FAULTS_SINK": str(tmp_path / "sink.jsonl"), "FAULTS_PARTITION_RECORDS": "200000"}
    with LocalCluster(str(APPS / "faults.py"), executors=0, env=env) as cluster:
        port = free_port()
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "neptune_runtime.cli", "executor", "--app",
             str(APPS / "faults.py"), "--driver", f"127.0.0.1:{cluster.port}", "--name", "pod-a",
             "--slots", "2", "--metrics-port", str(port)],
            env={**os.environ, **env, "NEPTUNE_SECRET": cluster.secret,
                 "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")})
        try:
            # ready, not just registered: ingest opens once the first slot is ready
            status = wait_for(lambda: (s := cluster.status())["executors"]["live"] == 2
                              and s["jobs"]["events"].get("accepting", True) and s, 30,
                              "two slots to be ready")
            assert sorted(e["id"] for e in status["executors"]["list"]) == ["pod-a-0", "pod-a-1"]

            def preempted() -> bool:
                cluster.post("/ingest/events", json.dumps([{"id": 1}] * 3).encode())
                return bool(cluster.status()["jobs"]["sums"]["suspensions"] >= 4)

            wait_for(preempted, 60, "suspensions on the slots")

            def scraped() -> str | None:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
                    text: str = response.read().decode()
                count = [line for line in text.splitlines()
                         if line.startswith("neptune_task_suspension_latency_seconds_count")]
                return text if count and float(count[0].split()[-1]) >= 1 else None

            text = wait_for(scraped, 30, "aggregated suspension latency")
            assert 'le="5e-05"' in text
        finally:
            supervisor.send_signal(signal.SIGTERM)
            assert supervisor.wait(20) == 0
