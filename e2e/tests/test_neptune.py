"""Neptune on a real cluster, as a user would run it: helm install the chart, kubectl apply a
ContinuousApplication into a namespace under the restricted Pod Security Standard, watch it
become Ready, scrape it with Prometheus, scale it, suspend and resume it, delete it, and
helm uninstall. The tests run in file order and share one release and one application."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from e2e.tests.kube import (
    API_VERSION,
    IMAGE,
    LABEL_APP,
    LABEL_ROLE,
    OPERATOR_NS,
    RELEASE,
    REPO_DIR,
    Kubectl,
    install_release,
    prom_query,
    require_prometheus,
    run_ok,
    uninstall_release,
    wait_until,
)

# Another name of the same image (e2e/image.sh tags it): changing spec.image to it rolls pods.
IMAGE_ALT = os.environ.get("NEPTUNE_IMAGE_ALT", IMAGE.rpartition(":")[0] + ":dev-alt")
DASHBOARD = REPO_DIR / "helm" / "neptune" / "files" / "dashboard.json"

EXAMPLE_APP = REPO_DIR / "examples" / "online_learning.py"
APP = "online-learning"


@pytest.fixture(scope="module")
def release(kubectl: Kubectl, helm: str) -> Iterator[str]:
    install_release(RELEASE, OPERATOR_NS)
    yield RELEASE
    # helm uninstall (the last test checks what it leaves) is idempotent here.
    uninstall_release(RELEASE, OPERATOR_NS)


@pytest.fixture(scope="module")
def app_ns(kubectl: Kubectl, release: str) -> Iterator[str]:
    name = f"e2e-app-{uuid.uuid4().hex[:6]}"
    kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest"}}})
    wait_until("default ServiceAccount", lambda: kubectl.run(
        "-n", name, "get", "sa", "default", check=False).returncode == 0)
    kubectl.run("-n", name, "create", "configmap", "app-source",
                f"--from-file=app.py={EXAMPLE_APP}")
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def capp(replicas: int = 2, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "app": {"configMap": {"name": "app-source", "key": "app.py"}},
        # The state claim rides along through roll, suspend/resume and delete.
        "driver": {"resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                 "limits": {"cpu": "1", "memory": "512Mi"}},
                   "storage": {"size": "64Mi"}},
        "executors": {"replicas": replicas, "slotsPerPod": 1,
                      "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                    "limits": {"cpu": "1", "memory": "512Mi"}}},
        "jobs": [{"name": "train", "kind": "batch", "partitions": 8},
                 {"name": "score", "kind": "stream", "slo": "20ms", "trigger": "event"}],
        "policy": "neptune",
    }
    body.update(spec)
    return {"apiVersion": API_VERSION, "kind": "ContinuousApplication",
            "metadata": {"name": APP}, "spec": body}


def pods(kubectl: Kubectl, ns: str, role: str, app: str = APP) -> list[dict[str, Any]]:
    sel = f"{LABEL_APP}={app},{LABEL_ROLE}={role}"
    items: list[dict[str, Any]] = kubectl.json("-n", ns, "get", "pods", "-l", sel)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def running(kubectl: Kubectl, ns: str, role: str, n: int,
            app: str = APP) -> list[dict[str, Any]] | None:
    ps = pods(kubectl, ns, role, app)
    ok = len(ps) == n and all(p["status"].get("phase") == "Running" for p in ps)
    return ps if ok else None


def condition(kubectl: Kubectl, ns: str, ctype: str) -> str:
    obj = kubectl.json("-n", ns, "get", "capp", APP)
    for c in obj.get("status", {}).get("conditions", []):
        if c.get("type") == ctype:
            return str(c.get("status"))
    return ""


def test_operator_ready(kubectl: Kubectl, release: str) -> None:
    dep = kubectl.json("-n", OPERATOR_NS, "get", "deployments", "-l",
                       f"app.kubernetes.io/instance={release}")["items"]
    assert dep, "the chart created no Deployment"
    for d in dep:
        assert d["status"].get("readyReplicas", 0) >= 1, d["metadata"]["name"]


@pytest.mark.parametrize(("patch", "message"), [
    ({"jobs": [{"name": "score", "kind": "stream"}]}, "a stream job needs an slo"),
    ({"executors": {"replicas": 0}}, "spec.executors.replicas"),
    ({"app": {}}, "set exactly one of app.module and app.configMap"),
])
def test_invalid_resources_rejected(kubectl: Kubectl, app_ns: str, patch: dict[str, Any],
                                    message: str) -> None:
    bad = capp(**patch)
    bad["metadata"] = {"name": "bad", "namespace": app_ns}
    proc = kubectl.apply(bad, check=False)
    assert proc.returncode != 0, "an invalid ContinuousApplication was accepted"
    assert message in proc.stderr, proc.stderr


def test_app_becomes_ready(kubectl: Kubectl, app_ns: str) -> None:
    obj = capp(replicas=2)
    obj["metadata"]["namespace"] = app_ns
    kubectl.apply(obj)
    wait_until("driver pod Running", lambda: running(kubectl, app_ns, "driver", 1), timeout=180)
    wait_until("2 executor pods Running", lambda: running(kubectl, app_ns, "executor", 2),
               timeout=180)
    wait_until("condition Ready=True", lambda: condition(kubectl, app_ns, "Ready") == "True",
               timeout=180)
    status = kubectl.json("-n", app_ns, "get", "capp", APP)["status"]
    assert status.get("jobs"), f"no per-job figures in status: {status}"
    # The driver's state claim, provisioned by the cluster's default StorageClass.
    assert status["driver"]["storage"]["phase"] == "Bound", status["driver"]


def test_printer_columns(kubectl: Kubectl, app_ns: str) -> None:
    out = kubectl.run("-n", app_ns, "get", "capp").stdout
    header = out.splitlines()[0].split()
    assert header[0] == "NAME" and len(header) > 2, out
    assert APP in out


def test_prometheus_scrapes_every_executor(kubectl: Kubectl, app_ns: str) -> None:
    require_prometheus()
    executors = {p["metadata"]["name"] for p in pods(kubectl, app_ns, "executor")}
    expr = f'neptune_task_suspension_latency_seconds_count{{namespace="{app_ns}"}}'

    def scraped() -> set[str]:
        got = {r["metric"].get("pod", "") for r in prom_query(expr)}
        return got if executors <= got else set()

    wait_until(f"{expr} from every executor {sorted(executors)}", scraped, timeout=120)


def _dashboard_queries() -> list[tuple[str, str]]:
    if not DASHBOARD.is_file():
        return []
    doc = json.loads(DASHBOARD.read_text())
    out: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append((str(panel.get("title", "?")), str(target["expr"])))

    walk(doc.get("panels", []))
    return out


def test_dashboard_queries_return_data(kubectl: Kubectl, app_ns: str) -> None:
    queries = _dashboard_queries()
    assert queries, f"no queries in {DASHBOARD}"
    require_prometheus()

    def empty() -> list[str]:
        missing = []
        for title, expr in queries:
            q = (expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
                 .replace("$namespace", app_ns))
            if not prom_query(q):
                missing.append(f"{title}: {q}")
        return missing

    # Rates need two scrapes of each target: give Prometheus a minute to get there.
    deadline = time.monotonic() + 90
    missing = empty()
    while missing and time.monotonic() < deadline:
        time.sleep(5)
        missing = empty()
    assert not missing, "dashboard queries with no data:\n" + "\n".join(missing)


def test_scale_keeps_driver(kubectl: Kubectl, app_ns: str) -> None:
    driver_uid = pods(kubectl, app_ns, "driver")[0]["metadata"]["uid"]
    kubectl.run("-n", app_ns, "scale", f"capp/{APP}", "--replicas=3")
    wait_until("3 executor pods", lambda: running(kubectl, app_ns, "executor", 3), timeout=180)
    assert pods(kubectl, app_ns, "driver")[0]["metadata"]["uid"] == driver_uid
    kubectl.run("-n", app_ns, "scale", f"capp/{APP}", "--replicas=2")
    wait_until("2 executor pods", lambda: running(kubectl, app_ns, "executor", 2), timeout=180)
    assert pods(kubectl, app_ns, "driver")[0]["metadata"]["uid"] == driver_uid


def _uids(kubectl: Kubectl, ns: str, role: str) -> set[str]:
    return {p["metadata"]["uid"] for p in pods(kubectl, ns, role)}


def _ready_again(kubectl: Kubectl, ns: str, executors: int = 2) -> None:
    wait_until("driver Running", lambda: running(kubectl, ns, "driver", 1), timeout=180)
    wait_until(f"{executors} executors Running",
               lambda: running(kubectl, ns, "executor", executors), timeout=180)
    wait_until("condition Ready=True", lambda: condition(kubectl, ns, "Ready") == "True",
               timeout=180)


def test_image_change_rolls_pods(kubectl: Kubectl, app_ns: str) -> None:
    before = _uids(kubectl, app_ns, "driver") | _uids(kubectl, app_ns, "executor")
    patch = json.dumps({"spec": {"image": IMAGE_ALT}})
    kubectl.run("-n", app_ns, "patch", "capp", APP, "--type=merge", "-p", patch)

    def rolled() -> bool:
        ps = pods(kubectl, app_ns, "driver") + pods(kubectl, app_ns, "executor")
        return (len(ps) == 3 and not ({p["metadata"]["uid"] for p in ps} & before)
                and all(p["spec"]["containers"][0]["image"] == IMAGE_ALT for p in ps)
                and all(p["status"].get("phase") == "Running" for p in ps))

    wait_until(f"every pod replaced with {IMAGE_ALT}", rolled, timeout=300)
    _ready_again(kubectl, app_ns)


def _children(kubectl: Kubectl, ns: str) -> list[str]:
    out = kubectl.run("-n", ns, "get", "deploy,sts,svc,secret,cm,pvc", "-l", f"{LABEL_APP}={APP}",
                      "-o", "name").stdout
    return sorted(out.split())


def test_executor_pod_deleted_is_replaced(kubectl: Kubectl, app_ns: str) -> None:
    victim = sorted(p["metadata"]["name"] for p in pods(kubectl, app_ns, "executor"))[0]
    old = {p["metadata"]["uid"] for p in pods(kubectl, app_ns, "executor")}
    kubectl.run("-n", app_ns, "delete", "pod", victim, "--wait=false")
    wait_until(f"{victim} replaced",
               lambda: (ps := running(kubectl, app_ns, "executor", 2))
               and {p["metadata"]["uid"] for p in ps} != old, timeout=180)
    _ready_again(kubectl, app_ns)


def test_operator_pod_deleted_converges(kubectl: Kubectl, app_ns: str, release: str) -> None:
    children = _children(kubectl, app_ns)
    sel = f"app.kubernetes.io/instance={release}"
    old = {p["metadata"]["uid"] for p in kubectl.json("-n", OPERATOR_NS, "get", "pods", "-l",
                                                      sel)["items"]}
    kubectl.run("-n", OPERATOR_NS, "delete", "pods", "-l", sel, "--wait=false")
    # While the operator is away, a spec change is made; the new operator must apply it.
    kubectl.run("-n", app_ns, "scale", f"capp/{APP}", "--replicas=3")

    def operator_back() -> bool:
        ps = kubectl.json("-n", OPERATOR_NS, "get", "pods", "-l", sel)["items"]
        return any(p["metadata"]["uid"] not in old and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions", [])) for p in ps)

    wait_until("a new operator pod Ready", operator_back, timeout=180)
    wait_until("3 executors after the operator came back",
               lambda: running(kubectl, app_ns, "executor", 3), timeout=180)
    assert _children(kubectl, app_ns) == children, "children duplicated or lost"
    kubectl.run("-n", app_ns, "scale", f"capp/{APP}", "--replicas=2")
    _ready_again(kubectl, app_ns)


INGEST_APP = """
from neptune_runtime import App, sources

