"""The CRD on a real kube-apiserver: it installs, and every invalid case is rejected by
`kubectl apply` with a message that names the field."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.controlplane import ControlPlane
from neptune_operator import migrate, render

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


KAFKA = {"bootstrapServers": "kafka-0.kafka.svc:9092,kafka-1.kafka.svc:9092",
         "topic": "transactions", "group": "fraud-score", "secretRef": {"name": "kafka-creds"}}


def kafka(**fields: Any) -> Mut:
    """Job 0 reads Kafka, with `fields` changed (None: removed)."""
    def mut(spec: dict[str, Any]) -> None:
        src = {**KAFKA, **fields}
        spec["jobs"][0]["source"] = {"kafka": {k: v for k, v in src.items() if v is not None}}
    return mut


def two_jobs_on_one_group(spec: dict[str, Any]) -> None:
    kafka()(spec)
    spec["jobs"].append({"name": "again", "kind": "stream", "slo": "1s",
                         "source": copy.deepcopy(spec["jobs"][0]["source"])})


def two_kafka_jobs(spec: dict[str, Any]) -> None:
    kafka()(spec)
    spec["jobs"].append({"name": "again", "kind": "stream", "slo": "1s",
                         "source": {"kafka": {**KAFKA, "group": "other"}}})


def autoscale(**fields: Any) -> Mut:
    def mut(spec: dict[str, Any]) -> None:
        spec["executors"]["autoscale"] = fields
    return mut


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
    # Kafka sources.
    ("bootstrap servers with a space", kafka(bootstrapServers="a:9092, b:9092"),
     ["spec.jobs[0].source.kafka.bootstrapServers", "host:port pairs separated by commas",
      "not a:9092, b:9092"]),
    ("bootstrap server without a port", kafka(bootstrapServers="kafka"),
     ["spec.jobs[0].source.kafka.bootstrapServers", "host:port"]),
    ("bootstrap server port out of range", kafka(bootstrapServers="kafka:70000"),
     ["spec.jobs[0].source.kafka.bootstrapServers", "ports 1-65535"]),
    ("topic with a space", kafka(topic="card tx"),
     ["spec.jobs[0].source.kafka.topic", "must be a Kafka topic name", "not card tx"]),
    ("topic ..", kafka(topic=".."), ["spec.jobs[0].source.kafka.topic", "not . or .."]),
    ("topic too long", kafka(topic="t" * 250), ["spec.jobs[0].source.kafka.topic", "249"]),
    ("group with whitespace", kafka(group="fraud score"),
     ["spec.jobs[0].source.kafka.group", "must not contain whitespace"]),
    ("no group", kafka(group=None), ["spec.jobs[0].source.kafka.group", "Required value"]),
    ("no topic", kafka(topic=None), ["spec.jobs[0].source.kafka.topic", "Required value"]),
    ("secret name not a name", kafka(secretRef={"name": "Kafka_Creds"}),
     ["spec.jobs[0].source.kafka.secretRef.name", "must be a Secret name"]),
    # Credentials are never in the spec: unknown fields are refused, not kept.
    ("password in the spec", kafka(secretRef={"name": "creds"}, password="hunter2"),
     ["spec.jobs[0].source.kafka", 'unknown field "spec.jobs[0].source.kafka.password"']),
    ("http and kafka", job(0, source={"http": {}, "kafka": KAFKA}),
     ["spec.jobs[0].source", "exactly one of http and kafka"]),
    ("empty source", job(0, source={}), ["spec.jobs[0].source", "exactly one of http and kafka"]),
    ("source named as a string", job(0, source="http"),
     ["spec.jobs[0].source", "must be of type object"]),
    ("source on a batch job", job(1, source={"http": {}}),
     ["spec.jobs[1].source", "stream jobs only"]),
    ("two jobs on one topic and group", two_jobs_on_one_group,
     ["spec.jobs", "same Kafka topic in the same group"]),
    # Upgrade mode and autoscale.
    ("unknown upgrade mode", set_("upgradeMode", "savepoint"),
     ["spec.upgradeMode", "Unsupported value"]),
    ("neither replicas nor autoscale", set_("executors", {"slotsPerPod": 1}),
     ["spec.executors.replicas", "required unless executors.autoscale is set"]),
    ("autoscale min above max", autoscale(minReplicas=5, maxReplicas=2),
     ["spec.executors.autoscale.minReplicas", "must not be above autoscale.maxReplicas"]),
    ("autoscale without max", autoscale(minReplicas=2),
     ["spec.executors.autoscale.maxReplicas", "Required value"]),
    ("autoscale max above 1000", autoscale(maxReplicas=1001),
     ["spec.executors.autoscale.maxReplicas", "1000"]),
    ("autoscale target zero", autoscale(maxReplicas=4, targetLagSeconds=0),
     ["spec.executors.autoscale.targetLagSeconds", "1"]),
    ("autoscale down faster than up",
     autoscale(maxReplicas=4, scaleUpWindowSeconds=60, scaleDownWindowSeconds=30),
     ["spec.executors.autoscale.scaleDownWindowSeconds", "at least scaleUpWindowSeconds"]),
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
    ("nodeSelector key with a space", set_("executors.nodeSelector", {"disk type": "ssd"}),
     "valid", ["spec.executors.nodeSelector", "nodeSelector keys must be label keys"],
     "StatefulSet"),
    ("nodeSelector key name too long", set_("driver.nodeSelector", {"a" * 64: "x"}),
     "valid", ["spec.driver.nodeSelector", "nodeSelector keys must be label keys"],
     "Deployment"),
    ("nodeSelector value not a label value",
     set_("executors.nodeSelector", {"zone": "eu/west"}),
     "valid", ["spec.executors.nodeSelector.zone", "should match"], "StatefulSet"),
    ("toleration Exists with a value",
     set_("executors.tolerations", [{"key": "k", "operator": "Exists", "value": "v"}]),
     "valid", ["spec.executors.tolerations[0].value", "must not have a value"], "StatefulSet"),
    ("toleration without a key, Equal",
     set_("driver.tolerations", [{"value": "v", "effect": "NoSchedule"}]),
     "valid", ["spec.driver.tolerations[0].operator", "without a key must have operator"],
     "Deployment"),
    ("tolerationSeconds without NoExecute",
     set_("executors.tolerations", [{"key": "k", "effect": "NoSchedule",
                                     "tolerationSeconds": 30}]),
     "valid", ["spec.executors.tolerations[0].tolerationSeconds", "needs effect NoExecute"],
     "StatefulSet"),
    ("toleration key not a label key",
     set_("driver.tolerations", [{"key": "bad key", "operator": "Exists"}]),
     "valid", ["spec.driver.tolerations[0].key", "must be a label key"], "Deployment"),
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
    kafka(),
    kafka(bootstrapServers="[fd00::1]:9092,10.0.0.7:9093", topic="tx.in-2_a",
          secretRef={"name": "kafka." + "c" * 200}),  # a subdomain no volume could be named
    kafka(secretRef=None),  # no credentials (PLAINTEXT)
    two_kafka_jobs,
    lambda spec: spec["executors"].update(autoscale={"maxReplicas": 4}),
    lambda spec: spec.update(upgradeMode="stateless"),
    set_("executors.nodeSelector", {"neptune.dev/node": "node2",
                                    "topology.kubernetes.io/zone": "", "disk": "ssd_1.a"}),
    set_("driver.tolerations", [{"operator": "Exists"},
                                {"key": "example.com/dedicated", "value": "stream",
                                 "effect": "NoExecute", "tolerationSeconds": 60}]),
], ids=["equal-other-units", "limit-above", "fractional-gi", "limits-only", "requests-only",
        "extended-equal", "extended-in-k", "image-digest", "dotfile-key", "name-a", "kafka",
        "kafka-ipv6-long-secret", "kafka-plaintext", "kafka-two-groups", "autoscale",
        "stateless", "node-selector", "tolerations"])
def test_good_values_are_accepted_and_so_are_their_children(crd: ControlPlane,
                                                             mutate: Mut) -> None:
    obj = named("a")
    mutate(obj["spec"])
    code, err = apply(crd, obj)
    assert code == 0, err
    for kind in ("Deployment", "StatefulSet", "Service"):
        code, err = apply_children(crd, rendered(obj, kind))
        assert code == 0, f"{kind}: {err}"


def test_autoscale_defaults_and_replicas_left_out(crd: ControlPlane) -> None:
    obj = valid()
    obj["metadata"]["name"] = "autoscaled"
    del obj["spec"]["executors"]["replicas"]
    obj["spec"]["executors"]["autoscale"] = {"maxReplicas": 6}
    proc = crd.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-",
                       stdin=yaml.safe_dump(obj))
    spec = json.loads(proc.stdout)["spec"]
    assert spec["executors"]["autoscale"] == {
        "minReplicas": 1, "maxReplicas": 6, "targetLagSeconds": 30,
        "scaleUpWindowSeconds": 60, "scaleDownWindowSeconds": 300}
    assert "replicas" not in spec["executors"]
    assert spec["upgradeMode"] == "last-state"
    # The StatefulSet rendered from it is taken, with minReplicas pods.
    (sts,) = rendered(obj, "StatefulSet")
    assert sts["spec"]["replicas"] == 1
    code, err = apply_children(crd, [sts])
    assert code == 0, err


def test_the_driver_of_a_kafka_app_is_taken_as_rendered(crd: ControlPlane) -> None:
    obj = valid()
    kafka()(obj["spec"])
    obj["spec"]["upgradeMode"] = "stateless"
    (dep,) = rendered(obj, "Deployment")
    proc = crd.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-",
                       stdin=yaml.safe_dump(dep))
    pod = json.loads(proc.stdout)["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"].startswith("kafka-")]
    assert volume["secret"]["secretName"] == "kafka-creds"
    assert volume["secret"]["defaultMode"] == 0o440
    (driver,) = pod["containers"]
    assert {"name": volume["name"], "mountPath": "/var/run/neptune/kafka/kafka-creds",
            "readOnly": True} in driver["volumeMounts"]
    env = {e["name"]: e.get("value") for e in driver["env"]}
    assert env["NEPTUNE_UPGRADE_MODE"] == "stateless"
    assert env["NEPTUNE_SPEC_GENERATION"] == "1"  # valid() has no generation: a new object's


def old_crd() -> tuple[dict[str, Any], dict[str, Any]]:
    """(the CRD as generated, the same with jobs[].source a name, as before sources were
    objects)."""
    current = yaml.safe_load((ROOT / "crds" / "continuousapplication.yaml").read_text())
    old = copy.deepcopy(current)
    (version,) = old["spec"]["versions"]
    job = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["jobs"]
    job["items"]["properties"]["source"] = {"type": "string", "maxLength": 253,
                                            "description": "A source name."}
    job["items"]["x-kubernetes-validations"] = [
        r for r in job["items"]["x-kubernetes-validations"] if "source" not in r["rule"]]
    job["x-kubernetes-validations"] = [
        r for r in job["x-kubernetes-validations"] if "source" not in r["rule"]]
    return current, old


def test_an_object_stored_with_a_source_name_needs_the_migration(crd: ControlPlane) -> None:
    """Before sources were objects, `source: http` was a string. The API server keeps such
    objects, but with the new schema every write to them (status and annotations too) fails
    until the source is an object: the operator's migration (migrate.py) is that patch."""
    current, old = old_crd()
    obj = valid()
    obj["metadata"]["name"] = "old-source"
    obj["spec"]["jobs"][0]["source"] = "http"
    try:
        crd.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                    stdin=yaml.safe_dump(old))
        wait_for_schema(crd, obj, accepted=True)
        crd.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj))
    finally:
        crd.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                    stdin=yaml.safe_dump(current))
    try:
        other = copy.deepcopy(obj)
        other["metadata"]["name"] = "new-source"
        wait_for_schema(crd, other, accepted=False)  # a new object needs the object form
        stored = crd.get("capp", "old-source", NS)
        assert stored is not None and stored["spec"]["jobs"][0]["source"] == "http"
        proc = crd.kubectl("patch", "capp", "old-source", "-n", NS, "--subresource=status",
                           "--type", "merge", "-p", '{"status": {"phase": "Running"}}',
                           check=False)
        assert proc.returncode != 0 and "spec.jobs[0].source" in proc.stderr, proc.stderr
        ops = migrate.source_patch(stored["spec"])
        assert ops is not None
        crd.kubectl("patch", "capp", "old-source", "-n", NS, "--type", "json",
                    "-p", json.dumps(ops))
        stored = crd.get("capp", "old-source", NS)
        assert stored is not None and stored["spec"]["jobs"][0]["source"] == {"http": {}}
        crd.kubectl("patch", "capp", "old-source", "-n", NS, "--subresource=status",
                    "--type", "merge", "-p", '{"status": {"phase": "Running"}}')
    finally:
        crd.kubectl("delete", "capp", "old-source", "-n", NS, "--wait=true")


