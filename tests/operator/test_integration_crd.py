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
from neptune_operator import render

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
    ("storage size huge exponent", set_("driver.storage", {"size": "1e9999999999"}),
     ["spec.driver.storage.size", "should match"]),
]


def resources(who: str, requests: dict[str, Any] | None = None,
              limits: dict[str, Any] | None = None) -> Mut:
    def mut(spec: dict[str, Any]) -> None:
        spec[who]["resources"] = {k: v for k, v in (("requests", requests), ("limits", limits))
                                  if v is not None}
    return mut


# Specs the operator would render into children that the API server refuses (or that never
# run): (label, mutation, app name, texts the CRD's refusal must contain, the child kind that
# the API server itself refuses, or None where it takes the child and the pods never start).
LIMIT_BELOW = "must not be below"
REFUSED_CHILDREN: list[tuple[str, Mut, str, list[str], str | None]] = [
    ("executor cpu limit below request", resources("executors", {"cpu": "2"}, {"cpu": 1}),
     "valid", ["spec.executors.resources.limits[cpu]", "limits.cpu (1) " + LIMIT_BELOW +
               " requests.cpu (2)"], "StatefulSet"),
    ("driver memory limit below request",
     resources("driver", {"memory": "1Gi"}, {"memory": "128Mi"}),
     "valid", ["spec.driver.resources.limits[memory]", "limits.memory (128Mi) " + LIMIT_BELOW],
     "Deployment"),
    ("cpu limit below request in other units", resources("driver", {"cpu": "1500m"}, {"cpu": 1}),
     "valid", ["spec.driver.resources.limits[cpu]", LIMIT_BELOW], "Deployment"),
    ("memory limit below request in other units",
     resources("executors", {"memory": "1.5Gi"}, {"memory": "1500Mi"}),
     "valid", ["spec.executors.resources.limits[memory]", LIMIT_BELOW], "StatefulSet"),
    ("ephemeral-storage limit below request",
     resources("executors", {"ephemeral-storage": "2Gi"}, {"ephemeral-storage": "1G"}),
     "valid", ["spec.executors.resources.limits[ephemeral-storage]", LIMIT_BELOW],
     "StatefulSet"),
    ("unknown resource name", resources("driver", {"gpu": 1}),
     "valid", ["spec.driver.resources.requests", "resource names must be"], "Deployment"),
    ("quota resource name", resources("executors", None, {"requests.cpu": 1}),
     "valid", ["spec.executors.resources.limits", "resource names must be"], "StatefulSet"),
    ("hugepages", resources("driver", {"hugepages-2Mi": "2Mi", "memory": "1Gi"},
                            {"hugepages-2Mi": "2Mi", "memory": "1Gi"}),
     "valid", ["spec.driver.resources.requests", "hugepages are not supported"], None),
    ("extended resource without limit", resources("driver", {"nvidia.com/gpu": 1}),
     "valid", ["spec.driver.resources.requests", "needs the same value in limits"],
     "Deployment"),
    ("extended resource limit above request",
     resources("executors", {"nvidia.com/gpu": 1}, {"nvidia.com/gpu": 2}),
     "valid", ["spec.executors.resources.requests", "needs the same value in limits"],
     "StatefulSet"),
    ("extended resource fractional",
     resources("driver", {"nvidia.com/gpu": "500m"}, {"nvidia.com/gpu": "500m"}),
     "valid", ["spec.driver.resources.requests", "must be whole numbers"], "Deployment"),
    # The API server only warns ("fractional byte value ... is invalid").
    ("memory in fractions of a byte", resources("driver", {"memory": "500m"}),
     "valid", ["spec.driver.resources.requests", "must be whole bytes"], None),
    ("memory limit a fraction of a byte in k", resources("executors", None, {"memory": "1.0001k"}),
     "valid", ["spec.executors.resources.limits", "must be whole bytes"], None),
    # Matches the old pattern and isQuantity; the API server then times out on the pod
    # template (measured: a dry-run of the Deployment gave up after 34 s), so no child check.
    ("cpu with a huge exponent", resources("driver", {"cpu": "1e9999999999"}),
     "valid", ["spec.driver.resources.requests.cpu", "should match"], None),
    ("image with leading whitespace", set_("image", " neptune:dev"),
     "valid", ["spec.image", "image must not contain whitespace"], None),
    # The API server takes these images; the kubelet never pulls them (InvalidImageName).
    ("image with whitespace inside", set_("image", "neptune dev"),
     "valid", ["spec.image", "image must not contain whitespace"], None),
    ("app source key ..", set_("app", {"configMap": {"name": "src", "key": ".."}}),
     "valid", ["spec.app.configMap.key", "must not be '.' or start with '..'"], "Deployment"),
    ("app source key starting with ..",
     set_("app", {"configMap": {"name": "src", "key": "..app.py"}}),
     "valid", ["spec.app.configMap.key", "must not be '.' or start with '..'"], "Deployment"),
    # No ConfigMap can hold the key '.': the pod would wait for its volume forever.
    ("app source key .", set_("app", {"configMap": {"name": "src", "key": "."}}),
     "valid", ["spec.app.configMap.key", "must not be '.' or start with '..'"], None),
    ("name starting with a digit", lambda _: None, "1fraud",
     ["metadata.name must start with a lowercase letter", "DNS-1035"], "Service"),
    ("name with a dot", lambda _: None, "fraud.v2",
     ["metadata.name must start with a lowercase letter", "DNS-1035"], "StatefulSet"),
]