app = App("ingest-check")


def echo(ctx, events):
    return [event for event in events]


app.stream_job("echo", source=sources.HttpIngest(), task=echo, slo="500ms")
"""


@dataclass(frozen=True)
class IngestApp:
    """An app whose stream job `echo` takes events POSTed to the driver's /ingest/echo, through
    the API server's service proxy (so this works on any cluster, no port-forward). Requests
    carry the tokens of the app's Secret NAME-ingest-token as X-Neptune-Token (the service
    proxy strips Authorization), over `kubectl proxy` (Kubectl.http)."""

    kubectl: Kubectl
    ns: str
    name: str
    executors: int
    _tokens: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def create(cls, kubectl: Kubectl, ns: str, name: str, executors: int = 2,
               storage: dict[str, Any] | None = None) -> IngestApp:
        """storage: spec.driver.storage; None: the driver's state on an emptyDir."""
        kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "ingest-source", "namespace": ns},
                       "data": {"app.py": INGEST_APP}})
        obj = capp(replicas=executors,
                   app={"configMap": {"name": "ingest-source", "key": "app.py"}},
                   jobs=[{"name": "echo", "kind": "stream", "slo": "500ms", "trigger": "event",
                          "source": {"http": {}}}])
        obj["spec"]["driver"].pop("storage", None)
        if storage is not None:
            obj["spec"]["driver"]["storage"] = storage
        obj["metadata"] = {"name": name, "namespace": ns}
        kubectl.apply(obj)
        app = cls(kubectl, ns, name, executors)
        app.wait_running()
        # Running is not Ready: until the driver's endpoint is, the API server answers 503.
        wait_until(f"{name}: the driver's /healthz through the service proxy",
                   lambda: app.request("GET", "/healthz")[0] == 200, timeout=120)
        return app

    @property
    def proxy(self) -> str:
        return f"/api/v1/namespaces/{self.ns}/services/{self.name}-driver:http/proxy"

    def pods(self, role: str) -> list[dict[str, Any]]:
        return pods(self.kubectl, self.ns, role, self.name)

    def wait_running(self) -> None:
        wait_until(f"{self.name}: driver and {self.executors} executors Running",
                   lambda: running(self.kubectl, self.ns, "driver", 1, self.name)
                   and running(self.kubectl, self.ns, "executor", self.executors, self.name),
                   timeout=180)

    def tokens(self, fresh: bool = False) -> dict[str, str]:
        """{"ingest": ..., "read": ...} from the Secret the operator made."""
        if fresh or not self._tokens:
            secret = self.kubectl.json("-n", self.ns, "get", "secret", f"{self.name}-ingest-token")
            self._tokens.clear()
            self._tokens.update({k: base64.b64decode(v).decode().strip()
                                 for k, v in secret["data"].items()})
        return dict(self._tokens)

    def request(self, method: str, path: str, token: str | None = None,
                body: Any = None) -> tuple[int, Any]:
        """(status, JSON body or text) of a request to the driver's HTTP port."""
        headers = {} if token is None else {"X-Neptune-Token": token}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, raw = self.kubectl.http(method, f"{self.proxy}{path}", data, headers)
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def post(self, events: list[int]) -> bool:
        status, _ = self.request("POST", "/ingest/echo", self.tokens()["ingest"],
                                 [{"n": i} for i in events])
        return 200 <= status < 300

    def figures(self) -> dict[str, Any]:
        """The echo job's figures from the driver's /status (AssertionError while the driver
        is away: wait_until retries those)."""
        status, doc = self.request("GET", "/status", self.tokens()["read"])
        assert status == 200, f"GET /status: {status} {doc}"
        return dict(doc["jobs"]["echo"])

    def send(self, batches: int, size: int = 20,
             after: Callable[[int], None] = lambda _: None) -> int:
        """POST `batches` batches of events; a POST that fails (no driver, driver starting) is
        retried until accepted. `after(batch_no)` runs after each batch. Returns events sent."""
        sent = 0
        for batch_no in range(batches):
            batch = list(range(sent, sent + size))
            wait_until(f"driver accepts batch {batch_no}", lambda b=batch: self.post(b),  # type: ignore[misc]
                       timeout=180)
            sent += size
            after(batch_no)
            time.sleep(0.5)
        return sent

    def delete(self) -> None:
        self.kubectl.run("-n", self.ns, "delete", "capp", self.name, "--wait=true", timeout=180)