def wait_for_schema(cp: ControlPlane, obj: dict[str, Any], accepted: bool) -> None:
    """The API server takes a CRD's new schema within moments, not at once."""
    deadline = time.monotonic() + 30
    while True:
        code, err = apply(cp, obj)
        if (code == 0) is accepted:
            return
        assert time.monotonic() < deadline, f"schema not in effect: {err}"
        time.sleep(0.3)


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
    for field in ("executors", "jobs", "policy", "suspend", "monitoring", "upgradeMode"):
        assert field in out
    # kubectl wraps descriptions: compare with the whitespace folded.
    out = " ".join(crd.kubectl("explain", "capp.spec.jobs.source.kafka").stdout.split())
    for field in ("bootstrapServers", "topic", "group", "secretRef", "never from the spec"):
        assert field in out
    out = " ".join(crd.kubectl("explain", "capp.spec.executors.autoscale").stdout.split())
    for field in ("minReplicas", "maxReplicas", "targetLagSeconds", "owns executors.replicas"):
        assert field in out


def test_printer_columns_and_short_name(crd: ControlPlane) -> None:
    obj = valid()
    obj["metadata"]["name"] = "columns"
    crd.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj))
    out = crd.kubectl("get", "capp", "columns", "-n", NS).stdout.splitlines()[0].split()
    assert out == ["NAME", "PHASE", "EXECUTORS", "WORST-P99/SLO", "AGE"]
    crd.kubectl("delete", "capp", "columns", "-n", NS)
