"""A tiny volume provisioner for the e2e cluster, which has no CSI driver and no cloud.

For every Pending claim of the StorageClass `neptune-local` it makes a directory under the
volumes directory (mode 0777: pods run as non-root users, and hostPath volumes get no fsGroup
ownership change) and a hostPath PersistentVolume pre-bound to the claim (claimRef); the PV
controller then completes the binding. A PV of ours that is Released (its claim was deleted;
reclaim policy Delete, which the PV controller leaves to the provisioner named in
`pv.kubernetes.io/provisioned-by`) is deleted with its directory.

Started by `e2e/cluster.sh up` (log logs/provisioner.log, pid run/provisioner.pid); stateless:
everything it needs is in the API, so a restart picks up where it was. Stdlib only, for the
host's python3:

    python3 e2e/provisioner.py --kubectl BIN --kubeconfig FILE --volumes DIR --node NAME
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

STORAGE_CLASS = "neptune-local"
PROVISIONER = "neptune.dev/local-hostpath"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"

Obj = dict[str, Any]


# -- pure: what to do, given the claims and volumes -------------------------------------------
def volume_name(claim: Mapping[str, Any]) -> str:
    # What external provisioners name their volumes: unique, and stable across restarts.
    return f"pvc-{claim['metadata']['uid']}"


def ours(volume: Mapping[str, Any]) -> bool:
    return bool((volume["metadata"].get("annotations") or {}).get(PROVISIONED_BY) == PROVISIONER)


def claims_to_provision(claims: Iterable[Mapping[str, Any]],
                        volumes: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Pending claims of our class with no volume yet (a volume made by a previous round
    that the PV controller has not bound yet counts as made)."""
    made = {v["metadata"]["name"] for v in volumes}
    return [c for c in claims
            if c["spec"].get("storageClassName") == STORAGE_CLASS
            and (c.get("status") or {}).get("phase", "Pending") == "Pending"
            and not c["spec"].get("volumeName")
            and not c["metadata"].get("deletionTimestamp")
            and c["spec"].get("volumeMode", "Filesystem") == "Filesystem"
            and volume_name(c) not in made]


def volume_for(claim: Mapping[str, Any], volumes_dir: Path, node: str) -> Obj:
    meta, spec = claim["metadata"], claim["spec"]
    name = volume_name(claim)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": "Filesystem",
            # Pre-bound: no other claim can take it, and the binder finishes the job.
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                         "namespace": meta["namespace"], "name": meta["name"],
                         "uid": meta["uid"]},
            "hostPath": {"path": str(volumes_dir / name), "type": "Directory"},
            # The directory exists on this node only.
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
        },
    }


def volumes_to_delete(volumes: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [v for v in volumes if ours(v) and (v.get("status") or {}).get("phase") == "Released"
            and not v["metadata"].get("deletionTimestamp")]


def directory_of(volume: Mapping[str, Any], volumes_dir: Path) -> Path | None:
    """The volume's directory, if it is one of ours: never remove anything else."""
    raw = (volume["spec"].get("hostPath") or {}).get("path")
    if not raw:
        return None
    path = Path(raw).resolve()
    return path if path.parent == volumes_dir.resolve() else None


# -- I/O: kubectl ------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


class Provisioner:
    def __init__(self, kubectl: str, kubeconfig: str, volumes_dir: Path, node: str) -> None:
        self.cmd = [kubectl, "--kubeconfig", kubeconfig]
        self.volumes_dir = volumes_dir
        self.node = node

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.cmd, *args], input=stdin, capture_output=True, text=True,
                              timeout=60, check=False)

    def list(self) -> tuple[list[Obj], list[Obj]]:
        proc = self.kubectl("get", "persistentvolumeclaims,persistentvolumes", "-A", "-o", "json")
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl get pvc,pv: {proc.stderr.strip()}")
        items: list[Obj] = json.loads(proc.stdout)["items"]
        return ([i for i in items if i["kind"] == "PersistentVolumeClaim"],
                [i for i in items if i["kind"] == "PersistentVolume"])

    def provision(self, claim: Mapping[str, Any]) -> None:
        pv = volume_for(claim, self.volumes_dir, self.node)
        path = Path(pv["spec"]["hostPath"]["path"])
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # mkdir's mode is masked by the umask
        proc = self.kubectl("create", "-f", "-", stdin=json.dumps(pv))
        who = f"{claim['metadata']['namespace']}/{claim['metadata']['name']}"
        if proc.returncode != 0 and "AlreadyExists" not in proc.stderr:
            log(f"claim {who}: creating {pv['metadata']['name']} failed: {proc.stderr.strip()}")
            return
        log(f"claim {who}: volume {pv['metadata']['name']} "
            f"({pv['spec']['capacity']['storage']}) at {path}")

    def delete(self, volume: Mapping[str, Any]) -> None:
        name = volume["metadata"]["name"]
        proc = self.kubectl("delete", "persistentvolume", name, "--ignore-not-found",
                            "--wait=false")
        if proc.returncode != 0:
            log(f"volume {name}: delete failed: {proc.stderr.strip()}")
            return
        path = directory_of(volume, self.volumes_dir)
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
        ref = volume["spec"].get("claimRef") or {}
        log(f"volume {name}: released by {ref.get('namespace')}/{ref.get('name')}, deleted"
            + (f" with {path}" if path else ""))

    def round(self) -> None:
        claims, volumes = self.list()
        for claim in claims_to_provision(claims, volumes):
            self.provision(claim)
        for volume in volumes_to_delete(volumes):
            self.delete(volume)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="e2e/provisioner.py",
        description=f"hostPath volumes for the StorageClass {STORAGE_CLASS}")
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--volumes", type=Path, required=True, help="directory of the volumes")
    parser.add_argument("--node", required=True, help="the node the directories are on")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between rounds")
    args = parser.parse_args(argv)
    args.volumes.mkdir(parents=True, exist_ok=True)
    prov = Provisioner(args.kubectl, args.kubeconfig, args.volumes, args.node)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    prov.round()  # fails loudly (exit 1) when the API server cannot be read at all
    log(f"ready: class {STORAGE_CLASS} ({PROVISIONER}), volumes in {args.volumes}, "
        f"node {args.node}, pid {os.getpid()}")
    while not stopping:
        time.sleep(args.interval)
        try:
            prov.round()
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            log(f"round failed (retrying): {exc}")  # API server restarting, and so on
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
