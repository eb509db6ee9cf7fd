"""The cluster itself, as the later tests rely on it: node Ready, the project image runs under
the restricted Pod Security Standard, pods reach the API server through the kubernetes Service
and resolve names through cluster DNS, and Prometheus scrapes pods that follow the convention
documented in e2e/README.md."""

from __future__ import annotations

import json
from typing import Any

import pytest

from e2e.tests.kube import (
    Kubectl,
    prom_query,
    require_prometheus,
    restricted_pod,
    wait_until,
)


def _phase(kubectl: Kubectl, ns: str, pod: str) -> str:
    return str(kubectl.json("-n", ns, "get", "pod", pod).get("status", {}).get("phase", ""))


def _finished(kubectl: Kubectl, ns: str, pod: str) -> str:
    phase = _phase(kubectl, ns, pod)
    return phase if phase in ("Succeeded", "Failed") else ""


def test_node_ready(kubectl: Kubectl) -> None:
    nodes = kubectl.json("get", "nodes")["items"]
    assert nodes, "the cluster has no node"
    for node in nodes:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", node["metadata"]["name"]


def test_image_runs_under_restricted_pss(kubectl: Kubectl, restricted_ns: str) -> None:
    kubectl.apply(restricted_pod("help", ["neptunectl", "--help"]) | {"metadata": {
        "name": "help", "namespace": restricted_ns}})
    phase = wait_until("pod help to finish", lambda: _finished(kubectl, restricted_ns, "help"))
    logs = kubectl.run("-n", restricted_ns, "logs", "help").stdout
    assert phase == "Succeeded", logs
    assert "neptunectl" in logs


def test_restricted_pss_rejects_root_pod(kubectl: Kubectl, restricted_ns: str) -> None:
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root", "namespace": restricted_ns},
        "spec": {"containers": [{"name": "main", "image": "localhost/neptune-k8s:dev",
                                 "securityContext": {"runAsUser": 0, "privileged": True}}]},
    }
    proc = kubectl.apply(pod, check=False)
    assert proc.returncode != 0
    assert "violates PodSecurity" in proc.stderr


PROBE = """
import json, ssl, socket, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
out = {"dns": socket.gethostbyname("kubernetes.default.svc.cluster.local")}
req = urllib.request.Request("https://kubernetes.default.svc/version",
                             headers={"Authorization": "Bearer " + open(sa + "/token").read()})
out["version"] = json.load(urllib.request.urlopen(req, context=ctx, timeout=10))["gitVersion"]
print(json.dumps(out))
"""


def test_pod_reaches_api_server_by_service_name(kubectl: Kubectl, restricted_ns: str) -> None:
    kubectl.apply(restricted_pod("probe", ["python3", "-c", PROBE])
                  | {"metadata": {"name": "probe", "namespace": restricted_ns}})
    phase = wait_until("pod probe to finish", lambda: _finished(kubectl, restricted_ns, "probe"))
    logs = kubectl.run("-n", restricted_ns, "logs", "probe").stdout
    assert phase == "Succeeded", logs
    result = json.loads(logs.strip().splitlines()[-1])
    svc_ip = kubectl.json("-n", "default", "get", "svc", "kubernetes")["spec"]["clusterIP"]
    assert result["dns"] == svc_ip
    assert result["version"].startswith("v1.")


EXPORTER = """
import time
from prometheus_client import Counter, start_http_server
c = Counter("neptune_e2e_probe_total", "e2e probe counter")
start_http_server(9400)
start_http_server(9401)
while True:
    c.inc(); time.sleep(1)
"""


@pytest.mark.parametrize("style", ["annotation-port", "named-ports"])
def test_prometheus_scrapes_annotated_pods(kubectl: Kubectl, restricted_ns: str,
                                          style: str) -> None:
    require_prometheus()
    annotations = {"prometheus.io/scrape": "true"}
    ports = [{"name": "metrics", "containerPort": 9400},
             {"name": "metrics-1", "containerPort": 9401}]
    if style == "annotation-port":
        annotations["prometheus.io/port"] = "9400"
        ports = [{"name": "http", "containerPort": 9400}]
    pod = restricted_pod("exporter", ["python3", "-c", EXPORTER], container={"ports": ports})
    pod["metadata"] = {"name": "exporter", "namespace": restricted_ns,
                       "labels": {"app.kubernetes.io/name": "e2e-exporter"},
                       "annotations": annotations}
    pod["spec"]["restartPolicy"] = "Always"
    kubectl.apply(pod)
    wait_until("exporter Running", lambda: _phase(kubectl, restricted_ns, "exporter") == "Running")
    expr = f'neptune_e2e_probe_total{{namespace="{restricted_ns}",pod="exporter"}}'
    want = 1 if style == "annotation-port" else 2
    series = wait_until(f"{want} scraped series of {expr}",
                        lambda: (r := prom_query(expr)) and len(r) >= want and r, timeout=90)
    assert len(series) == want
    assert series[0]["metric"]["app_kubernetes_io_name"] == "e2e-exporter"
