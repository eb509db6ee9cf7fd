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
import urllib.error
import urllib.parse
import urllib.request
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


CHART = REPO_DIR / "helm" / "neptune"
# The product's contract as a user sees it, spelled here once for every e2e module (not taken
# from the operator's code, so that a change there shows as a failing test).
API_VERSION = "neptune.dev/v1alpha1"
LABEL_APP = "neptune.dev/app"
LABEL_ROLE = "neptune.dev/role"
RELEASE = "neptune"  # the chart's release in the e2e modules that install one
OPERATOR_NS = "neptune-system"


def run_ok(*cmd: str, timeout: float = 300) -> str:
    """The stdout of a command that must succeed (else the failure shows its output)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


def install_release(release: str, namespace: str, *flags: str) -> None:
    """`helm upgrade --install` of the chart with the tests' image, until the operator is up;
    `flags`: more of helm's (--set ...)."""
    repo, _, tag = IMAGE.rpartition(":")
    run_ok(tool("helm"), "upgrade", "--install", release, str(CHART), "-n", namespace,
           "--create-namespace", "--wait", "--timeout", "180s",
           "--set", f"image.repository={repo}", "--set", f"image.tag={tag}",
           "--set", "image.pullPolicy=IfNotPresent", *flags)


def uninstall_release(release: str, namespace: str) -> None:
    run_ok(tool("helm"), "uninstall", release, "-n", namespace, "--ignore-not-found", "--wait")


def tool(name: str) -> str:
    bindir = os.environ.get("NEPTUNE_K8S_BIN")
    if bindir and (Path(bindir) / name).exists():
        return str(Path(bindir) / name)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: `make cluster-up` builds it into NEPTUNE_K8S_BIN, or put "
                    "it on PATH", pytrace=False)
    return found


def prom_query(expr: str) -> list[dict[str, Any]]:
    """An instant query to the Prometheus at NEPTUNE_PROMETHEUS_URL."""
    url = f"{PROMETHEUS_URL}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def require_prometheus() -> None:
    try:
        prom_query("up")
    except OSError as exc:
        pytest.fail(f"no Prometheus at {PROMETHEUS_URL} ({exc}): `make cluster-up` starts one "
                    "on the local cluster (`e2e/prometheus.sh up` alone); on another cluster run "
                    "one that scrapes pods by their prometheus.io annotations and set "
                    "NEPTUNE_PROMETHEUS_URL", pytrace=False)


class Kubectl:
    def __init__(self) -> None:
        self.bin = tool("kubectl")
        self._proxy: subprocess.Popen[str] | None = None
        self._proxy_url = ""

    def _api_proxy(self) -> str:
        """`kubectl proxy` on a free loopback port, started on first use: it authenticates to
        the API server with whatever the kubeconfig holds and, unlike `kubectl --raw`, lets a
        request carry its own headers (X-Neptune-Token survives the service proxy)."""
        if self._proxy is not None and self._proxy.poll() is None:
            return self._proxy_url
        self._proxy = subprocess.Popen(
            [self.bin, "proxy", "--port=0", "--address=127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self._proxy.stdout is not None
        line = self._proxy.stdout.readline()  # "Starting to serve on 127.0.0.1:PORT"
        if "Starting to serve on" not in line:
            self.close()
            raise AssertionError(f"kubectl proxy did not start: {line!r}")
        self._proxy_url = "http://" + line.rsplit(" ", 1)[1].strip()
        return self._proxy_url

    def http(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, bytes]:
        """An API server path (e.g. a service proxy URL) over `kubectl proxy`: (status, body),
        for error statuses too."""
        req = urllib.request.Request(self._api_proxy() + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def close(self) -> None:
        if self._proxy is not None:
            self._proxy.terminate()
            try:
                self._proxy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proxy.kill()
                self._proxy.wait()
            self._proxy = None

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

    def cpus(self, ns: str, pod: str, container: str) -> list[int]:
        """The CPUs a process started in the pod's container may run on (its cpuset)."""
        out = self.run("-n", ns, "exec", pod, "-c", container, "--", "python3", "-c",
                       "import os; print(sorted(os.sched_getaffinity(0)))").stdout
        return [int(cpu) for cpu in json.loads(out)]

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
