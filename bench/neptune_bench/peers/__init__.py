"""Peers: the engines a user would otherwise pick, running the benchmark's exact work.

`run_peer` starts one peer in its own process (so that its pinning, threads, JVM or worker
processes never touch the caller) and returns its figures, or a failure with its error.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

from .common import PeerConfig

PEERS = ("spark_fair", "dask_priority", "os_priority")
# What each peer imports that only the bench extra installs
NEEDS = {"spark_fair": "pyspark", "dask_priority": "distributed"}
STARTUP_ALLOWANCE_S = 90.0  # a JVM or a Dask cluster starting on a busy machine


def _failed(name: str, error: str, elapsed: float) -> dict[str, Any]:
    return {"failed": True, "peer": name, "error": error, "elapsed_s": round(elapsed, 1),
            "stream_p50_ms": None, "stream_p99_ms": None, "batch_throughput_rel": None}


def _tail(path: str, lines: int = 25) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:]).strip()
    except OSError:
        return ""


class RunFailed(Exception):
    """A process's run did not give a result; the message says why (its stderr's tail)."""


def run_module(module: str, argument: str, budget: float, cwd: str) -> dict[str, Any]:
    """Run `python -m module argument` in a session of its own (ended whole afterwards, a JVM
    or workers with it), give it `budget` seconds, return the JSON of its last stdout line;
    RunFailed otherwise, with the tail of its stderr (kept in cwd/stderr.log)."""
    errors = os.path.join(cwd, "stderr.log")
    try:
        with open(errors, "w") as err:
            proc = subprocess.Popen([sys.executable, "-m", module, argument],
                                    stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                    cwd=cwd, start_new_session=True)
    except OSError as exc:
        raise RunFailed(f"could not start: {exc}") from None
    try:
        stdout, _ = proc.communicate(timeout=budget)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RunFailed(f"timed out after {budget:.0f}s; stderr: {_tail(errors)}") from None
    finally:
        # a process that exited may leave a straggler (a JVM shutting down) in its session
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    lines = stdout.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RunFailed(f"exit code {proc.returncode}; stderr: {_tail(errors)}")
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except ValueError:
        raise RunFailed(f"no JSON result; stdout ended with {lines[-1][:200]!r}") from None
    return result


def run_peer(name: str, cfg: PeerConfig) -> dict[str, Any]:
    """Run peer `name` through cfg.phases; never raises for the peer's own failures."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}: choose from {', '.join(PEERS)}")
    started = time.monotonic()
    missing = NEEDS.get(name)
    if missing is not None and importlib.util.find_spec(missing) is None:
        return _failed(name, f"{missing} is not installed: run `make bench-setup` (pip install "
                       "-e '.[bench]') first", 0.0)
    with tempfile.TemporaryDirectory(prefix=f"peer-{name}-") as tmp:
        cfg = PeerConfig(**{**cfg.__dict__, "workdir": tmp})
        budget = STARTUP_ALLOWANCE_S + len(cfg.phases) * (
            cfg.warmup + cfg.measure + 2 * cfg.grace + 5)
        try:
            raw = run_module(f"neptune_bench.peers.{name}", cfg.to_json(), budget, tmp)
        except RunFailed as exc:
            return _failed(name, str(exc), time.monotonic() - started)
    raw["elapsed_s"] = round(time.monotonic() - started, 1)
    return raw
