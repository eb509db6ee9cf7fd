"""The CRD on a real kube-apiserver: it installs, and every invalid case is rejected by
`kubectl apply` with a message that names the field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.controlplane import ControlPlane

from .op_helpers import BASE

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NS = "crd-tests"


@pytest.fixture(scope="module")
def crd(controlplane: ControlPlane) -> ControlPlane:
    controlplane.kubectl("apply", "--server-side", "-f",
                         str(ROOT / "crds" / "continuousapplication.yaml"))
    controlplane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                         "crd/continuousapplications.neptune.dev")
    controlplane.kubectl("create", "namespace", NS, check=False)
    return controlplane


def valid() -> dict[str, Any]:
    obj = copy.deepcopy(BASE)
    obj["metadata"] = {"name": "valid", "namespace": NS}
    return obj


def apply(cp: ControlPlane, obj: dict[str, Any]) -> tuple[int, str]:
    proc = cp.kubectl("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(obj),
                      check=False)
    return proc.returncode, proc.stderr


def test_valid_resource_is_accepted(crd: ControlPlane) -> None:
    code, err = apply(crd, valid())
    assert code == 0, err


def test_defaults_are_filled_in(crd: ControlPlane) -> None:
    obj = valid()
    obj["metadata"]["name"] = "defaults"
    for key in ("policy", "priority", "suspend", "imagePullPolicy"):
        obj["spec"].pop(key, None)
    del obj["spec"]["executors"]["slotsPerPod"]
    proc = crd.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-",
                       stdin=yaml.safe_dump(obj))
    spec = json.loads(proc.stdout)["spec"]
    assert spec["policy"] == "neptune"
    assert spec["suspend"] is False
    assert spec["imagePullPolicy"] == "IfNotPresent"
    assert spec["executors"]["slotsPerPod"] == 1


Mut = Callable[[dict[str, Any]], None]


def job(i: int, **kw: Any) -> Mut:
    def mut(spec: dict[str, Any]) -> None:
        spec["jobs"][i].update(kw)
    return mut


def drop_slo(spec: dict[str, Any]) -> None:
    del spec["jobs"][0]["slo"]


def dup_job(spec: dict[str, Any]) -> None:
    spec["jobs"].append({"name": "score", "kind": "stream", "slo": "10ms"})


def set_(path: str, value: Any) -> Mut:
    def mut(spec: dict[str, Any]) -> None:
        node = spec
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return mut


def both_sources(spec: dict[str, Any]) -> None:
    spec["app"]["configMap"] = {"name": "src", "key": "app.py"}


INVALID: list[tuple[str, Mut, list[str]]] = [
    ("stream job without slo", drop_slo, ["spec.jobs[0].slo", "needs an slo"]),
    ("batch job with slo", job(1, slo="1s"), ["spec.jobs[1].slo", "must not have an slo"]),
    ("replicas 0", set_("executors.replicas", 0), ["spec.executors.replicas", "1"]),
    ("duplicate job names", dup_job, ["spec.jobs[2]", "Duplicate value"]),
    ("unknown policy", set_("policy", "lifo"), ["spec.policy", "Unsupported value"]),
    ("slo without unit", job(0, slo="50"), ["spec.jobs[0].slo", "should match"]),
    ("slo negative", job(0, slo="-5ms"), ["spec.jobs[0].slo"]),
    ("slo zero", job(0, slo="0ms"), ["spec.jobs[0].slo", "positive duration"]),
    ("bad cpu", set_("executors.resources.requests.cpu", "lots"),
     ["spec.executors.resources.requests.cpu", "should match"]),
    ("bad memory", set_("driver.resources.requests.memory", "1GB"),
     ["spec.driver.resources.requests.memory"]),
    ("unknown job kind", job(0, kind="realtime"), ["spec.jobs[0].kind", "Unsupported value"]),
    ("two app sources", both_sources, ["spec.app", "exactly one"]),
    ("stream job with partitions", job(0, partitions=4), ["spec.jobs[0].partitions"]),
    ("storage size zero", set_("driver.storage", {"size": "0Gi"}),
     ["spec.driver.storage.size", "must be a positive quantity such as 1Gi, not 0Gi"]),
    ("storage size int zero", set_("driver.storage", {"size": 0}),
     ["spec.driver.storage.size", "positive quantity"]),
    ("storage size negative", set_("driver.storage", {"size": "-1Gi"}),
     ["spec.driver.storage.size", "should match"]),
    ("storage size not a quantity", set_("driver.storage", {"size": "1GB"}),
     ["spec.driver.storage.size", "should match"]),
    ("storage class not a DNS name", set_("driver.storage", {"storageClassName": "Fast_SSD"}),
     ["spec.driver.storage.storageClassName", "should match"]),
]


@pytest.mark.parametrize(("label", "mutate", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_resource_rejected(crd: ControlPlane, label: str, mutate: Mut,
                                   expected: list[str]) -> None:
    obj = valid()
    mutate(obj["spec"])
    code, err = apply(crd, obj)
    assert code != 0, f"{label}: accepted"
    for text in expected:
        assert text in err, f"{label}: {text!r} not in {err!r}"


@pytest.mark.parametrize(("storage", "expected"), [
    ({}, {"size": "1Gi"}),
    ({"size": "64Mi", "storageClassName": "neptune-local"},
     {"size": "64Mi", "storageClassName": "neptune-local"}),
    ({"size": 1073741824}, {"size": 1073741824}),
])
def test_driver_storage_accepted(crd: ControlPlane, storage: dict[str, Any],
                                 expected: dict[str, Any]) -> None:
    obj = valid()
    obj["spec"]["driver"]["storage"] = storage
    proc = crd.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-",
                       stdin=yaml.safe_dump(obj))
    assert json.loads(proc.stdout)["spec"]["driver"]["storage"] == expected


FIXED = "driver.storage cannot be changed after creation"


@pytest.mark.parametrize(("created", "updated", "ok"), [
    ({"size": "64Mi"}, {"size": "64Mi"}, True),
    ({}, {"size": "1Gi"}, True),  # the default, made explicit
    ({"size": "64Mi"}, {"size": "128Mi"}, False),  # growth: not in place either
    ({"size": "64Mi"}, {"size": "64Mi", "storageClassName": "other"}, False),
    ({"size": "64Mi"}, None, False),  # removed
    (None, {"size": "64Mi"}, False),  # added
    (None, None, True),
], ids=["same", "default-explicit", "grow", "class", "remove", "add", "none"])
def test_driver_storage_is_fixed_after_creation(crd: ControlPlane, created: Any, updated: Any,
                                                ok: bool) -> None:
    obj = valid()
    obj["metadata"]["name"] = "fixed-storage"
    if created is not None:
        obj["spec"]["driver"]["storage"] = created
    crd.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj))
    try:
        obj["spec"]["driver"].pop("storage", None)
        if updated is not None:
            obj["spec"]["driver"]["storage"] = updated
        obj["spec"]["executors"]["replicas"] = 5  # another change: always allowed
        code, err = apply(crd, obj)
        assert (code == 0) is ok, err
        if not ok:
            assert "spec.driver.storage" in err and FIXED in err, err
            assert "delete and re-create the application" in err, err
    finally:
        crd.kubectl("delete", "capp", "fixed-storage", "-n", NS, "--wait=true")


def test_name_too_long_rejected(crd: ControlPlane) -> None:
    obj = valid()
    obj["metadata"]["name"] = "a" * 41
    code, err = apply(crd, obj)
    assert code != 0
    assert "at most 40 characters" in err


def test_kubectl_explain_describes_fields(crd: ControlPlane) -> None:
    out = crd.kubectl("explain", "capp.spec.jobs.slo").stdout
    assert "Latency objective" in out
    out = crd.kubectl("explain", "capp.spec").stdout
    for field in ("executors", "jobs", "policy", "suspend", "monitoring"):
        assert field in out


def test_printer_columns_and_short_name(crd: ControlPlane) -> None:
    obj = valid()
    obj["metadata"]["name"] = "columns"
    crd.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj))
    out = crd.kubectl("get", "capp", "columns", "-n", NS).stdout.splitlines()[0].split()
    assert out == ["NAME", "PHASE", "EXECUTORS", "WORST-P99/SLO", "AGE"]
    crd.kubectl("delete", "capp", "columns", "-n", NS)