NO_OFFSETS = ("the driver's /status has no jobs.echo.offsets: the image's runtime does not keep "
              "committed offsets in NEPTUNE_STATE_DIR yet (rebuild the image with `make image` "
              "once it does)")


def _restarts(ps: list[dict[str, Any]]) -> dict[str, int]:
    """Pod uid -> container restarts."""
    return {p["metadata"]["uid"]: sum(c.get("restartCount", 0) for c in
                                      p["status"].get("containerStatuses", [])) for p in ps}


def test_driver_pod_deleted_resumes_from_committed_offsets(kubectl: Kubectl,
                                                           app_ns: str) -> None:
    """The driver keeps committed offsets and the log of ingested events on its
    PersistentVolumeClaim (spec.driver.storage): events are POSTed while the driver pod is
    deleted, and the new driver resumes from the committed offsets and processes them all."""
    app = IngestApp.create(kubectl, app_ns, "ingest-durable", executors=1,
                           storage={"size": "64Mi"})
    claim = f"{app.name}-driver-state"
    pvc = kubectl.json("-n", app_ns, "get", "pvc", claim)
    assert pvc["status"].get("phase") == "Bound", pvc["status"]
    assert pvc["metadata"]["ownerReferences"][0]["name"] == app.name
    volume = pvc["spec"]["volumeName"]
    assert "offsets" in wait_until("the driver's /status", app.figures), NO_OFFSETS
    old = {p["metadata"]["uid"] for p in app.pods("driver")}
    executors_before = _restarts(app.pods("executor"))

    def delete_driver(batch_no: int) -> None:
        if batch_no != 4:
            return
        # Something committed first, so that there is an offset to resume from.
        wait_until("a committed offset", lambda: app.figures()["offsets"].get("committed"))
        kubectl.run("-n", app_ns, "delete", "pods", "-l",
                    f"{LABEL_APP}={app.name},{LABEL_ROLE}=driver", "--wait=false")

    sent = app.send(batches=10, after=delete_driver)
    assert not {p["metadata"]["uid"] for p in app.pods("driver")} & old, "driver not replaced"

    def all_committed() -> dict[str, Any] | None:
        fig = app.figures()
        off = fig.get("offsets") or {}
        done = (off.get("committed") is not None and fig.get("uncommitted") == 0
                and off["committed"] >= max(sent, off.get("accepted", 0)))
        return fig if done else None

    fig = wait_until(f"every one of the {sent} events committed by the new driver",
                     all_committed, timeout=240)
    assert fig["offsets"]["accepted"] >= sent, fig
    assert fig["offsets"].get("resumed_from") is not None, (
        f"the new driver started fresh instead of resuming from committed offsets: {fig}")
    st = kubectl.json("-n", app_ns, "get", "capp", app.name)["status"]
    assert st["driver"]["storage"]["claimName"] == claim, st["driver"]
    # The executors reconnected to the new driver: same pods, no container restarted.
    assert _restarts(app.pods("executor")) == executors_before, "executors restarted"

    app.delete()

    def gone(kind: str, name: str, *ns: str) -> bool:
        out = kubectl.run(*ns, "get", kind, name, "--ignore-not-found", "-o", "name").stdout
        return not out.strip()

    wait_until(f"claim {claim} deleted with the app", lambda: gone("pvc", claim, "-n", app_ns),
               timeout=180)
    wait_until(f"its volume {volume} deleted", lambda: gone("pv", volume), timeout=180)


