"""Operator scale benchmark (not a timed test): N ContinuousApplications in one namespace.

Measures the time until every app has all its children and a status for its generation, the
operator's peak RSS (VmHWM; target <= 200 MB) and its reconcile errors (target 0).

    # against a running control plane (make controlplane-up; KUBECONFIG exported):
    python -m neptune_bench.operator_scale --apps 500
    # or with a throw-away control plane from NEPTUNE_K8S_BIN:
    python -m neptune_bench.operator_scale --apps 500 --start-controlplane

It runs from a checkout (an editable install): it reads the CRD from crds/, starts the operator
from operator/ and the control plane with e2e/controlplane.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from neptune_runtime.processes import free_port

ROOT = Path(__file__).resolve().parents[2]  # the checkout: bench/neptune_bench/ is two below
sys.path.insert(0, str(ROOT))

from e2e.controlplane import ControlPlane, find_binaries  # noqa: E402

CHILD_KINDS = "deploy,sts,svc,secret,cm,networkpolicy"
CHILDREN_PER_APP = 8


def app(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "neptune.dev/v1alpha1", "kind": "ContinuousApplication",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "image": "neptune:dev", "app": {"module": "examples.fraud"},
            "executors": {"replicas": 2},
            "jobs": [{"name": "score", "kind": "stream", "slo": f"{10 + int(name[4:]) % 90}ms"},
                     {"name": "train", "kind": "batch", "partitions": 8}],
            "priority": int(name[4:]) % 10 * 100,
        },
    }


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    kubectl_bin = os.environ.get("KUBECTL", "kubectl")
    with contextlib.suppress(RuntimeError):
        kubectl_bin = str(find_binaries()["kubectl"])
    proc = subprocess.run([kubectl_bin, "--kubeconfig", str(kubeconfig), *args], input=stdin,
                          text=True, capture_output=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:3])}: {proc.stderr.strip()}")
    return proc.stdout


def vm_hwm_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


def steady(kubeconfig: Path, ns: str, n: int) -> tuple[int, int]:
    """(apps with a current status, children) in the namespace."""
    items = json.loads(kubectl(kubeconfig, "get", "capp", "-n", ns, "-o", "json"))["items"]
    done = sum(1 for i in items
               if (i.get("status") or {}).get("observedGeneration")
               == i["metadata"]["generation"])
    children = kubectl(kubeconfig, "get", CHILD_KINDS, "-n", ns, "-l",
                       "app.kubernetes.io/managed-by=neptune-operator", "-o", "name")
    return done, len(children.split())


def errors(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("neptune_operator_reconcile_errors_total{"))


def run(kubeconfig: Path, n: int, ns: str, timeout: float) -> dict[str, Any]:
    kubectl(kubeconfig, "apply", "--server-side", "-f",
            str(ROOT / "crds" / "continuousapplication.yaml"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s",
            "crd/continuousapplications.neptune.dev")
    with contextlib.suppress(RuntimeError):
        kubectl(kubeconfig, "create", "namespace", ns)
    metrics_port, health_port = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig),
           "NEPTUNE_OPERATOR_METRICS_PORT": str(metrics_port),
           "NEPTUNE_DRIVER_STATUS_URL": f"http://127.0.0.1:{free_port()}/status",
           "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("operator", "executor_image"))}
    log = open(Path(tempfile.gettempdir()) / "neptune-operator-scale.log", "wb")  # noqa: SIM115
    op = subprocess.Popen([sys.executable, "-m", "neptune_operator.main", "--namespace", ns,
                           "--liveness", f"http://127.0.0.1:{health_port}/healthz"],
                          env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(3)
        docs = "\n---\n".join(json.dumps(app(f"app-{i:04d}", ns)) for i in range(n))
        started = time.monotonic()
        kubectl(kubeconfig, "apply", "-f", "-", stdin=docs)
        applied = time.monotonic() - started
        peak = 0.0
        done, children = 0, 0
        while time.monotonic() - started < timeout:
            peak = max(peak, vm_hwm_mb(op.pid))
            done, children = steady(kubeconfig, ns, n)
            if done == n and children == n * CHILDREN_PER_APP:
                break
            time.sleep(2)
        elapsed = time.monotonic() - started
        peak = max(peak, vm_hwm_mb(op.pid))
        return {"apps": n, "apply_s": round(applied, 1), "steady_s": round(elapsed, 1),
                "steady": done == n and children == n * CHILDREN_PER_APP,
                "apps_with_status": done, "children": children,
                "operator_peak_rss_mb": round(peak, 1), "reconcile_errors": errors(metrics_port)}
    finally:
        op.terminate()
        op.wait(timeout=30)
        with contextlib.suppress(RuntimeError):
            kubectl(kubeconfig, "delete", "namespace", ns, "--wait=false")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=500)
    parser.add_argument("--namespace", default="neptune-scale")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--start-controlplane", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    cp: ControlPlane | None = None
    if args.start_controlplane:
        cp = ControlPlane(Path(tempfile.mkdtemp(prefix="neptune-scale-")), find_binaries())
        cp.start()
        kubeconfig = cp.kubeconfig
    else:
        kubeconfig = Path(os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config")))
    try:
        result = run(kubeconfig, args.apps, args.namespace, args.timeout)
    finally:
        if cp is not None:
            cp.stop()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    ok = result["steady"] and result["reconcile_errors"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
