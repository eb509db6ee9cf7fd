"""e2e/provisioner.py's decisions (pure: no cluster needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2e.provisioner import (
    PROVISIONED_BY,
    PROVISIONER,
    claims_to_provision,
    directory_of,
    volume_for,
    volumes_to_delete,
)

VOLUMES = Path("/var/lib/neptune-e2e/volumes")


def claim(name: str = "app-driver-state", cls: str | None = "neptune-local",
          phase: str = "Pending", **spec: Any) -> dict[str, Any]:
    return {"kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                     "resources": {"requests": {"storage": "64Mi"}}, **spec},
            "status": {"phase": phase}}


def test_only_pending_claims_of_our_class_without_a_volume() -> None:
    claims = [claim("a"), claim("other", cls="fast"), claim("bound", phase="Bound"),
              claim("named", volumeName="pv-x"), claim("block", volumeMode="Block"),
              claim("made")]
    made = [volume_for(claim("made"), VOLUMES, "node")]
    assert [c["metadata"]["name"] for c in claims_to_provision(claims, made)] == ["a"]


def test_volume_is_pre_bound_hostpath() -> None:
    pv = volume_for(claim(), VOLUMES, "node-1")
    assert pv["metadata"] == {"name": "pvc-uid-app-driver-state",
                              "annotations": {PROVISIONED_BY: PROVISIONER}}
    spec = pv["spec"]
    assert spec["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                "namespace": "ns", "name": "app-driver-state",
                                "uid": "uid-app-driver-state"}
    assert spec["hostPath"]["path"] == str(VOLUMES / "pvc-uid-app-driver-state")
    assert spec["capacity"] == {"storage": "64Mi"}
    assert spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["storageClassName"] == "neptune-local"
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    term = spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"][0]["values"] == ["node-1"]


def test_released_volumes_of_ours_are_deleted() -> None:
    released = volume_for(claim("gone"), VOLUMES, "n")
    released["status"] = {"phase": "Released"}
    bound = volume_for(claim("live"), VOLUMES, "n")
    bound["status"] = {"phase": "Bound"}
    foreign = {**released, "metadata": {"name": "manual", "annotations": {}}}
    assert volumes_to_delete([released, bound, foreign]) == [released]


def test_never_removes_a_directory_outside_the_volumes_dir() -> None:
    pv = volume_for(claim(), VOLUMES, "n")
    assert directory_of(pv, VOLUMES) == (VOLUMES / "pvc-uid-app-driver-state").resolve()
    pv["spec"]["hostPath"]["path"] = str(VOLUMES / ".." / "etcd")
    assert directory_of(pv, VOLUMES) is None
    pv["spec"]["hostPath"]["path"] = "/"
    assert directory_of(pv, VOLUMES) is None
