"""Helpers of the multi-node e2e tests (e2e/multinode.sh's cluster): nodes, pods pinned to a
node, and probes run from inside a pod (kubectl exec), so that what is measured is the pod
network and its NetworkPolicy enforcement, not the host's view of it."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

from e2e.tests.kube import E2E_DIR, Kubectl, restricted_pod, tool, wait_until
from e2e.tests.test_neptune import pods, running

NODES = ("node1", "node2", "node3")
LABEL_NODE = "neptune.dev/node"
LABEL_ZONE = "topology.kubernetes.io/zone"
# The host's address on the nodes' bridge: the API server's service proxy reaches pods from it.
CONTROL_PLANE_IP = "10.250.0.1"
MULTINODE = E2E_DIR / "multinode.sh"
UP = ("bring the multi-node cluster up with `make multinode-up` (e2e/multinode.sh up), then "
      "`eval \"$(e2e/multinode.sh env)\"`, or run `make e2e-multinode`, which does both")

# Run in a pod: `tcp HOST:PORT` (connect) or `http URL` (GET); prints OPEN, HTTP <code> or ERR.
PROBE = """
import socket, sys, urllib.error, urllib.request
kind, target = sys.argv[1], sys.argv[2]
try:
    if kind == "tcp":
        host, port = target.rsplit(":", 1)
        socket.create_connection((host, int(port)), timeout=3).close()
        print("OPEN")
    else:
        with urllib.request.urlopen(target, timeout=3) as resp:
            print("HTTP", resp.status)
except urllib.error.HTTPError as exc:
    print("HTTP", exc.code)
except Exception as exc:
    print("ERR", type(exc).__name__, exc)
"""


def namespace(kubectl: Kubectl, prefix: str, restricted: bool = True) -> str:
    """A new namespace PREFIX-<random> (under the restricted Pod Security Standard unless
    restricted=False), once its default ServiceAccount exists. The caller deletes it."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    labels = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"} if restricted else {}
    kubectl.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": name, "labels": labels}})
    wait_until(f"serviceaccount {name}/default",
               lambda: kubectl.run("-n", name, "get", "sa", "default", check=False).returncode == 0)
    return name


def nodes_ready(kubectl: Kubectl) -> set[str]:
    out = set()
    for node in kubectl.json("get", "nodes")["items"]:
        for c in node["status"].get("conditions", []):
            if c["type"] == "Ready" and c["status"] == "True":
                out.add(str(node["metadata"]["name"]))
    return out


def node_of(pod: dict[str, Any]) -> str:
    return str(pod["spec"].get("nodeName") or "")


def pinned_pod(kubectl: Kubectl, ns: str, name: str, node: str, command: list[str],
               labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A restricted pod on `node` (by its neptune.dev/node label), Running."""
    pod = restricted_pod(name, command, nodeSelector={LABEL_NODE: node},
                         metadata={"namespace": ns, "labels": labels or {}})
    kubectl.apply(pod)
    return dict(wait_until(f"pod {ns}/{name} Running on {node}", lambda: (
        p := kubectl.json("-n", ns, "get", "pod", name))["status"].get("phase") == "Running"
        and p, timeout=120))


def client_pod(kubectl: Kubectl, ns: str, node: str, name: str = "client") -> str:
    pinned_pod(kubectl, ns, name, node, ["python3", "-c", "import time; time.sleep(3600)"])
    return name


PROMETHEUS_PORT = 9099  # a test Prometheus's own port, on its pod's loopback (queried by exec)
GET = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())
"""


def prometheus_pod(kubectl: Kubectl, ns: str, node: str, name: str,
                   targets: dict[str, str]) -> None:
    """A real Prometheus in `ns` on `node`, scraping each target (scrape job -> host:port, path
    /metrics) every second: the binary e2e/build.sh built, from a hostPath, so `ns` must allow
    one (the multi-node cluster has no registry for an image of it)."""
    binary = Path(tool("prometheus")).resolve()
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
              "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}
                                 for job, target in targets.items()]}
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": name, "namespace": ns},
                   "data": {"prometheus.yml": json.dumps(config)}})  # JSON is YAML
    pod = restricted_pod(
        name, [f"/opt/prometheus/{binary.name}", "--config.file=/etc/prometheus/prometheus.yml",
               "--storage.tsdb.path=/prometheus",
               f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"],
        nodeSelector={LABEL_NODE: node}, metadata={"namespace": ns},
        volumes=[{"name": "bin", "hostPath": {"path": str(binary.parent), "type": "Directory"}},
                 {"name": "config", "configMap": {"name": name}},
                 {"name": "data", "emptyDir": {}}],
        container={"volumeMounts": [
            {"name": "bin", "mountPath": "/opt/prometheus", "readOnly": True},
            {"name": "config", "mountPath": "/etc/prometheus", "readOnly": True},
            {"name": "data", "mountPath": "/prometheus"}],
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                          "limits": {"cpu": "500m", "memory": "512Mi"}}})
    kubectl.apply(pod)
    wait_until(f"Prometheus {ns}/{name} Running on {node}", lambda: kubectl.json(
        "-n", ns, "get", "pod", name)["status"].get("phase") == "Running", timeout=120)


