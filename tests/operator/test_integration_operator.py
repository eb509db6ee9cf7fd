"""The operator process against a real kube-apiserver: children, scale, roll, reload,
suspend/resume, delete, restart convergence, Events, metrics and liveness.

No kubelet runs here, so pods never start: assertions are about API objects and status.
"""

from __future__ import annotations

import base64
import copy
import http.server
import json
import signal
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
NS = "op-tests"


@pytest.fixture(scope="module")
def cluster(controlplane: ControlPlane) -> ControlPlane:
    cp = controlplane
    cp.kubectl("apply", "--server-side", "-f", str(ROOT / "crds" / "continuousapplication.yaml"))
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s",
               "crd/continuousapplications.neptune.dev")
    cp.kubectl("create", "namespace", NS, check=False)
    return cp


@pytest.fixture(scope="module")
def operator(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Operator]:
    op = Operator(cluster, tmp_path_factory.mktemp("operator") / "operator.log", NS)
    op.start()
    try:
        yield op
    finally:
        op.stop()
        print(op.log.read_text(errors="replace")[-4000:])


def capp(name: str, **spec: Any) -> dict[str, Any]:
    obj = copy.deepcopy(BASE)
    obj["metadata"] = {"name": name, "namespace": NS}
    obj["spec"]["monitoring"] = {"podMonitor": False}
    obj["spec"].update(spec)
    return obj


def apply(cp: ControlPlane, obj: dict[str, Any]) -> None:
    cp.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj))


def patch(cp: ControlPlane, name: str, spec: dict[str, Any]) -> None:
    cp.kubectl("patch", "capp", name, "-n", NS, "--type", "merge",
               "-p", json.dumps({"spec": spec}))


def get(cp: ControlPlane, kind: str, name: str) -> dict[str, Any] | None:
    return cp.get(kind, name, NS)


def children(cp: ControlPlane, app: str) -> dict[str, list[str]]:
    out = cp.kubectl("get", "deploy,sts,svc,secret,cm,networkpolicy,pvc", "-n", NS,
                     "-l", f"neptune.dev/app={app}", "-o", "json").stdout
    found: dict[str, list[str]] = {}
    for item in json.loads(out)["items"]:
        found.setdefault(item["kind"], []).append(item["metadata"]["name"])
    return {k: sorted(v) for k, v in sorted(found.items())}


EXPECTED = {
    "ConfigMap": ["{a}-config"], "Deployment": ["{a}-driver"], "NetworkPolicy": ["{a}"],
    "Secret": ["{a}-ingest-token", "{a}-secret"], "Service": ["{a}-driver", "{a}-executor"],
    "StatefulSet": ["{a}-executor"],
}


def expected(app: str) -> dict[str, list[str]]:
    return {k: [n.format(a=app) for n in v] for k, v in EXPECTED.items()}


def decoded(secret: dict[str, Any] | None) -> dict[str, str]:
    assert secret is not None
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def events(cp: ControlPlane, name: str) -> list[str]:
    out = cp.kubectl("get", "events", "-n", NS, "--field-selector",
                     f"involvedObject.name={name},involvedObject.kind=ContinuousApplication",
                     "-o", "json").stdout
    return [e["reason"] for e in json.loads(out)["items"]]


def generation(cp: ControlPlane, kind: str, name: str) -> int:
    obj = get(cp, kind, name)
    assert obj is not None
    return int(obj["metadata"]["generation"])


