"""The chart's RBAC on a real API server (RBAC authorizer): the operator, running with only
the chart's ServiceAccount token, reconciles an app; and it may not delete or escalate."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.controlplane import ControlPlane

from .op_helpers import BASE
from .op_operator import Operator, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.chart]
ROOT = Path(__file__).resolve().parents[2]
RELEASE_NS = "neptune-system"
APP_NS = "rbac-tests"
SA = "t-neptune-operator"


def helm() -> str:
    for d in os.environ.get("NEPTUNE_K8S_BIN", "").split(os.pathsep):
        if (Path(d) / "helm").is_file():
            return str(Path(d) / "helm")
    pytest.fail("helm not found in NEPTUNE_K8S_BIN: run make k8s-build / see e2e/README.md",
                pytrace=False)


@pytest.fixture(scope="module")
def rbac_operator(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[tuple[ControlPlane, Operator]]:
    cp = controlplane
    cp.kubectl("apply", "--server-side", "-f", str(ROOT / "crds" / "continuousapplication.yaml"))
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s",
               "crd/continuousapplications.neptune.dev")
    for ns in (RELEASE_NS, APP_NS):
        cp.kubectl("create", "namespace", ns, check=False)
    rendered = subprocess.run(
        [helm(), "template", "t", str(ROOT / "helm" / "neptune"), "-n", RELEASE_NS,
         "--kube-version", "1.34.0", "--set", f"operator.watchNamespaces={{{APP_NS}}}"],
        capture_output=True, text=True, check=True).stdout
    wanted = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
              "PriorityClass"}
    docs = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] in wanted]
    cp.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    token = cp.kubectl("create", "token", SA, "-n", RELEASE_NS, "--duration", "2h").stdout
    tmp = tmp_path_factory.mktemp("rbac")
    kubeconfig = tmp / "sa.kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "it", "cluster": {"server": cp.server,
                                                "insecure-skip-tls-verify": True}}],
        "users": [{"name": "sa", "user": {"token": token.strip()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "it", "user": "sa"}}],
    }))
    op = Operator(cp, tmp / "operator.log", APP_NS, kubeconfig=kubeconfig)
    op.start()
    try:
        yield cp, op
    finally:
        op.stop()
        print(op.log.read_text(errors="replace")[-3000:])


def can_i(cp: ControlPlane, verb: str, resource: str, *args: str) -> bool:
    """kubectl auth can-i as the operator; RESOURCE/SUB asks for that subresource (kubectl
    would read the part after the slash as an object's name)."""
    kind, _, sub = resource.partition("/")
    extra = [f"--subresource={sub}"] if sub else []
    proc = cp.kubectl("auth", "can-i", verb, kind, *extra, *args,
                      f"--as=system:serviceaccount:{RELEASE_NS}:{SA}", check=False)
    return proc.stdout.strip() == "yes"


def test_operator_works_with_chart_rbac(rbac_operator: tuple[ControlPlane, Operator]) -> None:
    cp, op = rbac_operator
    obj: dict[str, Any] = copy.deepcopy(BASE)
    obj["metadata"] = {"name": "rbac", "namespace": APP_NS}
    obj["spec"]["driver"]["storage"] = {"size": "64Mi"}
    cp.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj))

    def status() -> dict[str, Any] | None:
        got = cp.get("capp", "rbac", APP_NS) or {}
        st: dict[str, Any] = got.get("status") or {}
        return st if st.get("observedGeneration") else None

    st = wait_for("status written under the chart's RBAC", status, timeout=45)
    assert st["executors"]["desired"] == 3
    # The read token came through the chart's RBAC (a 403 would be named in the message);
    # nothing listens at the driver's address here, so the connection itself fails.
    message = st["driver"]["message"]
    assert "cannot read Secret" not in message and "ClientConnectorError" in message, message
    for kind, name in (("deploy", "rbac-driver"), ("sts", "rbac-executor"),
                       ("secret", "rbac-secret"), ("secret", "rbac-ingest-token"),
                       ("cm", "rbac-config"),
                       ("networkpolicy", "rbac"), ("pvc", "rbac-driver-state")):
        assert cp.get(kind, name, APP_NS) is not None, kind
    events = cp.kubectl("get", "events", "-n", APP_NS, "-o", "json").stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert "Created" in reasons
    assert "Forbidden" not in op.log.read_text(errors="replace")


@pytest.mark.parametrize(("verb", "resource", "ns", "allowed"), [
    ("patch", "statefulsets", APP_NS, True),
    ("create", "secrets", APP_NS, True),
    ("get", "secrets", APP_NS, True),  # the read token, for the driver's /status
    ("patch", "secrets", APP_NS, False),  # tokens are never rewritten by the operator
    ("update", "secrets", APP_NS, False),
    ("create", "persistentvolumeclaims", APP_NS, True),
    ("patch", "persistentvolumeclaims", APP_NS, True),
    ("delete", "persistentvolumeclaims", APP_NS, False),  # the garbage collector does that
    ("create", "persistentvolumes", "", False),
    ("patch", "continuousapplications.neptune.dev/status", APP_NS, True),
    ("delete", "statefulsets", APP_NS, False),
    ("delete", "secrets", APP_NS, False),
    ("list", "secrets", APP_NS, False),
    ("patch", "statefulsets", "default", False),  # outside the watched namespaces
    ("create", "pods", APP_NS, False),
    ("list", "pods", APP_NS, True),  # why an app's pods stay Pending (status.unschedulable)
    ("delete", "pods", APP_NS, False),
    ("patch", "pods/resize", APP_NS, True),  # CPU weight by priority level (cpushare.py)
    ("patch", "pods", APP_NS, False),
    ("create", "clusterroles", "", False),
    ("escalate", "roles", APP_NS, False),
])
def test_least_privilege(rbac_operator: tuple[ControlPlane, Operator], verb: str,
                         resource: str, ns: str, allowed: bool) -> None:
    cp, _ = rbac_operator
    assert can_i(cp, verb, resource, *(["-n", ns] if ns else [])) is allowed