def prometheus_api(kubectl: Kubectl, ns: str, name: str, path: str) -> Any:
    """GET /api/v1/PATH of the Prometheus pod `name`, from inside it: its `data`."""
    proc = kubectl.run("-n", ns, "exec", name, "--", "python3", "-c", GET,
                       f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/{path}", check=False,
                       timeout=30)
    if proc.returncode != 0:  # not serving yet, or gone: wait_until tries again
        raise AssertionError(f"Prometheus {ns}/{name}: {proc.stderr.strip()[-300:]}")
    return json.loads(proc.stdout)["data"]


def scrape_health(kubectl: Kubectl, ns: str, name: str) -> dict[str, tuple[str, str]]:
    """Scrape job -> (health: up, down or unknown; its last error) of the Prometheus pod."""
    return {t["labels"]["job"]: (t["health"], t.get("lastError", ""))
            for t in prometheus_api(kubectl, ns, name, "targets")["activeTargets"]}


def probe(kubectl: Kubectl, ns: str, pod: str, kind: str, target: str) -> str:
    """OPEN / HTTP <code> / ERR ...: what the pod gets connecting to `target`."""
    try:
        proc = kubectl.run("-n", ns, "exec", pod, "--", "python3", "-c", PROBE, kind, target,
                           check=False, timeout=30)
    except subprocess.TimeoutExpired:
        return "ERR kubectl exec timed out"
    if proc.returncode != 0:
        raise AssertionError(f"kubectl exec {ns}/{pod} failed: {proc.stderr}")
    return proc.stdout.strip()


def admit_control_plane(kubectl: Kubectl, ns: str, port: int) -> None:
    """A NetworkPolicy that admits the host (the API server's service proxy, the path the tests
    ingest through and read /status by) to `port` of every pod in `ns`. Policies add up: the
    app's own policy is unchanged, and no pod address is admitted by this one."""
    kubectl.apply({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "e2e-control-plane", "namespace": ns},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{
            "from": [{"ipBlock": {"cidr": f"{CONTROL_PLANE_IP}/32"}}],
            "ports": [{"protocol": "TCP", "port": port}]}]},
    })


def multinode(*args: str, timeout: float = 180) -> str:
    """e2e/multinode.sh ARGS (stop-node N, start-node N): its output, or a failure with it."""
    proc = subprocess.run([str(MULTINODE), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, f"e2e/multinode.sh {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _remade(kubectl: Kubectl, ns: str, app: str, executors: int, name: str, uid: str) -> bool:
    ps = running(kubectl, ns, "executor", executors, app) or []
    return any(p["metadata"]["name"] == name and p["metadata"]["uid"] != uid for p in ps)


def place_apart(kubectl: Kubectl, ns: str, app: str, executors: int) -> dict[str, str]:
    """Driver and executors of `app` each on a node of its own, as an admin would get them
    there when the scheduler did not: the nodes of the others cordoned, the clashing executor
    pod deleted (its StatefulSet makes it again elsewhere), the nodes uncordoned. Returns pod
    name -> node."""
    for _ in range(executors + 1):
        placed = {p["metadata"]["name"]: node_of(p) for p in
                  pods(kubectl, ns, "driver", app) + sorted(
                      pods(kubectl, ns, "executor", app), key=lambda p: p["metadata"]["name"])}
        taken: set[str] = set()
        clash = ""
        for name, node in placed.items():
            if node in taken:
                clash = name
                break
            taken.add(node)
        if not clash:
            return placed
        busy = {node for name, node in placed.items() if name != clash}
        for node in busy:
            kubectl.run("cordon", node)
        try:
            old = kubectl.json("-n", ns, "get", "pod", clash)["metadata"]["uid"]
            kubectl.run("-n", ns, "delete", "pod", clash, "--wait=false")
            wait_until(f"{clash} made again off {sorted(busy)}",
                       lambda c=clash, u=old: _remade(kubectl, ns, app, executors, c, u),  # type: ignore[misc]
                       timeout=180)
        finally:
            for node in busy:
                kubectl.run("uncordon", node, check=False)
    raise AssertionError(f"could not place {app}'s pods apart: {placed}")