def test_children_created_and_owned(cluster: ControlPlane, operator: Operator) -> None:
    apply(cluster, capp("alpha"))
    wait_for("children", lambda: children(cluster, "alpha") == expected("alpha"))
    owner = get(cluster, "capp", "alpha")
    assert owner is not None
    for kind, names in expected("alpha").items():
        for name in names:
            obj = get(cluster, kind, name)
            assert obj is not None
            (ref,) = obj["metadata"]["ownerReferences"]
            assert ref["uid"] == owner["metadata"]["uid"]
            assert ref["controller"] is True
    secret = get(cluster, "secret", "alpha-secret")
    assert secret is not None
    assert len(base64.b64decode(secret["data"]["secret"])) == 64  # 32 bytes, hex
    tokens = decoded(get(cluster, "secret", "alpha-ingest-token"))
    assert set(tokens) == {"ingest", "read"}
    assert tokens["ingest"] != tokens["read"] and min(map(len, tokens.values())) >= 43
    dep = get(cluster, "deploy", "alpha-driver")
    assert dep is not None
    dpod = dep["spec"]["template"]["spec"]
    # The API server keeps the mount as rendered: read-only, the whole Secret, mode 0440.
    assert {"name": "tokens", "secret": {"secretName": "alpha-ingest-token",
                                         "defaultMode": 0o440}} in dpod["volumes"]
    (driver,) = dpod["containers"]
    assert {"name": "tokens", "mountPath": "/var/run/neptune/tokens", "readOnly": True} \
        in driver["volumeMounts"]
    assert {"name": "NEPTUNE_TOKENS_DIR", "value": "/var/run/neptune/tokens"} in driver["env"]
    sts = get(cluster, "sts", "alpha-executor")
    assert sts is not None
    assert sts["spec"]["replicas"] == 3
    pod = sts["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "neptune-normal"  # priority 100
    assert pod["securityContext"]["runAsNonRoot"] is True
    cm = get(cluster, "cm", "alpha-config")
    assert cm is not None
    assert json.loads(cm["data"]["priorities.json"])["jobs"]["train"] == 0


def test_status_written(cluster: ControlPlane, operator: Operator) -> None:
    apply(cluster, capp("status"))

    def status() -> dict[str, Any] | None:
        obj = get(cluster, "capp", "status")
        st = (obj or {}).get("status") or {}
        return st if st.get("observedGeneration") else None

    st = wait_for("status", status)
    assert st["phase"] == "Pending"  # no kubelet: pods never become ready
    assert st["executors"]["desired"] == 3
    assert st["executors"]["summary"] == "0/3"
    types = {c["type"]: c["status"] for c in st["conditions"]}
    assert types["Ready"] == "False"
    assert types["Progressing"] == "True"
    assert types["Suspended"] == "False"
    assert st["assignedPriority"]["priorityClassName"] == "neptune-normal"
    assert st["selector"] == "neptune.dev/app=status,neptune.dev/role=executor"
    out = cluster.kubectl("get", "capp", "status", "-n", NS).stdout
    assert "Pending" in out and "0/3" in out


def test_pod_monitor_missing_crd_is_an_event(cluster: ControlPlane, operator: Operator) -> None:
    apply(cluster, capp("mon", monitoring={"podMonitor": True}))
    wait_for("MonitoringUnavailable event", lambda: "MonitoringUnavailable" in events(
        cluster, "mon"))
    assert children(cluster, "mon") == expected("mon")


def test_scale_in_place(cluster: ControlPlane, operator: Operator) -> None:
    apply(cluster, capp("scale"))
    wait_for("sts", lambda: get(cluster, "sts", "scale-executor"))
    driver_gen = generation(cluster, "deploy", "scale-driver")
    cluster.kubectl("scale", "capp", "scale", "-n", NS, "--replicas", "5")
    wait_for("5 replicas",
             lambda: (get(cluster, "sts", "scale-executor") or {})["spec"]["replicas"] == 5)
    assert generation(cluster, "deploy", "scale-driver") == driver_gen
    wait_for("Scale event", lambda: "Scale" in events(cluster, "scale"))


def test_image_change_rolls_both(cluster: ControlPlane, operator: Operator) -> None:
    apply(cluster, capp("roll"))
    wait_for("sts", lambda: get(cluster, "sts", "roll-executor"))
    patch(cluster, "roll", {"image": "neptune:v2"})

    def rolled() -> bool:
        dep, sts = get(cluster, "deploy", "roll-driver"), get(cluster, "sts", "roll-executor")
        images = {c["image"] for o in (dep, sts) if o
                  for c in o["spec"]["template"]["spec"]["containers"]}
        return images == {"neptune:v2"}

    wait_for("new image in both templates", rolled)
    wait_for("Roll event", lambda: "Roll" in events(cluster, "roll"))


def test_job_change_reloads_driver_only(cluster: ControlPlane, operator: Operator) -> None:
    apply(cluster, capp("reload"))
    wait_for("sts", lambda: get(cluster, "sts", "reload-executor"))
    sts_gen = generation(cluster, "sts", "reload-executor")
    dep_gen = generation(cluster, "deploy", "reload-driver")
    obj = capp("reload")
    obj["spec"]["jobs"][0]["slo"] = "20ms"
    apply(cluster, obj)
    wait_for("driver template changed",
             lambda: generation(cluster, "deploy", "reload-driver") > dep_gen)
    wait_for("Reload event", lambda: "Reload" in events(cluster, "reload"))
    assert generation(cluster, "sts", "reload-executor") == sts_gen
    cm = get(cluster, "cm", "reload-config")
    assert cm is not None
    assert json.loads(cm["data"]["jobs.json"])["jobs"]["score"]["slo"] == "20ms"


def test_metadata_change_does_nothing(cluster: ControlPlane, operator: Operator) -> None:
    apply(cluster, capp("meta"))
    wait_for("sts", lambda: get(cluster, "sts", "meta-executor"))
    gens = (generation(cluster, "sts", "meta-executor"),
            generation(cluster, "deploy", "meta-driver"))
    cluster.kubectl("label", "capp", "meta", "-n", NS, "team=blue")
    wait_for("NoChange event", lambda: "NoChange" in events(cluster, "meta"))
    assert gens == (generation(cluster, "sts", "meta-executor"),
                    generation(cluster, "deploy", "meta-driver"))


def test_suspend_and_resume(cluster: ControlPlane, operator: Operator) -> None:
    apply(cluster, capp("pause"))
    wait_for("sts", lambda: get(cluster, "sts", "pause-executor"))
    secret_before = (get(cluster, "secret", "pause-secret") or {})["data"]
    tokens_before = (get(cluster, "secret", "pause-ingest-token") or {})["data"]
    patch(cluster, "pause", {"suspend": True})

    def replicas() -> tuple[int, int]:
        dep, sts = get(cluster, "deploy", "pause-driver"), get(cluster, "sts", "pause-executor")
        assert dep is not None and sts is not None
        return dep["spec"]["replicas"], sts["spec"]["replicas"]

    wait_for("scaled to zero", lambda: replicas() == (0, 0))
    wait_for("phase Suspended", lambda: ((get(cluster, "capp", "pause") or {}).get(
        "status") or {}).get("phase") == "Suspended")
    assert get(cluster, "capp", "pause") is not None
    patch(cluster, "pause", {"suspend": False})
    wait_for("scaled back", lambda: replicas() == (1, 3))
    assert {"Suspend", "Resume"} <= set(events(cluster, "pause"))
    assert (get(cluster, "secret", "pause-secret") or {})["data"] == secret_before
    assert (get(cluster, "secret", "pause-ingest-token") or {})["data"] == tokens_before


def test_driver_state_claim(cluster: ControlPlane, operator: Operator) -> None:
    driver = {**BASE["spec"]["driver"], "storage": {"size": "64Mi"}}
    apply(cluster, capp("stateful", driver=driver))
    want = {**expected("stateful"), "PersistentVolumeClaim": ["stateful-driver-state"]}
    wait_for("children with the state claim", lambda: children(cluster, "stateful") == want)
    owner, pvc = get(cluster, "capp", "stateful"), get(cluster, "pvc", "stateful-driver-state")
    assert owner is not None and pvc is not None
    assert pvc["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "64Mi"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    dep = get(cluster, "deploy", "stateful-driver")
    assert dep is not None
    volumes = dep["spec"]["template"]["spec"]["volumes"]
    assert {"name": "state", "persistentVolumeClaim": {"claimName": "stateful-driver-state"}} \
        in volumes

    # No StorageClass and no volume here: the claim stays Pending, and the status says so.
    def storage() -> dict[str, Any] | None:
        st = ((get(cluster, "capp", "stateful") or {}).get("status") or {})
        out: dict[str, Any] | None = (st.get("driver") or {}).get("storage")
        return out if out and out.get("phase") == "Pending" else None

    assert wait_for("claim phase in status", storage) == {
        "volume": "PersistentVolumeClaim", "claimName": "stateful-driver-state",
        "phase": "Pending"}
    cluster.kubectl("delete", "capp", "stateful", "-n", NS, "--wait=true", "--timeout=30s")
    wait_for("children and claim gone", lambda: children(cluster, "stateful") == {},
             timeout=60)


def test_delete_removes_children(cluster: ControlPlane, operator: Operator) -> None:
    apply(cluster, capp("gone"))
    wait_for("children", lambda: children(cluster, "gone") == expected("gone"))
    cluster.kubectl("delete", "capp", "gone", "-n", NS, "--wait=true", "--timeout=30s")
    # The garbage collector (kube-controller-manager) follows the owner references.
    wait_for("children gone", lambda: children(cluster, "gone") == {}, timeout=60)


def test_restart_mid_reconcile_converges(cluster: ControlPlane, operator: Operator) -> None:
    apply(cluster, capp("restart"))
    # Kill hard as soon as the first child shows up: the reconcile is interrupted.
    wait_for("first child", lambda: children(cluster, "restart"), timeout=30)
    operator.stop(signal.SIGKILL)
    secret = get(cluster, "secret", "restart-secret")
    tokens = get(cluster, "secret", "restart-ingest-token")
    patch(cluster, "restart", {"executors": {"replicas": 2}})
    operator.start()
    wait_for("converged", lambda: children(cluster, "restart") == expected("restart"))
    wait_for("2 replicas",
             lambda: (get(cluster, "sts", "restart-executor") or {})["spec"]["replicas"] == 2)
    time.sleep(2)  # a few status rounds: nothing may be duplicated or recreated
    assert children(cluster, "restart") == expected("restart")
    if secret is not None:
        assert (get(cluster, "secret", "restart-secret") or {})["data"] == secret["data"]
    if tokens is not None:
        assert (get(cluster, "secret", "restart-ingest-token") or {})["data"] == tokens["data"]


def test_operator_metrics(cluster: ControlPlane, operator: Operator) -> None:
    apply(cluster, capp("metrics"))
    wait_for("status", lambda: ((get(cluster, "capp", "metrics") or {}).get("status") or {}
                                ).get("phase"))
    text = operator.metrics()
    assert 'neptune_operator_reconciles_total{action="status"}' in text
    assert "neptune_operator_reconcile_duration_seconds_bucket" in text
    assert 'neptune_operator_apps{phase="Pending"}' in text
    assert 'neptune_operator_job_slo_seconds{app="metrics",job="score",namespace="op-tests"} 0.05' \
        in text


def rotate(cp: ControlPlane, namespace: str, secret: str, values: dict[str, str]) -> None:
    """The rotation docs/operator.md tells users to do."""
    cp.kubectl("patch", "secret", secret, "-n", namespace, "--type", "merge",
               "-p", json.dumps({"stringData": values}))


def test_rotated_tokens_are_kept_through_a_roll(cluster: ControlPlane,
                                                operator: Operator) -> None:
    apply(cluster, capp("rotate"))
    wait_for("token Secret", lambda: get(cluster, "secret", "rotate-ingest-token"))
    owner = get(cluster, "capp", "rotate")
    assert owner is not None
    rotate(cluster, NS, "rotate-ingest-token", {"ingest": "user-ingest", "read": "user-read"})
    patch(cluster, "rotate", {"image": "neptune:v3"})
    wait_for("Roll event", lambda: "Roll" in events(cluster, "rotate"))
    time.sleep(2)  # a few status rounds too
    secret = get(cluster, "secret", "rotate-ingest-token")
    assert decoded(secret) == {"ingest": "user-ingest", "read": "user-read"}
    assert secret is not None
    # Still the app's: deleted with it.
    assert secret["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]


class FakeDriver(http.server.ThreadingHTTPServer):
    """GET /NAMESPACE/NAME/status answering only the current read token, as the runtime's
    driver does (Authorization: Bearer TOKEN or X-Neptune-Token); 401 with JSON otherwise."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeDriverHandler)
        self.read_token: str | None = None
        self.seen: list[str | None] = []


class FakeDriverHandler(http.server.BaseHTTPRequestHandler):
    server: FakeDriver

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization") or ""
        given = self.headers.get("X-Neptune-Token") or (
            auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None)
        self.server.seen.append(given)
        ok = given is not None and given == self.server.read_token
        body = (json.dumps({"phase": "Running", "executors": {"registered": 3}, "jobs": {}})
                if ok else json.dumps({"error": "wrong token: status needs the read token"}))
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_: Any) -> None:
        pass


TOKEN_NS = "token-tests"


@pytest.fixture(scope="module")
def token_operator(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[Operator, FakeDriver]]:
    fake = FakeDriver()
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    cluster.kubectl("create", "namespace", TOKEN_NS, check=False)
    port = fake.server_address[1]
    op = Operator(cluster, tmp_path_factory.mktemp("token-operator") / "operator.log", TOKEN_NS,
                  env={"NEPTUNE_DRIVER_STATUS_URL":
                       f"http://127.0.0.1:{port}/{{namespace}}/{{name}}/status"})
    op.start()
    try:
        yield op, fake
    finally:
        op.stop()
        fake.shutdown()
        print(op.log.read_text(errors="replace")[-3000:])


def driver_seen(cp: ControlPlane, name: str) -> dict[str, Any]:
    st: dict[str, Any] = ((cp.get("capp", name, TOKEN_NS) or {}).get("status") or {})
    return dict(st.get("driver") or {})


def test_status_is_read_with_the_read_token_through_a_rotation(
        cluster: ControlPlane, token_operator: tuple[Operator, FakeDriver]) -> None:
    _, fake = token_operator
    obj = capp("tok")
    obj["metadata"]["namespace"] = TOKEN_NS
    apply(cluster, obj)
    tokens = decoded(wait_for("token Secret", lambda: cluster.get(
        "secret", "tok-ingest-token", TOKEN_NS)))
    # The driver has not taken the tokens yet: refused, and the status names the Secret.
    wait_for("a 401 in the status", lambda: "HTTP 401" in str(
        driver_seen(cluster, "tok").get("message")))
    assert "tok-ingest-token" in driver_seen(cluster, "tok")["message"]
    fake.read_token = tokens["read"]
    wait_for("driver reachable with the read token",
             lambda: driver_seen(cluster, "tok").get("reachable") is True)
    assert tokens["read"] in fake.seen
    assert tokens["ingest"] not in fake.seen  # the operator only ever holds the read token

    # Rotation: the Secret's values are replaced, then the driver re-reads its files.
    rotate(cluster, TOKEN_NS, "tok-ingest-token", {"read": "rotated-read-token"})
    fake.read_token = "rotated-read-token"
    wait_for("driver reachable with the rotated token",
             lambda: "rotated-read-token" in fake.seen
             and driver_seen(cluster, "tok").get("reachable") is True)
    # One 401 with the old token, then the Secret is read again: no lasting loss of status.
    first_new = fake.seen.index("rotated-read-token")
    assert fake.seen[first_new - 1] == tokens["read"]
    time.sleep(3)
    assert fake.seen[-1] == "rotated-read-token"
    assert driver_seen(cluster, "tok").get("reachable") is True
