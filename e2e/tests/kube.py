"""Helpers for the end-to-end tests: they drive a real cluster with kubectl (and helm), as a
user would. The cluster is whatever KUBECONFIG points to (``make e2e`` starts the local one from
e2e/cluster.sh when KUBECONFIG is unset); binaries come from NEPTUNE_K8S_BIN or PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

E2E_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = E2E_DIR.parent
IMAGE = os.environ.get("NEPTUNE_IMAGE", "localhost/neptune-k8s:dev")
PROMETHEUS_URL = os.environ.get("NEPTUNE_PROMETHEUS_URL", "http://127.0.0.1:9090")

# Restricted Pod Security Standard, container level.
RESTRICTED_CONTAINER_SC: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def tool(name: str) -> str:
    bindir = os.environ.get("NEPTUNE_K8S_BIN")
    if bindir and (Path(bindir) / name).exists():
        return str(Path(bindir) / name)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} not found (set NEPTUNE_K8S_BIN or PATH)")
    return found


class Kubectl:
    def __init__(self) -> None:
        self.bin = tool("kubectl")

    def run(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.bin, *args], input=input, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, obj: dict[str, Any] | list[dict[str, Any]], check: bool = True
              ) -> subprocess.CompletedProcess[str]:
        items = obj if isinstance(obj, list) else [obj]
        doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        return self.run("apply", "-f", "-", input=doc, check=check)


def wait_until(what: str, cond: Callable[[], Any], timeout: float = 120,
               interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except AssertionError as e:  # transient kubectl failures
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")




def restricted_pod(name: str, command: list[str], **extra: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": command, "securityContext": RESTRICTED_CONTAINER_SC,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                      "limits": {"cpu": "500m", "memory": "256Mi"}},
    }
    container.update(extra.pop("container", {}))
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, **extra.pop("metadata", {})},
        "spec": {"restartPolicy": "Never", "containers": [container],
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                     "seccompProfile": {"type": "RuntimeDefault"}}},
    }
    pod["spec"].update(extra)
    return pod
