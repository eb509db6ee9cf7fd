"""A real, throw-away control plane for integration tests: etcd, kube-apiserver and
kube-controller-manager (garbage collector, claim protection) from NEPTUNE_K8S_BIN, on free
ports, in a temporary directory. No kubelet: pods never run, but every API object is real.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neptune_runtime.processes import free_port

HINT = "run make controlplane-up / see e2e/README.md"
NEEDED = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")


class ControlPlaneMissing(RuntimeError):
    pass


def find_binaries() -> dict[str, Path]:
    raw = os.environ.get("NEPTUNE_K8S_BIN")
    if not raw:
        raise ControlPlaneMissing(
            f"NEPTUNE_K8S_BIN is not set (a directory with {', '.join(NEEDED)}): {HINT}")
    found: dict[str, Path] = {}
    for name in NEEDED:
        for d in raw.split(os.pathsep):
            p = Path(d) / name
            if p.is_file() and os.access(p, os.X_OK):
                found[name] = p
                break
    missing = [n for n in NEEDED if n not in found]
    if missing:
        raise ControlPlaneMissing(f"NEPTUNE_K8S_BIN={raw} lacks {', '.join(missing)}: {HINT}")
    return found


@dataclass
class ControlPlane:
    root: Path
    bins: dict[str, Path]
    token: str = "neptune-integration-admin-token"
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    server: str = ""

    @property
    def kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen([str(self.bins[name]), *args], stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.root / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        etcd_port, peer_port, api_port, kcm_port = (free_port() for _ in range(4))
        self._spawn("etcd", [
            "--name", "default", "--data-dir", str(self.root / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
            "--log-level", "warn",
        ])
        subprocess.run(["openssl", "genrsa", "-out", str(self.root / "sa.key"), "2048"],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", str(self.root / "sa.key"), "-pubout",
                        "-out", str(self.root / "sa.pub")], check=True, capture_output=True)
        (self.root / "tokens.csv").write_text(
            f'{self.token},admin,admin,"system:masters"\n')
        self.server = f"https://127.0.0.1:{api_port}"
        self._spawn("kube-apiserver", [
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}", f"--cert-dir={self.root / 'certs'}",
            f"--token-auth-file={self.root / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={self.root / 'sa.pub'}",
            f"--service-account-signing-key-file={self.root / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
        ])
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "it",
            "clusters": [{"name": "it", "cluster": {"server": self.server,
                                                    "insecure-skip-tls-verify": True}}],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "it", "context": {"cluster": "it", "user": "admin",
                                                    "namespace": "default"}}],
        }))
        self._wait_ready("/readyz", 90)
        self._spawn("kube-controller-manager", [
            # pvc-protection: the API server puts its finalizer on every claim; without the
            # controller that lifts it, a deleted app's claim would stay Terminating.
            f"--kubeconfig={self.kubeconfig}",
            "--controllers=garbagecollector,namespace,persistentvolumeclaim-protection-controller",
            "--leader-elect=false", f"--secure-port={kcm_port}", "--bind-address=127.0.0.1",
        ])

    def _wait_ready(self, path: str, timeout: float) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                break
            req = urllib.request.Request(self.server + path,
                                         headers={"Authorization": f"Bearer {self.token}"})
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.3)
        raise RuntimeError(f"kube-apiserver not ready ({last}):\n"
                           f"{self.log_tail('kube-apiserver')}\n{self.log_tail('etcd')}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, stdin: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.bins["kubectl"]), *args], input=stdin, text=True,
                              capture_output=True, env=self.env(), timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        args = ["get", kind, name, "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        proc = self.kubectl(*args, check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr:
                return None
            raise AssertionError(proc.stderr)
        out: dict[str, Any] = json.loads(proc.stdout)
        return out


def cleanup_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