def test_executor_deleted_mid_run_loses_no_event(kubectl: Kubectl, app_ns: str) -> None:
    """Events POSTed to the driver while an executor pod is deleted: every event yields its
    result (at least once)."""
    app = IngestApp.create(kubectl, app_ns, "ingest-check")

    def delete_executor(batch_no: int) -> None:
        if batch_no == 4:
            kubectl.run("-n", app_ns, "delete", "pod", f"{app.name}-executor-0", "--wait=false")

    sent = app.send(batches=10, after=delete_executor)

    def all_results() -> dict[str, Any] | None:
        fig = app.figures()
        ok = fig.get("results", 0) >= sent and fig.get("uncommitted", 1) == 0
        return fig if ok else None

    fig = wait_until(f"results for all {sent} events", all_results, timeout=240)
    assert fig["events"] >= sent
    app.delete()


def test_http_needs_the_app_tokens(kubectl: Kubectl, app_ns: str) -> None:
    """The driver's HTTP port through the API server's service proxy: ingest without the ingest
    token is refused with 401 (and so is every other guarded path without its token), the
    tokens are the operator's Secret mounted read-only, and a rotation of the Secret reaches the
    driver and the operator without a restart."""
    app = IngestApp.create(kubectl, app_ns, "ingest-auth", executors=1)
    tokens = app.tokens()
    assert set(tokens) >= {"ingest", "read"} and tokens["ingest"] != tokens["read"]
    batch = [{"n": 1}]

    status, doc = app.request("POST", "/ingest/echo", None, batch)
    assert status == 401, (status, doc)
    assert isinstance(doc, dict) and "token" in doc["error"], doc
    for wrong in ("not-the-token", tokens["read"]):  # the read token cannot ingest
        assert app.request("POST", "/ingest/echo", wrong, batch)[0] == 401, wrong
    status, doc = wait_until("ingest with the ingest token", lambda: (
        r := app.request("POST", "/ingest/echo", tokens["ingest"], batch))[0] == 202 and r,
        timeout=60)
    assert doc == {"accepted": 1}, doc
    assert app.request("POST", "/admin/reset-stats", None)[0] == 401
    assert app.request("POST", "/admin/reset-stats", tokens["read"])[0] == 401

    assert app.request("GET", "/status", None)[0] == 401
    assert app.request("GET", "/status", "not-the-token")[0] == 401
    assert app.request("GET", "/status", tokens["read"])[0] == 200
    assert app.request("GET", "/status", tokens["ingest"])[0] == 200
    assert app.request("GET", "/state/model", None)[0] == 401
    assert app.request("GET", "/healthz", None)[0] == 200
    status, text = app.request("GET", "/metrics", None)
    assert status == 200 and "neptune_" in str(text)

    # The files in the driver, as its user (UID 10001) sees them.
    (driver,) = app.pods("driver")
    script = ("import os, json; d = '/var/run/neptune/tokens'; print(json.dumps({"
              "k: [open(os.path.join(d, k)).read().strip(), oct(os.stat(os.path.join(d, k))"
              ".st_mode & 0o777), os.stat(os.path.join(d, k)).st_gid] for k in ('ingest', "
              "'read')}))")
    out = kubectl.run("-n", app_ns, "exec", driver["metadata"]["name"], "-c", "driver", "--",
                      "python", "-c", script).stdout
    files = json.loads(out)
    for key in ("ingest", "read"):
        value, mode, gid = files[key]
        assert value == tokens[key]
        assert mode == "0o440" and gid == 10001, files  # fsGroup; nothing for others

    # Rotation: replace the read token; the kubelet refreshes the files within about a minute.
    kubectl.run("-n", app_ns, "patch", "secret", f"{app.name}-ingest-token", "--type", "merge",
                "-p", json.dumps({"stringData": {"read": "rotated-" + tokens["read"][:20]}}))
    new = app.tokens(fresh=True)["read"]
    assert new != tokens["read"]
    wait_until("the driver takes the rotated read token",
               lambda: app.request("GET", "/status", new)[0] == 200, timeout=180, interval=5)
    assert app.request("GET", "/status", tokens["read"])[0] == 401
    assert app.request("GET", "/status", tokens["ingest"])[0] == 200  # not rotated
    # The operator follows (one 401, then it reads the Secret again).
    since = time.time()

    def operator_reads_status() -> bool:
        st = kubectl.json("-n", app_ns, "get", "capp", app.name).get("status") or {}
        ready = [c for c in st.get("conditions", []) if c.get("type") == "Ready"]
        fresh = ready and ready[0].get("status") == "True"
        return bool(fresh and (st.get("driver") or {}).get("reachable") is True
                    and time.time() - since > 20)  # past at least one status refresh

    wait_until("the operator reads /status with the rotated token", operator_reads_status,
               timeout=120, interval=5)
    app.delete()


