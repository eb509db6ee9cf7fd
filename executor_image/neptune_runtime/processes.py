"""A driver and N executor processes on this machine: what `neptunectl run` and the benchmark use.

Children get their own session (so Ctrl-C reaches only us and we stop them in order) and a
parent-death signal (so they never outlive us, even if we are killed).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from . import tokens
from .protocol import new_secret

PR_SET_PDEATHSIG = 1


class StartError(Exception):
    """The driver or an executor did not come up."""


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class LocalCluster:
    app: str
    executors: int = 2
    policy: str = "neptune"
    http_port: int = 0
    executor_cpus: list[int] | None = None
    driver_cpu: int | None = None
    yield_points: bool = True
    executor_metrics: bool = False  # give each executor a free Prometheus port
    state_dir: str | None = None  # the driver's --state-dir
    env: dict[str, str] = field(default_factory=dict)
    log: IO[str] | None = None  # None: children write to our stderr
    # a driver restarted after a crash mid-transaction may wait ~35 s for the broker (core.py)
    start_timeout: float = 60.0
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    http: str = ""
    port: int = 0
    secret: str = ""
    metrics_ports: dict[str, int] = field(default_factory=dict)
    tokens_dir: str | None = None  # None: a new private directory (see tokens.py)
    tokens: dict[str, str] = field(default_factory=dict)
    executor_args: dict[str, list[str]] = field(default_factory=dict)
    restarts: Counter[str] = field(default_factory=Counter)
    _revive_at: dict[str, float] = field(default_factory=dict)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "neptune_runtime.cli", *args],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log or sys.stderr,
            stderr=self.log or sys.stderr, start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def _env(self, secret: str) -> dict[str, str]:
        return {**os.environ, **self.env, "NEPTUNE_SECRET": secret}

    def start(self) -> None:
        self.secret = new_secret()
        if self.tokens_dir is None:
            self.tokens_dir = tempfile.mkdtemp(prefix="neptune-tokens-")
        directory = Path(self.tokens_dir)
        if not (directory / "ingest").exists():
            tokens.create(directory)
        self.tokens = {g: (directory / g).read_text().strip() for g in tokens.GRANTS}
        self.start_driver()
        for i in range(self.executors):
            self.add_executor(f"exec-{i}")
        self.wait_for_executors(self.executors)

    def start_driver(self) -> None:
        """Start the driver. After the first start its ports are fixed, so a driver started
        again after `kill_driver` is where executors (which reconnect) and clients expect it."""
        env = self._env(self.secret)
        with tempfile.TemporaryDirectory(prefix="neptune-") as tmp:
            ready = Path(tmp) / "ready.json"
            args = ["driver", "--app", self.app, "--host", "127.0.0.1", "--port", str(self.port),
                    "--http-port", str(self.http_port), "--policy", self.policy,
                    "--ready-file", str(ready), "--tokens-dir", str(self.tokens_dir)]
            if self.driver_cpu is not None:
                args += ["--cpu", str(self.driver_cpu)]
            if self.state_dir is not None:
                args += ["--state-dir", self.state_dir]
            self._spawn("driver", args, env)
            deadline = time.monotonic() + self.start_timeout
            while not ready.exists():
                code = self.procs["driver"].poll()
                if code is not None:
                    raise StartError(f"the driver exited with code {code} before it was ready")
                if time.monotonic() > deadline:
                    raise StartError(f"the driver was not ready after {self.start_timeout:.0f}s")
                time.sleep(0.02)
            info = json.loads(ready.read_text())
        self.port, self.http_port = info["port"], info["http_port"]
        self.http = f"http://127.0.0.1:{self.http_port}"

    def kill_driver(self) -> None:
        """SIGKILL the driver, as a crash or a deleted pod would end it: nothing is flushed."""
        driver = self.procs["driver"]
        driver.kill()
        driver.wait()

    def add_executor(self, name: str, secret: str | None = None,
                     env: dict[str, str] | None = None) -> None:
        """Start one more executor; `secret` overrides the app's (tests of rejection use it),
        `env` adds to its environment."""
        args = ["executor", "--app", self.app, "--driver", f"127.0.0.1:{self.port}",
                "--name", name]
        index = sum(1 for n in self.procs if n != "driver")
        if self.executor_cpus:
            args += ["--cpu", str(self.executor_cpus[index % len(self.executor_cpus)])]
        if not self.yield_points:
            args.append("--no-yield-points")
        if self.executor_metrics:
            self.metrics_ports[name] = free_port()
            args += ["--metrics-port", str(self.metrics_ports[name])]
        self.executor_args[name] = args
        self._spawn(name, args, {**self._env(secret or self.secret), **(env or {})})

    def restart_executor(self, name: str) -> None:
        """Start an executor that exited again, as its pod's container would be restarted."""
        self._spawn(name, self.executor_args[name], self._env(self.secret))

    def revive(self, now: float) -> list[str]:
        """Restart the executors that exited, each after a back-off that doubles with its
        restarts (1 s up to 30 s), as the kubelet restarts a container; say what was done."""
        said = []
        for name, code in self.exited().items():
            if name == "driver":
                continue
            due = self._revive_at.setdefault(name, now + min(30.0, 2.0 ** self.restarts[name]))
            if now < due:
                continue
            self.restarts[name] += 1
            del self._revive_at[name]
            self.restart_executor(name)
            said.append(f"executor {name} exited with code {code}; restarted it "
                        f"(restart {self.restarts[name]})")
        return said

    def wait_for_executors(self, count: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        waiting: list[str] = []
        while True:
            for name, proc in self.procs.items():
                code = proc.poll()
                if code is not None:
                    raise StartError(f"{name} exited with code {code} during start-up")
            try:
                status = self.status()
                # HTTP ingest opens once an executor is ready: with none asked for, not yet
                waiting = [n for n, j in status["jobs"].items()
                           if count and j.get("accepting") is False]
                if status["executors"]["live"] >= count and not waiting:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise StartError(f"{count} executor(s) did not become ready, or the ingest of "
                                 f"{waiting} did not open, in {self.start_timeout:.0f}s")
            time.sleep(0.05)

    def get(self, path: str, token: str = "read") -> Any:
        """GET a JSON document from the driver with the read token (or the one named)."""
        request = urllib.request.Request(
            self.http + path, headers={"Authorization": f"Bearer {self.tokens[token]}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = self.get("/status")
        return data

    def post(self, path: str, body: bytes = b"", content_type: str = "application/json") -> Any:
        """POST with the ingest token."""
        request = urllib.request.Request(self.http + path, data=body, method="POST", headers={
            "Content-Type": content_type, "Authorization": f"Bearer {self.tokens['ingest']}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def exited(self) -> dict[str, int]:
        return {n: c for n, p in self.procs.items() if (c := p.poll()) is not None}

    def stop(self, timeout: float = 10.0) -> dict[str, int]:
        """Stop every process: the driver first (its executors would reconnect to a new one),
        then the rest."""
        order = ["driver"] + [n for n in self.procs if n != "driver"]
        for name in order:
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int] = {}
        for name in order:
            proc = self.procs[name]
            try:
                codes[name] = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        return codes

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
