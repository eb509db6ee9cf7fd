"""Checks shared by several operator tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

BASE: dict[str, Any] = {
    "apiVersion": "neptune.dev/v1alpha1",
    "kind": "ContinuousApplication",
    "metadata": {"name": "fraud", "namespace": "team-a", "uid": "1234-abcd", "generation": 3},
    "spec": {
        "image": "neptune:dev",
        "app": {"module": "examples.fraud"},
        "driver": {"resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}},
        "executors": {"replicas": 3, "slotsPerPod": 2,
                      "resources": {"requests": {"cpu": "1", "memory": "512Mi"},
                                    "limits": {"cpu": "1", "memory": "1Gi"}}},
        "jobs": [
            {"name": "score", "kind": "stream", "slo": "50ms", "trigger": "event",
             "source": {"http": {}}},
            {"name": "train", "kind": "batch", "partitions": 8},
        ],
        "policy": "neptune",
        "priority": 100,
        "suspend": False,
        "monitoring": {"podMonitor": True},
    },
}


def pod_specs(manifests: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for m in manifests:
        if m["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield m["metadata"]["name"], m["spec"]["template"]["spec"]


def restricted_violations(pod: Mapping[str, Any]) -> list[str]:
    """The `restricted` Pod Security Standard (v1.30+), as far as a pod spec shows it."""
    out = []
    psc = pod.get("securityContext", {})
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        out.append("host namespaces")
    for vol in pod.get("volumes", []):
        allowed = {"name", "configMap", "secret", "emptyDir", "projected",
                   "persistentVolumeClaim", "downwardAPI", "ephemeral", "csi"}
        if set(vol) - allowed:
            out.append(f"volume {vol['name']} type {set(vol) - allowed}")
    for c in [*pod.get("containers", []), *pod.get("initContainers", [])]:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            out.append(f"{name}: runAsNonRoot")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile") or psc.get("seccompProfile") or {}
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            out.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: adds capabilities")
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{name}: readOnlyRootFilesystem")
        for port in c.get("ports", []):
            if port.get("hostPort"):
                out.append(f"{name}: hostPort")
    return out
