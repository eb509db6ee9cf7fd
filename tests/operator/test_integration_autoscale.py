"""The executor autoscaler with the operator against a real kube-apiserver and a fake driver
whose /status the test scripts (lag and throughput): up under a backlog, held at
maxReplicas, down after it, each step an Event with the numbers, executors.replicas and the
StatefulSet following, and the driver never restarted by it.

No kubelet runs here: assertions are about API objects, Events and status.
"""

from __future__ import annotations

import copy
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.controlplane import ControlPlane

from .op_helpers import BASE
from .op_operator import Operator, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NS = "autoscale-tests"
WINDOWS = {"scaleUpWindowSeconds": 2, "scaleDownWindowSeconds": 4}


class FakeDriver(http.server.ThreadingHTTPServer):
    """GET /NAMESPACE/NAME/status: a driver document whose stream job `score` has the lag and
    throughput the test sets (`figures[name]`); 404 for apps it has no figures for."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeDriverHandler)
        self.figures: dict[str, tuple[dict[str, int], float]] = {}
        self.tokens: list[str | None] = []


class FakeDriverHandler(http.server.BaseHTTPRequestHandler):
    server: FakeDriver

    def do_GET(self) -> None:
        name = self.path.strip("/").split("/")[1]
        self.server.tokens.append(self.headers.get("X-Neptune-Token"))
        figures = self.server.figures.get(name)
        if figures is None:
            self.send_response(404)
            self.end_headers()
            return
        lag, throughput = figures
        body = {"phase": "Running", "executors": {"registered": 1}, "jobs": {
            "score": {"kind": "stream", "state": "running", "throughput_per_s": throughput,
                      "lag": lag, "slo_ms": 50.0, "p99_ms": 10.0, "samples": 10},
            "train": {"kind": "batch", "state": "running", "throughput_per_s": 5.0}}}
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeDriver]:
    server = FakeDriver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def cluster(controlplane: ControlPlane) -> ControlPlane:
    cp = controlplane
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f",
               str(ROOT / "crds" / "continuousapplication.yaml"))
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s",
               "crd/continuousapplications.neptune.dev")
    cp.kubectl("create", "namespace", NS, check=False)
    return cp


@pytest.fixture(scope="module")
def operator(cluster: ControlPlane, fake: FakeDriver,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    port = fake.server_address[1]
    op = Operator(cluster, tmp_path_factory.mktemp("autoscale-operator") / "operator.log", NS,
                  env={"NEPTUNE_DRIVER_STATUS_URL":
                       f"http://127.0.0.1:{port}/{{namespace}}/{{name}}/status"})
    op.start()
    try:
        yield op
    finally:
        op.stop()
        print(op.log.read_text(errors="replace")[-4000:])


def capp(name: str, autoscale: dict[str, Any], replicas: int | None = None) -> dict[str, Any]:
    obj = copy.deepcopy(BASE)
    obj["metadata"] = {"name": name, "namespace": NS}
    obj["spec"]["monitoring"] = {"podMonitor": False}
    obj["spec"]["executors"] = {k: v for k, v in obj["spec"]["executors"].items()
                                if k != "replicas"}
    if replicas is not None:
        obj["spec"]["executors"]["replicas"] = replicas
    obj["spec"]["executors"]["autoscale"] = autoscale
    return obj


def apply(cp: ControlPlane, obj: dict[str, Any]) -> None:
    cp.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj))


def get(cp: ControlPlane, kind: str, name: str) -> dict[str, Any]:
    obj = cp.get(kind, name, NS)
    assert obj is not None, f"{kind}/{name}"
    return obj


def replicas(cp: ControlPlane, app: str) -> tuple[int | None, int | None]:
    """(spec.executors.replicas of the app, replicas of its StatefulSet)."""
    spec = get(cp, "capp", app)["spec"]["executors"].get("replicas")
    sts = cp.get("sts", f"{app}-executor", NS)
    return spec, None if sts is None else sts["spec"]["replicas"]


def autoscaled(cp: ControlPlane, app: str) -> list[str]:
    out = cp.kubectl("get", "events", "-n", NS, "--field-selector",
                     f"involvedObject.name={app},involvedObject.kind=ContinuousApplication,"
                     "reason=Autoscaled", "-o", "json").stdout
    items = sorted(json.loads(out)["items"],
                   key=lambda e: e.get("firstTimestamp") or e["metadata"]["creationTimestamp"])
    return [e["message"] for e in items]


def autoscale_status(cp: ControlPlane, app: str) -> dict[str, Any]:
    st: dict[str, Any] = (get(cp, "capp", app).get("status") or {}).get("autoscale") or {}
    return st


def test_up_under_a_backlog_and_down_after_it(cluster: ControlPlane, operator: Operator,
                                              fake: FakeDriver) -> None:
    apply(cluster, capp("lagging", {"minReplicas": 1, "maxReplicas": 4,
                                    "targetLagSeconds": 10, **WINDOWS}))
    # No replicas in the manifest: the StatefulSet starts at minReplicas and the autoscaler
    # writes executors.replicas (so that the scale subresource has a value).
    wait_for("replicas written", lambda: replicas(cluster, "lagging") == (1, 1))
    cluster.kubectl("get", "--raw",
                    f"/apis/neptune.dev/v1alpha1/namespaces/{NS}/continuousapplications/"
                    "lagging/scale")
    dep_gen = int(get(cluster, "deploy", "lagging-driver")["metadata"]["generation"])
    # The driver does not answer yet: no evidence, the autoscaler holds and says why.
    wait_for("holding", lambda: "no running stream job reports lag" in autoscale_status(
        cluster, "lagging").get("message", ""))
    assert replicas(cluster, "lagging") == (1, 1)

    # A backlog: 1000 records over two partitions at 10 records/s is 100 s to drain.
    fake.figures["lagging"] = ({"0": 600, "1": 400}, 10.0)
    wait_for("one step up", lambda: replicas(cluster, "lagging") == (2, 2), timeout=30)
    first = autoscaled(cluster, "lagging")[0]
    assert first.startswith("executors 1 -> 2: job score needs 100.0s to drain 1000 records "
                            "at 10.0/s, over the target 10s for "), first
    assert first.endswith("(scaleUpWindowSeconds 2); bounds 1..4"), first
    assert autoscale_status(cluster, "lagging")["drainSeconds"] == 100.0
    # Another window, another step (doubling at most), then held at maxReplicas.
    wait_for("at maxReplicas", lambda: replicas(cluster, "lagging") == (4, 4), timeout=30)
    wait_for("held", lambda: "at maxReplicas 4" in autoscale_status(
        cluster, "lagging").get("message", ""))
    time.sleep(3)
    assert replicas(cluster, "lagging") == (4, 4)
    assert len(autoscaled(cluster, "lagging")) == 2

    # Drained: one pod down per window, to minReplicas.
    fake.figures["lagging"] = ({"0": 0, "1": 0}, 25.0)
    wait_for("one step down", lambda: replicas(cluster, "lagging") == (3, 3), timeout=30)
    down = autoscaled(cluster, "lagging")[2]
    assert down.startswith("executors 4 -> 3: the worst, job score needs 0.0s to drain 0 "
                           "records at 25.0/s, under 5s (half the target 10s) for "), down
    wait_for("back to minReplicas", lambda: replicas(cluster, "lagging") == (1, 1), timeout=60)
    st = autoscale_status(cluster, "lagging")
    assert st["lastScale"].startswith("executors 2 -> 1")
    assert "lastScaleTime" in st
    # Scaling never touched the driver.
    assert int(get(cluster, "deploy", "lagging-driver")["metadata"]["generation"]) == dep_gen
    env = {e["name"]: e.get("value") for e in get(cluster, "deploy", "lagging-driver")[
        "spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["NEPTUNE_SPEC_GENERATION"] == "1"
    assert int(get(cluster, "capp", "lagging")["metadata"]["generation"]) > 5
    text = operator.metrics()
    assert 'neptune_operator_autoscale_changes_total{direction="up"} 2.0' in text
    assert 'neptune_operator_autoscale_changes_total{direction="down"} 3.0' in text


def test_bounds_and_a_scale_by_hand(cluster: ControlPlane, operator: Operator,
                                    fake: FakeDriver) -> None:
    # Replicas below the bounds: corrected at once, whatever the lag.
    apply(cluster, capp("bounded", {"minReplicas": 3, "maxReplicas": 5, "targetLagSeconds": 10,
                                    "scaleUpWindowSeconds": 60,
                                    "scaleDownWindowSeconds": 600}, replicas=1))
    wait_for("raised to minReplicas", lambda: replicas(cluster, "bounded") == (3, 3))
    assert autoscaled(cluster, "bounded") == [
        "executors 1 -> 3: executors.replicas 1 is below autoscale.minReplicas 3"]
    # Within the bounds and within the target: a scale by hand holds.
    fake.figures["bounded"] = ({"0": 70}, 10.0)  # 7 s: between half the target and it
    cluster.kubectl("scale", "capp", "bounded", "-n", NS, "--replicas", "4")
    wait_for("scaled by hand", lambda: replicas(cluster, "bounded") == (4, 4))
    wait_for("within the target", lambda: "within the target" in autoscale_status(
        cluster, "bounded").get("message", ""))
    time.sleep(3)
    assert replicas(cluster, "bounded") == (4, 4)
    # Above the bounds (kubectl scale past maxReplicas): back to maxReplicas.
    cluster.kubectl("scale", "capp", "bounded", "-n", NS, "--replicas", "9")
    wait_for("lowered to maxReplicas", lambda: replicas(cluster, "bounded") == (5, 5))
    assert autoscaled(cluster, "bounded")[-1] == (
        "executors 9 -> 5: executors.replicas 9 is above autoscale.maxReplicas 5")
    # Autoscale removed: replicas are the user's again, nothing moves them.
    cluster.kubectl("patch", "capp", "bounded", "-n", NS, "--type", "json", "-p", json.dumps(
        [{"op": "remove", "path": "/spec/executors/autoscale"}]))
    wait_for("no autoscale status", lambda: not autoscale_status(cluster, "bounded"))
    cluster.kubectl("scale", "capp", "bounded", "-n", NS, "--replicas", "9")
    wait_for("9 replicas", lambda: replicas(cluster, "bounded") == (9, 9))
    time.sleep(3)
    assert replicas(cluster, "bounded") == (9, 9)