def named(name: str) -> dict[str, Any]:
    obj = valid()
    obj["metadata"]["name"] = name
    return obj


@pytest.mark.parametrize(("label", "mutate", "name", "expected", "child"), REFUSED_CHILDREN,
                         ids=[c[0] for c in REFUSED_CHILDREN])
def test_spec_whose_children_would_fail_is_rejected(crd: ControlPlane, label: str, mutate: Mut,
                                                   name: str, expected: list[str],
                                                   child: str | None) -> None:
    obj = named(name)
    mutate(obj["spec"])
    code, err = apply(crd, obj)
    assert code != 0, f"{label}: accepted"
    for text in expected:
        assert text in err, f"{label}: {text!r} not in {err!r}"


def rendered(obj: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    obj = copy.deepcopy(obj)
    obj["metadata"]["uid"] = "00000000-0000-0000-0000-000000000001"
    ctx = render.RenderContext(secret_hex="00", tokens={"ingest": "i", "read": "r"})
    return [m for m in render.render(obj, ctx) if m["kind"] == kind]


def apply_children(cp: ControlPlane, manifests: list[dict[str, Any]]) -> tuple[int, str]:
    proc = cp.kubectl("apply", "--dry-run=server", "-f", "-",
                      stdin=yaml.safe_dump_all(manifests), check=False)
    return proc.returncode, proc.stderr


def test_children_of_the_valid_spec_are_accepted(crd: ControlPlane) -> None:
    # The check below is only worth something if the same path takes good children.
    obj = valid()
    obj["spec"]["app"] = {"configMap": {"name": "src", "key": "app.py"}}
    for kind in ("Deployment", "StatefulSet", "Service", "Secret", "ConfigMap", "NetworkPolicy"):
        code, err = apply_children(crd, rendered(obj, kind))
        assert code == 0, f"{kind}: {err}"


@pytest.mark.parametrize(("label", "mutate", "name", "child"),
                         [(c[0], c[1], c[2], c[4]) for c in REFUSED_CHILDREN if c[4]],
                         ids=[c[0] for c in REFUSED_CHILDREN if c[4]])
def test_without_the_rule_the_api_server_refuses_the_child(
        crd: ControlPlane, label: str, mutate: Mut, name: str, child: str) -> None:
    """Why each rule exists: the child rendered from the spec, bypassing the CRD, is refused."""
    obj = named(name)
    mutate(obj["spec"])
    code, err = apply_children(crd, rendered(obj, child))
    assert code != 0, f"{label}: the API server took the {child}"
    assert "is invalid" in err, err


@pytest.mark.parametrize("mutate", [
    resources("executors", {"cpu": "1"}, {"cpu": "1000m"}),  # equal, other units
    resources("driver", {"cpu": 1, "memory": "1Gi"}, {"cpu": "1.5", "memory": "1024Mi"}),
    resources("driver", {"memory": "1.5Gi"}, {"memory": "1536Mi"}),
    resources("executors", None, {"cpu": "250m", "memory": "1e9"}),  # limits alone
    resources("executors", {"cpu": "100m", "ephemeral-storage": "1Gi"}),  # requests alone
    resources("driver", {"nvidia.com/gpu": 2, "cpu": "1"}, {"nvidia.com/gpu": "2"}),
    resources("executors", {"example.com/slot": "1k"}, {"example.com/slot": 1000}),
    set_("image", "registry.local:5000/team/neptune@sha256:" + "a" * 64),
    set_("app", {"configMap": {"name": "src", "key": ".app.py"}}),
    lambda spec: None,
], ids=["equal-other-units", "limit-above", "fractional-gi", "limits-only", "requests-only",
        "extended-equal", "extended-in-k", "image-digest", "dotfile-key", "name-a"])
def test_good_values_are_accepted_and_so_are_their_children(crd: ControlPlane,
                                                             mutate: Mut) -> None:
    obj = named("a")
    mutate(obj["spec"])
    code, err = apply(crd, obj)
    assert code == 0, err
    for kind in ("Deployment", "StatefulSet", "Service"):
        code, err = apply_children(crd, rendered(obj, kind))
        assert code == 0, f"{kind}: {err}"


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
