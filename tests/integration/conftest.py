"""Fixtures that run real driver and executor processes on this machine."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from neptune_runtime.processes import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "tests" / "apps"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def read_jsonl(path: Path) -> list[Any]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def processes_marked(marker: str) -> list[int]:
    """Pids of live processes whose environment carries `marker` (to find orphans)."""
    found = []
    needle = f"NEPTUNE_TEST_MARK={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().split()[2]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture
def marker() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def faults_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    params: dict[str, Any] = getattr(request, "param", {})
    env = {"FAULTS_SINK": str(tmp_path / "sink.jsonl"),
           "FAULTS_RUN_LOG": str(tmp_path / "runs.log"), **params.get("env", {})}
    cluster = LocalCluster(str(APPS / "faults.py"), executors=params.get("executors", 2),
                           policy=params.get("policy", "neptune"), env=env)
    with cluster:
        yield cluster
