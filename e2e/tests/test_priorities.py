"""Two applications on one node, in separate namespaces: the operator's priority levels decide
the CPU between them. The app below the top gets its executors' CPU requests lowered in place
(the pods' resize subresource), so that the kubelet gives its cgroup a quarter of the weight;
raising it above the other swaps the two, with no pod restarted (operator/.../cpushare.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
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
    uninstall_release,
    wait_until,
)

EXAMPLE_APP = REPO_DIR / "examples" / "online_learning.py"
STATUS_INTERVAL = 3  # the operator's status round, seconds: resizes follow within one
REQUEST = "400m"  # each app's executor CPU request in its spec
LOWERED = "100m"  # a quarter: one priority level below the top


@pytest.fixture(scope="module")
def release(kubectl: Kubectl, helm: str) -> Iterator[str]:
    install_release(RELEASE, OPERATOR_NS, "--set", f"operator.statusInterval={STATUS_INTERVAL}")
    yield RELEASE
    uninstall_release(RELEASE, OPERATOR_NS)


def manifest(name: str, namespace: str, priority: int) -> dict[str, Any]:
    small = {"requests": {"cpu": "100m", "memory": "128Mi"},
             "limits": {"cpu": "1", "memory": "512Mi"}}
    return {"apiVersion": API_VERSION, "kind": "ContinuousApplication",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "image": IMAGE, "imagePullPolicy": "IfNotPresent", "priority": priority,
                "app": {"configMap": {"name": "app-source", "key": "app.py"}},
                "driver": {"resources": small},
                "executors": {"replicas": 1, "slotsPerPod": 1, "resources": {
                    "requests": {"cpu": REQUEST, "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"}}},
                "jobs": [{"name": "train", "kind": "batch", "partitions": 4},
                         {"name": "score", "kind": "stream", "slo": "50ms",
                          "trigger": "event"}],
                "policy": "neptune"}}


@pytest.fixture(scope="module")
def apps(kubectl: Kubectl, release: str) -> Iterator[dict[str, str]]:
    """Two apps, `high` (priority 500) and `low` (priority 0), each in its own namespace:
    name -> namespace."""
    run = uuid.uuid4().hex[:6]
    made = {"high": f"e2e-high-{run}", "low": f"e2e-low-{run}"}
    for name, ns in made.items():
        kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        wait_until("default ServiceAccount", lambda ns=ns: kubectl.run(  # type: ignore[misc]
            "-n", ns, "get", "sa", "default", check=False).returncode == 0)
        kubectl.run("-n", ns, "create", "configmap", "app-source",
                    f"--from-file=app.py={EXAMPLE_APP}")
        kubectl.apply(manifest(name, ns, 500 if name == "high" else 0))
    for name, ns in made.items():
        wait_until(f"{name}'s executor Running", lambda n=name, s=ns: all(  # type: ignore[misc]
            p["status"].get("phase") == "Running" for p in executors(kubectl, s, n))
            and len(executors(kubectl, s, n)) == 1, timeout=240)
    yield made
    # the apps first, while the operator runs: it removes their finalizers (kopf's), without
    # which the namespaces would stay Terminating after the release is gone
    for ns in made.values():
        kubectl.run("-n", ns, "delete", "capp", "--all", "--wait=true", "--timeout=120s",
                    check=False, timeout=150)
        kubectl.run("delete", "namespace", ns, "--wait=false", check=False)


def executors(kubectl: Kubectl, ns: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl.json(
        "-n", ns, "get", "pods", "-l", f"{LABEL_APP}={app},{LABEL_ROLE}=executor")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def cpu_of(pod: dict[str, Any]) -> tuple[str | None, str | None]:
    """The executor container's CPU request: asked (spec) and applied (the kubelet's report)."""
    spec = next(c for c in pod["spec"]["containers"] if c["name"] == "executor")
    status: dict[str, Any] = next((c for c in pod["status"].get("containerStatuses") or []
                   if c["name"] == "executor"), {})
    return (spec.get("resources", {}).get("requests", {}).get("cpu"),
            (status.get("resources") or {}).get("requests", {}).get("cpu"))


def applied(kubectl: Kubectl, ns: str, app: str, cpu: str) -> list[dict[str, Any]] | None:
    pods = executors(kubectl, ns, app)
    return pods if pods and all(cpu_of(p) == (cpu, cpu) for p in pods) else None


def events(kubectl: Kubectl, ns: str, reason: str) -> list[str]:
    out = kubectl.json("-n", ns, "get", "events", "--field-selector", f"reason={reason}")
    return [str(e.get("message")) for e in out["items"]]


def assigned_cpu(kubectl: Kubectl, ns: str, app: str) -> str | None:
    obj = kubectl.json("-n", ns, "get", "capp", app)
    value = (obj.get("status", {}).get("assignedPriority") or {}).get("executorCpuRequest")
    return None if value is None else str(value)


def test_the_app_below_the_top_gets_a_quarter_of_the_cpu_weight_in_place(
        kubectl: Kubectl, apps: dict[str, str]) -> None:
    low, high = apps["low"], apps["high"]
    pods = wait_until(f"low's executor resized to {LOWERED}",
                      lambda: applied(kubectl, low, "low", LOWERED), timeout=120, interval=2)
    assert all(c.get("restartCount", 0) == 0
               for p in pods for c in p["status"]["containerStatuses"]), "resized, not restarted"
    assert applied(kubectl, high, "high", REQUEST), [cpu_of(p) for p in
                                                    executors(kubectl, high, "high")]
    assert assigned_cpu(kubectl, low, "low") == LOWERED
    assert assigned_cpu(kubectl, high, "high") == REQUEST
    changed = events(kubectl, low, "CPUShareChanged")
    assert any("1 priority level below the top" in m and "1/4 under contention" in m
               for m in changed), changed
    assert not events(kubectl, high, "CPUShareChanged")


def test_raising_the_low_app_above_the_other_swaps_their_weights(
        kubectl: Kubectl, apps: dict[str, str]) -> None:
    low, high = apps["low"], apps["high"]
    before = {p["metadata"]["uid"] for ns, app in ((low, "low"), (high, "high"))
              for p in executors(kubectl, ns, app)}
    kubectl.run("-n", low, "patch", "capp", "low", "--type=merge",
                "-p", '{"spec": {"priority": 900}}')
    wait_until(f"low's executor back to {REQUEST}",
               lambda: applied(kubectl, low, "low", REQUEST), timeout=120, interval=2)
    wait_until(f"high's executor resized to {LOWERED}",
               lambda: applied(kubectl, high, "high", LOWERED), timeout=120, interval=2)
    after = {p["metadata"]["uid"] for ns, app in ((low, "low"), (high, "high"))
             for p in executors(kubectl, ns, app)}
    assert after == before, "the executors were resized in place, not replaced"
    assert any("1 priority level below the top" in m
               for m in events(kubectl, high, "CPUShareChanged"))