def test_executors_that_cannot_be_placed_show_the_schedulers_reason(kubectl: Kubectl,
                                                                     app_ns: str) -> None:
    """An app that asks for more than the cluster has: its status shows the pods Pending with
    the scheduler's reason, and nothing replaces them in a loop (the scheduler retries)."""
    name = "unplaceable"
    big = capp(replicas=1)
    big["spec"]["executors"]["resources"] = {"requests": {"cpu": "64", "memory": "128Mi"},
                                             "limits": {"cpu": "64", "memory": "512Mi"}}
    kubectl.apply({**big, "metadata": {"name": name, "namespace": app_ns}})

    def shown() -> dict[str, Any] | None:
        st: dict[str, Any] = kubectl.json("-n", app_ns, "get", "capp", name).get("status", {})
        return st if st.get("unschedulable") else None

    def settled() -> dict[str, Any] | None:
        # The driver may wait a moment for its state claim to bind ("unbound immediate
        # PersistentVolumeClaims"), a reason the status rightly shows while it lasts.
        st = shown()
        if st and st["unschedulable"]["count"] != 1:
            raise AssertionError(st["unschedulable"])  # wait_until reports it on a timeout
        return st

    try:
        st = wait_until("status.unschedulable: the executor alone", settled, timeout=180,
                        interval=3)
        pending = st["unschedulable"]["pods"][0]
        assert pending["pod"] == f"{name}-executor-0"
        assert "Insufficient cpu" in pending["message"], pending
        assert st["phase"] == "Pending"
        progressing = next(c for c in st["conditions"] if c["type"] == "Progressing")
        assert progressing["reason"] == "Unschedulable", progressing
        assert "Insufficient cpu" in progressing["message"], progressing
        uids = {p["metadata"]["uid"] for p in pods(kubectl, app_ns, "executor", name)}
        time.sleep(20)  # more than a status round: the same pod still waits, not a new one
        assert {p["metadata"]["uid"] for p in pods(kubectl, app_ns, "executor", name)} == uids
        assert shown() is not None
    finally:
        kubectl.run("-n", app_ns, "delete", "capp", name, "--wait=true", timeout=180)


