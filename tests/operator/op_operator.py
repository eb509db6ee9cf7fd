"""Running the operator as a subprocess for integration tests and benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from e2e.controlplane import ControlPlane
from neptune_runtime.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


class Operator:
    def __init__(self, cp: ControlPlane, log: Path, namespace: str,
                 kubeconfig: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.extra_env = env or {}
        self.cp = cp
        self.namespace = namespace
        self.kubeconfig = kubeconfig or cp.kubeconfig
        self.log = log
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**self.cp.env(), "KUBECONFIG": str(self.kubeconfig),
               "NEPTUNE_OPERATOR_METRICS_PORT": str(self.metrics_port),
               "NEPTUNE_STATUS_INTERVAL": "1",
               # Nothing listens there: the driver is "unreachable", as with no kubelet.
               "NEPTUNE_DRIVER_STATUS_URL": f"http://127.0.0.1:{free_port()}/status",
               "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("operator",
                                                                       "executor_image")),
               **self.extra_env}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "neptune_operator.main", "--namespace", self.namespace,
                 "--liveness", f"http://127.0.0.1:{self.health_port}/healthz"],
                stdout=out, stderr=subprocess.STDOUT, env=env)
        wait_for("operator liveness", self.healthy, 60)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz",
                                        timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=2) as resp:
            text: str = resp.read().decode()
            return text

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
