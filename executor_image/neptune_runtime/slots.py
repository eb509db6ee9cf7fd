"""Several executor processes in one pod: one per core, since one Python process uses one core.

The supervisor starts one single-slot executor per slot, serves their metrics on one port
(prometheus-client's multiprocess mode, so Prometheus scrapes a pod once), forwards SIGTERM and,
if any slot process exits, stops the others and exits with its code: the container restarts and
the driver re-runs the lost tasks, which is simpler and safer than restarting one slot alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def supervise(slots: int, name: str, metrics_port: int | None, passthrough: list[str]) -> int:
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
        prefix="neptune-metrics-")
    os.makedirs(metrics_dir, exist_ok=True)
    for stale in Path(metrics_dir).glob("*.db"):  # left by slots of a restarted container
        stale.unlink()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    children = [
        subprocess.Popen([sys.executable, "-m", "neptune_runtime.cli", "executor", *passthrough,
                          "--slots", "1", "--name", f"{name}-{i}"], env=env)
        for i in range(slots)
    ]
    if metrics_port is not None:
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=metrics_dir)  # type: ignore[no-untyped-call]
        start_http_server(metrics_port, registry=registry)

    stopping = {"flag": False}

    def on_term(signum: int, frame: Any) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    code = 0
    while not stopping["flag"]:
        exited = [c for c in children if c.poll() is not None]
        if exited:
            code = exited[0].returncode or 1
            print(f"neptunectl executor: slot process {exited[0].pid} exited with code "
                  f"{exited[0].returncode}; stopping the others", file=sys.stderr)
            break
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
    return code