def test_executors_asking_a_whole_cpu_as_their_limit_get_a_cpu_of_their_own(
        kubectl: Kubectl, app_ns: str) -> None:
    """Executor resources with requests equal to limits and a whole CPU make the pod
    Guaranteed, and the node's static CPU manager gives its container a CPU that the driver's
    (and every other pod's) does not run on, as docs/operator.md says."""
    name = "own-cpu"
    obj = capp(replicas=1)
    obj["spec"]["driver"].pop("storage")
    whole = {"cpu": "1", "memory": "256Mi"}
    obj["spec"]["executors"]["resources"] = {"requests": whole, "limits": whole}
    kubectl.apply({**obj, "metadata": {"name": name, "namespace": app_ns}})
    try:
        wait_until(f"{name}: driver and executor Running",
                   lambda: running(kubectl, app_ns, "driver", 1, name)
                   and running(kubectl, app_ns, "executor", 1, name), timeout=180)
        (executor,) = pods(kubectl, app_ns, "executor", name)
        (driver,) = pods(kubectl, app_ns, "driver", name)
        assert executor["status"]["qosClass"] == "Guaranteed", executor["status"]
        own = kubectl.cpus(app_ns, executor["metadata"]["name"], "executor")
        shared = kubectl.cpus(app_ns, driver["metadata"]["name"], "driver")
        assert len(own) == 1 and not set(own) & set(shared), (
            f"executor on CPUs {own}, driver on {shared}: is the kubelet's cpuManagerPolicy "
            "static? (e2e/cluster.sh sets it; `make cluster-down cluster-up` applies it)")
    finally:
        kubectl.run("-n", app_ns, "delete", "capp", name, "--wait=true", timeout=180)


