"""The SLO feedback loop end to end: a real driver and executor (neptunectl, run here as local
processes) serve /status for an app that always misses its SLO; the operator, against a real
kube-apiserver, copies the driver's figures into the status, raises the app one step after the
violation window, says why (Event + status), and changes its PriorityClass accordingly.

The driver's /status needs the read token: the test copies the tokens of the Secret the
operator made into the driver's --tokens-dir, as the kubelet does with the mounted Secret."""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.controlplane import ControlPlane
from neptune_runtime.processes import free_port

from .op_helpers import BASE
from .op_operator import Operator, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).parent / "apps" / "always_late.py"
NS = "fb-tests"


@dataclass(frozen=True)
class Runtime:
    http_port: int
    tokens_dir: Path

    def take_tokens(self, secret: dict[str, Any]) -> None:
        """Write the Secret's tokens where the driver reads them (it looks again within 2 s)."""
        for key, value in secret["data"].items():
            tmp = self.tokens_dir / f".{key}.new"
            tmp.write_bytes(base64.b64decode(value))
            tmp.replace(self.tokens_dir / key)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """A real driver + one executor of the always-late app, the driver with tokens that the
    operator's Secret does not hold yet (see Runtime.take_tokens)."""
    logs = tmp_path_factory.mktemp("runtime")
    tokens_dir = tmp_path_factory.mktemp("tokens")
    for key in ("ingest", "read"):
        (tokens_dir / key).write_text(f"placeholder-{key}\n")
    port, http_port = free_port(), free_port()
    env = {**os.environ, "NEPTUNE_SECRET": "integration-secret",
           "PYTHONPATH": str(ROOT / "executor_image")}
    cli = [sys.executable, "-m", "neptune_runtime.cli"]
    procs = []
    with open(logs / "driver.log", "wb") as out:
        procs.append(subprocess.Popen(
            [*cli, "driver", "--app", str(APP), "--host", "127.0.0.1", "--port", str(port),
             "--http-port", str(http_port), "--tokens-dir", str(tokens_dir)], env=env,
            stdout=out, stderr=subprocess.STDOUT))
    time.sleep(1.5)
    with open(logs / "executor.log", "wb") as out:
        procs.append(subprocess.Popen(
            [*cli, "executor", "--app", str(APP), "--driver", f"127.0.0.1:{port}",
             "--name", "local-0"], env=env, stdout=out, stderr=subprocess.STDOUT))
    try:
        yield Runtime(http_port, tokens_dir)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def operator(controlplane: ControlPlane, runtime: Runtime,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    cp = controlplane
    cp.kubectl("apply", "--server-side", "-f", str(ROOT / "crds" / "continuousapplication.yaml"))
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s",
               "crd/continuousapplications.neptune.dev")
    cp.kubectl("create", "namespace", NS, check=False)
    op = Operator(cp, tmp_path_factory.mktemp("fb-operator") / "operator.log", NS, env={
        "NEPTUNE_DRIVER_STATUS_URL": f"http://127.0.0.1:{runtime.http_port}/status",
        "NEPTUNE_FEEDBACK_VIOLATION_WINDOW": "3",
        "NEPTUNE_FEEDBACK_MAX_BOOST": "1",
    })
    op.start()
    try:
        yield op
    finally:
        op.stop()
        print(op.log.read_text(errors="replace")[-3000:])


def status(cp: ControlPlane, name: str) -> dict[str, Any]:
    st: dict[str, Any] = ((cp.get("capp", name, NS) or {}).get("status") or {})
    return st


def events(cp: ControlPlane, name: str) -> list[str]:
    out = cp.kubectl("get", "events", "-n", NS, "-o", "json").stdout
    return [e["reason"] for e in json.loads(out)["items"] if e["involvedObject"]["name"] == name]


def test_missed_slo_raises_priority(controlplane: ControlPlane, operator: Operator,
                                    runtime: Runtime) -> None:
    cp = controlplane
    obj = copy.deepcopy(BASE)
    obj["metadata"] = {"name": "late", "namespace": NS}
    obj["spec"]["priority"] = 50  # neptune-low; one step (+100) reaches neptune-normal
    obj["spec"]["jobs"] = [{"name": "late", "kind": "stream", "slo": "1us"},
                           {"name": "count", "kind": "batch", "partitions": 2}]
    cp.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj))

    # Until the driver has the Secret's tokens it refuses the operator, and the status says so.
    def refused() -> str | None:
        message = str((status(cp, "late").get("driver") or {}).get("message") or "")
        return message if "HTTP 401" in message else None

    assert "late-ingest-token" in wait_for("the driver's 401 in the status", refused, timeout=40)
    secret = wait_for("the token Secret", lambda: cp.get("secret", "late-ingest-token", NS))
    runtime.take_tokens(secret)

    # The driver's real figures reach the status.
    def with_figures() -> dict[str, Any] | None:
        st = status(cp, "late")
        return st if "p99Ms" in (st.get("jobs") or {}).get("late", {}) else None

    def boosted() -> dict[str, Any] | None:
        st = status(cp, "late")
        return st if (st.get("assignedPriority") or {}).get("boost") == 1 else None

    def raised_once() -> list[str] | None:
        reasons = events(cp, "late")
        return reasons if reasons.count("PriorityRaised") == 1 else None

    st = wait_for("driver figures in status", with_figures, timeout=40)
    job = st["jobs"]["late"]
    assert job["kind"] == "stream"
    assert job["sloMs"] == 0.001
    assert job["p99Ms"] > job["sloMs"]
    assert st["jobs"]["count"]["kind"] == "batch"
    assert st["driver"]["reachable"] is True
    assert st["executors"]["registered"] == 1
    conditions = {c["type"]: c for c in st["conditions"]}
    assert conditions["SLOMet"]["status"] == "False"
    assert st["worstJob"].startswith("late ")

    # After the 3 s window: one step up, bounded at max_boost 1, with the reason.
    st = wait_for("boost", boosted, timeout=30)
    assigned = st["assignedPriority"]
    assert "SLO missed for" in assigned["reason"]
    assert assigned["priorityClassName"] == "neptune-normal"
    reasons = wait_for("PriorityRaised event", raised_once)
    assert "PriorityClassChanged" in reasons
    time.sleep(5)  # well past another window: max_boost holds
    assert status(cp, "late")["assignedPriority"]["boost"] == 1
    assert events(cp, "late").count("PriorityRaised") == 1
    # The pods keep their class until replaced (no restart for a priority change) ...
    sts = cp.get("sts", "late-executor", NS)
    assert sts is not None
    assert sts["spec"]["template"]["spec"]["priorityClassName"] == "neptune-low"
    # ... and the next roll takes the new class.
    cp.kubectl("patch", "capp", "late", "-n", NS, "--type", "merge",
               "-p", json.dumps({"spec": {"image": "neptune:v2"}}))
    wait_for("roll with the raised class", lambda: (cp.get("sts", "late-executor", NS) or {})[
        "spec"]["template"]["spec"].get("priorityClassName") == "neptune-normal")