def test_suspend_and_resume(kubectl: Kubectl, app_ns: str) -> None:
    kubectl.run("-n", app_ns, "patch", "capp", APP, "--type=merge",
                "-p", '{"spec": {"suspend": true}}')
    def no_pods() -> bool:
        return not pods(kubectl, app_ns, "driver") and not pods(kubectl, app_ns, "executor")

    wait_until("no pods while suspended", no_pods, timeout=180)
    kubectl.run("-n", app_ns, "patch", "capp", APP, "--type=merge",
                "-p", '{"spec": {"suspend": false}}')
    wait_until("driver back", lambda: running(kubectl, app_ns, "driver", 1), timeout=180)
    wait_until("executors back", lambda: running(kubectl, app_ns, "executor", 2), timeout=180)


def test_delete_removes_children(kubectl: Kubectl, app_ns: str) -> None:
    kubectl.run("-n", app_ns, "delete", "capp", APP, "--wait=true", timeout=180)

    def gone() -> bool:
        out = kubectl.run("-n", app_ns, "get", "deploy,sts,svc,secret,cm,pvc,pods", "-l",
                          f"{LABEL_APP}={APP}", "-o", "name").stdout
        return not out.strip()

    wait_until("every child of the application deleted", gone, timeout=180)


def test_helm_uninstall_leaves_only_crds(kubectl: Kubectl, helm: str, release: str) -> None:
    run_ok(helm, "uninstall", release, "-n", OPERATOR_NS, "--wait")
    time.sleep(2)
    sel = f"app.kubernetes.io/instance={release}"
    left = kubectl.run("get", "deploy,svc,sa,role,rolebinding,cm", "-A", "-l", sel,
                       "-o", "name").stdout.strip()
    cluster = kubectl.run("get", "clusterrole,clusterrolebinding,priorityclass", "-l", sel,
                          "-o", "name").stdout.strip()
    assert not left and not cluster, f"left behind:\n{left}\n{cluster}"
    kubectl.run("get", "crd", "continuousapplications.neptune.dev")


def test_example_manifest_is_accepted(kubectl: Kubectl, app_ns: str) -> None:
    """examples/online-learning.yaml, as the README tells users to apply it."""
    manifest = REPO_DIR / "examples" / "online-learning.yaml"
    out = kubectl.run("-n", app_ns, "apply", "--dry-run=server", "-f", str(manifest))
    assert "continuousapplication.neptune.dev/online-learning" in out.stdout
