"""render: spec -> child manifests."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from neptune_operator import render
from neptune_operator.render import RenderContext

from .op_helpers import pod_specs, restricted_violations

CTX = RenderContext(secret_hex="ab" * 32, priority_class="neptune-normal",
                    priorities={"score": 12, "train": 0}, monitoring_namespace="mon")


def by_kind(manifests: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def test_children_names_and_kinds(capp: dict[str, Any]) -> None:
    kinds = sorted(by_kind(render.render(capp, CTX)))
    assert kinds == sorted([
        ("Secret", "fraud-secret"), ("Secret", "fraud-ingest-token"), ("ConfigMap", "fraud-config"),
        ("NetworkPolicy", "fraud"), ("Service", "fraud-driver"),
        ("Deployment", "fraud-driver"), ("Service", "fraud-executor"),
        ("StatefulSet", "fraud-executor"), ("PodMonitor", "fraud"),
    ])


def test_pod_monitor_is_optional(capp: dict[str, Any]) -> None:
    capp["spec"]["monitoring"]["podMonitor"] = False
    assert "PodMonitor" not in {m["kind"] for m in render.render(capp, CTX)}
    del capp["spec"]["monitoring"]
    assert "PodMonitor" not in {m["kind"] for m in render.render(capp, CTX)}


def test_every_child_is_owned_and_namespaced(capp: dict[str, Any]) -> None:
    for m in render.render(capp, CTX):
        assert m["metadata"]["namespace"] == "team-a"
        (ref,) = m["metadata"]["ownerReferences"]
        assert ref == {"apiVersion": "neptune.dev/v1alpha1", "kind": "ContinuousApplication",
                       "name": "fraud", "uid": "1234-abcd", "controller": True,
                       "blockOwnerDeletion": True}


@pytest.mark.parametrize("app_source", [
    {"module": "examples.fraud"},
    {"configMap": {"name": "fraud-src", "key": "fraud.py"}},
])
def test_every_pod_passes_restricted(capp: dict[str, Any], app_source: dict[str, Any]) -> None:
    capp["spec"]["app"] = app_source
    pods = list(pod_specs(render.render(capp, CTX)))
    assert len(pods) == 2
    for name, pod in pods:
        assert restricted_violations(pod) == [], name
        assert pod["automountServiceAccountToken"] is False
        mounts = {m["mountPath"] for c in pod["containers"] for m in c["volumeMounts"]}
        assert "/tmp" in mounts, name


def test_restricted_checker_catches_a_violation(capp: dict[str, Any]) -> None:
    # Guard against a checker that passes everything.
    _, pod = next(pod_specs(render.render(capp, CTX)))
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    del pod["containers"][0]["securityContext"]["capabilities"]
    assert len(restricted_violations(pod)) == 2


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_driver_runtime_contract(capp: dict[str, Any]) -> None:
    dep = by_kind(render.render(capp, CTX))[("Deployment", "fraud-driver")]
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert dep["spec"]["replicas"] == 1
    pod = dep["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "neptune-normal"
    (c,) = pod["containers"]
    assert c["args"] == ["driver"]
    e = env(c)
    assert e["NEPTUNE_APP"] == "examples.fraud"
    assert e["NEPTUNE_SECRET"] == {"secretKeyRef": {"name": "fraud-secret", "key": "secret"}}
    assert e["NEPTUNE_PORT"] == "7077"
    assert e["NEPTUNE_HTTP_PORT"] == "8080"
    assert e["NEPTUNE_POLICY"] == "neptune"
    assert e["NEPTUNE_PRIORITIES_FILE"] == "/etc/neptune/priorities.json"
    config_mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
    # subPath would freeze the file: ConfigMap updates only reach whole-volume mounts.
    assert "subPath" not in config_mount
    assert c["resources"] == {"requests": {"cpu": "500m", "memory": "256Mi"}}


def test_executor_runs_one_process_per_slot(capp: dict[str, Any]) -> None:
    sts = by_kind(render.render(capp, CTX))[("StatefulSet", "fraud-executor")]
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == "fraud-executor"
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["executor"]
    e = env(c)
    assert e["NEPTUNE_SLOTS"] == "2"
    assert e["NEPTUNE_METRICS_PORT"] == "9090"
    assert e["NEPTUNE_EXECUTOR_NAME"] == "$(POD_NAME)"
    assert e["NEPTUNE_DRIVER"] == "fraud-driver.$(POD_NAMESPACE).svc:7077"
    assert e["NEPTUNE_SECRET"] == {"secretKeyRef": {"name": "fraud-secret", "key": "secret"}}
    # POD_NAME / POD_NAMESPACE must be defined before the variables that reference them.
    names = [x["name"] for x in c["env"]]
    assert names.index("POD_NAME") < names.index("NEPTUNE_EXECUTOR_NAME")
    assert names.index("POD_NAMESPACE") < names.index("NEPTUNE_DRIVER")
    assert c["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert c["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    svc = by_kind(render.render(capp, CTX))[("Service", "fraud-executor")]
    assert svc["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in svc["spec"]["ports"]] == [9090]


def test_suspend_scales_workloads_to_zero(capp: dict[str, Any]) -> None:
    capp["spec"]["suspend"] = True
    children = by_kind(render.render(capp, CTX))
    assert children[("Deployment", "fraud-driver")]["spec"]["replicas"] == 0
    assert children[("StatefulSet", "fraud-executor")]["spec"]["replicas"] == 0
    assert ("Secret", "fraud-secret") in children  # the resource and its secret are kept


def test_configmap_app_source(capp: dict[str, Any]) -> None:
    capp["spec"]["app"] = {"configMap": {"name": "fraud-src", "key": "fraud.py"}}
    sts = by_kind(render.render(capp, CTX))[("StatefulSet", "fraud-executor")]
    pod = sts["spec"]["template"]["spec"]
    assert env(pod["containers"][0])["NEPTUNE_APP"] == "/app/source/fraud.py"
    vol = next(v for v in pod["volumes"] if v["name"] == "app-source")
    assert vol["configMap"]["name"] == "fraud-src"


def test_priorities_and_jobs_documents(capp: dict[str, Any]) -> None:
    cm = by_kind(render.render(capp, CTX))[("ConfigMap", "fraud-config")]
    assert json.loads(cm["data"]["priorities.json"]) == {"jobs": {"score": 12, "train": 0}}
    jobs = json.loads(cm["data"]["jobs.json"])
    assert jobs["jobs"]["score"]["slo"] == "50ms"
    assert jobs["policy"] == "neptune"
    # Unranked jobs get the runtime's defaults.
    default = render.config_map(capp, RenderContext(secret_hex="00"))
    assert json.loads(default["data"]["priorities.json"]) == {"jobs": {"score": 10, "train": 0}}


def test_job_change_changes_only_driver_template(capp: dict[str, Any]) -> None:
    before = by_kind(render.render(capp, CTX))
    capp["spec"]["jobs"][0]["slo"] = "20ms"
    after = by_kind(render.render(capp, CTX))
    drv = ("Deployment", "fraud-driver")
    exe = ("StatefulSet", "fraud-executor")
    assert before[drv]["spec"]["template"] != after[drv]["spec"]["template"]
    assert before[exe] == after[exe]


def test_executors_spread_over_nodes_and_each_pod_goes_where_it_is_told(
        capp: dict[str, Any]) -> None:
    drv, exe = ("Deployment", "fraud-driver"), ("StatefulSet", "fraud-executor")
    plain = by_kind(render.render(capp, CTX))
    for key in (drv, exe):
        pod = plain[key]["spec"]["template"]["spec"]
        assert "nodeSelector" not in pod and "tolerations" not in pod
    spread = plain[exe]["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread == [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                       "whenUnsatisfiable": "ScheduleAnyway",
                       "labelSelector": {"matchLabels": render.selector("fraud", "executor")}}]
    assert "topologySpreadConstraints" not in plain[drv]["spec"]["template"]["spec"]
    tolerate = [{"key": "dedicated", "operator": "Equal", "value": "stream",
                 "effect": "NoSchedule"}]
    capp["spec"]["driver"]["nodeSelector"] = {"neptune.dev/node": "node1"}
    capp["spec"]["executors"].update(nodeSelector={"disk": "ssd"}, tolerations=tolerate)
    placed = by_kind(render.render(capp, CTX))
    driver_pod = placed[drv]["spec"]["template"]["spec"]
    executor_pod = placed[exe]["spec"]["template"]["spec"]
    assert driver_pod["nodeSelector"] == {"neptune.dev/node": "node1"}
    assert "tolerations" not in driver_pod
    assert (executor_pod["nodeSelector"], executor_pod["tolerations"]) == ({"disk": "ssd"},
                                                                           tolerate)
    executor_pod["tolerations"][0]["value"] = "changed"  # a copy: the spec is not shared
    assert tolerate[0]["value"] == "stream"


def test_rendering_is_deterministic(capp: dict[str, Any]) -> None:
    assert render.render(capp, CTX) == render.render(capp, CTX)


def test_network_policy(capp: dict[str, Any]) -> None:
    np = by_kind(render.render(capp, CTX))[("NetworkPolicy", "fraud")]
    spec = np["spec"]
    assert spec["podSelector"] == {"matchLabels": {"neptune.dev/app": "fraud"}}
    own, monitoring = spec["ingress"]
    assert own == {"from": [{"podSelector": {"matchLabels": {"neptune.dev/app": "fraud"}}}]}
    assert monitoring["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "mon"}}}]
    assert {p["port"] for p in monitoring["ports"]} == {8080, 9090}


def test_selectors_match_template_labels(capp: dict[str, Any]) -> None:
    for m in render.render(capp, CTX):
        if m["kind"] in ("Deployment", "StatefulSet"):
            sel = m["spec"]["selector"]["matchLabels"]
            tpl = m["spec"]["template"]["metadata"]["labels"]
            assert sel.items() <= tpl.items()
        if m["kind"] == "Service":
            assert m["spec"]["selector"]["neptune.dev/role"] in ("driver", "executor")


def test_pod_monitor_endpoints(capp: dict[str, Any]) -> None:
    pm = by_kind(render.render(capp, CTX))[("PodMonitor", "fraud")]
    ports = [e["port"] for e in pm["spec"]["podMetricsEndpoints"]]
    assert ports == ["http", "metrics"]
    assert all(e["honorLabels"] for e in pm["spec"]["podMetricsEndpoints"])


def test_secret_carries_given_value(capp: dict[str, Any]) -> None:
    secret = by_kind(render.render(capp, CTX))[("Secret", "fraud-secret")]
    assert secret["stringData"] == {"secret": "ab" * 32}


def test_network_policy_lets_the_operator_read_status(capp: dict[str, Any]) -> None:
    ctx = RenderContext(secret_hex="00", operator_namespace="neptune-system")
    np = render.network_policy(capp, ctx)
    rule = np["spec"]["ingress"][-1]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    peer = rule["from"][0]
    # Both selectors in one peer: the operator's pods in the operator's namespace only.
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "neptune-system"}
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "neptune-operator"}
    assert len(render.network_policy(capp, RenderContext(secret_hex="00"))["spec"]["ingress"]) == 2


def test_pods_carry_the_prometheus_scrape_annotations(capp: dict[str, Any]) -> None:
    children = by_kind(render.render(capp, CTX))
    driver = children[("Deployment", "fraud-driver")]["spec"]["template"]["metadata"]
    executor = children[("StatefulSet", "fraud-executor")]["spec"]["template"]["metadata"]
    assert driver["annotations"]["prometheus.io/scrape"] == "true"
    assert driver["annotations"]["prometheus.io/port"] == "8080"
    assert executor["annotations"] == {"prometheus.io/scrape": "true",
                                       "prometheus.io/port": "9090"}


def driver_pod(capp: dict[str, Any]) -> dict[str, Any]:
    dep = by_kind(render.render(capp, CTX))[("Deployment", "fraud-driver")]
    pod: dict[str, Any] = dep["spec"]["template"]["spec"]
    return pod


def state_volume(pod: dict[str, Any]) -> dict[str, Any]:
    (c,) = pod["containers"]
    assert env(c)["NEPTUNE_STATE_DIR"] == "/var/lib/neptune/state"
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/var/lib/neptune/state"]
    assert not mount.get("readOnly")
    vol: dict[str, Any] = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    return vol


def test_driver_state_on_an_empty_dir_without_storage(capp: dict[str, Any]) -> None:
    assert "storage" not in capp["spec"]["driver"]
    assert state_volume(driver_pod(capp)) == {"name": "state", "emptyDir": {}}
    assert "PersistentVolumeClaim" not in {m["kind"] for m in render.render(capp, CTX)}


def test_driver_state_claim_with_storage(capp: dict[str, Any]) -> None:
    capp["spec"]["driver"]["storage"] = {"size": "2Gi", "storageClassName": "fast"}
    children = render.render(capp, CTX)
    claim = by_kind(children)[("PersistentVolumeClaim", "fraud-driver-state")]
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "2Gi"}},
                             "storageClassName": "fast"}
    assert claim["metadata"]["labels"] == {
        "app.kubernetes.io/name": "neptune", "app.kubernetes.io/instance": "fraud",
        "neptune.dev/app": "fraud", "app.kubernetes.io/managed-by": "neptune-operator",
        "neptune.dev/role": "driver"}
    # Owned like every child: deleting the app deletes the claim (garbage collection).
    assert claim["metadata"]["ownerReferences"][0]["uid"] == "1234-abcd"
    # Applied before the Deployment whose pods mount it.
    order = [(m["kind"], m["metadata"]["name"]) for m in children]
    assert order.index(("PersistentVolumeClaim", "fraud-driver-state")) < order.index(
        ("Deployment", "fraud-driver"))
    pod = driver_pod(capp)
    assert state_volume(pod) == {"name": "state", "persistentVolumeClaim": {
        "claimName": "fraud-driver-state"}}
    # Writable by the non-root user; one driver at a time on the ReadWriteOnce volume.
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    assert restricted_violations(pod) == []
    dep = by_kind(children)[("Deployment", "fraud-driver")]
    assert dep["spec"]["strategy"] == {"type": "Recreate"}


def test_driver_state_claim_defaults(capp: dict[str, Any]) -> None:
    # The API server defaults size; an int quantity is written as Kubernetes writes it.
    capp["spec"]["driver"]["storage"] = {}
    claim = render.driver_state_claim(capp)
    assert claim is not None
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "1Gi"}}}
    capp["spec"]["driver"]["storage"] = {"size": 1073741824}
    claim = render.driver_state_claim(capp)
    assert claim is not None
    assert claim["spec"]["resources"]["requests"]["storage"] == "1073741824"


def test_storage_changes_only_the_driver(capp: dict[str, Any]) -> None:
    before = by_kind(render.render(capp, CTX))
    capp["spec"]["driver"]["storage"] = {"size": "1Gi"}
    after = by_kind(render.render(capp, CTX))
    assert before[("StatefulSet", "fraud-executor")] == after[("StatefulSet", "fraud-executor")]
    executor_pod = after[("StatefulSet", "fraud-executor")]["spec"]["template"]["spec"]
    assert "fsGroupChangePolicy" not in executor_pod["securityContext"]


TOKENS = {"ingest": "i" * 43, "read": "r" * 43}


def test_token_secret_carries_the_given_tokens(capp: dict[str, Any]) -> None:
    secret = render.token_secret(capp, RenderContext(secret_hex="", tokens=TOKENS))
    assert secret["metadata"]["name"] == "fraud-ingest-token"
    assert secret["stringData"] == {"ingest": "i" * 43, "read": "r" * 43}
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "1234-abcd"
    assert secret["metadata"]["labels"]["neptune.dev/app"] == "fraud"
    # Applied before the Deployment whose pods mount it.
    order = [(m["kind"], m["metadata"]["name"]) for m in render.render(capp, CTX)]
    assert order.index(("Secret", "fraud-ingest-token")) < order.index(
        ("Deployment", "fraud-driver"))


def test_driver_mounts_its_tokens_read_only(capp: dict[str, Any]) -> None:
    pod = driver_pod(capp)
    (c,) = pod["containers"]
    assert env(c)["NEPTUNE_TOKENS_DIR"] == "/var/run/neptune/tokens"
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/var/run/neptune/tokens"]
    # Read-only, and the whole Secret: a subPath mount would never see a rotation.
    assert mount == {"name": "tokens", "mountPath": "/var/run/neptune/tokens", "readOnly": True}
    (vol,) = [v for v in pod["volumes"] if v["name"] == "tokens"]
    assert vol == {"name": "tokens", "secret": {"secretName": "fraud-ingest-token",
                                                "defaultMode": 0o440}}
    # The files are root-owned: the driver's user reads them through the pod's fsGroup, which
    # the kubelet applies to secret volumes (group read bits included).
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"] == 10001
    assert vol["secret"]["defaultMode"] & 0o007 == 0  # nothing for others
    assert restricted_violations(pod) == []


def test_executors_get_no_http_tokens(capp: dict[str, Any]) -> None:
    sts = by_kind(render.render(capp, CTX))[("StatefulSet", "fraud-executor")]
    pod = sts["spec"]["template"]["spec"]
    assert "tokens" not in {v["name"] for v in pod["volumes"]}
    assert "NEPTUNE_TOKENS_DIR" not in env(pod["containers"][0])


KAFKA = {"bootstrapServers": "kafka-0.kafka:9092", "topic": "transactions", "group": "fraud",
         "secretRef": {"name": "kafka-creds"}}


def with_kafka(capp: dict[str, Any], **extra: Any) -> dict[str, Any]:
    capp["spec"]["jobs"][0]["source"] = {"kafka": {**KAFKA, **extra}}
    return capp


def test_kafka_secret_is_mounted_read_only_in_the_driver_only(capp: dict[str, Any]) -> None:
    children = by_kind(render.render(with_kafka(capp), CTX))
    pod = children[("Deployment", "fraud-driver")]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"].startswith("kafka-")]
    assert volume["secret"] == {"secretName": "kafka-creds", "defaultMode": 0o440}
    assert "optional" not in volume["secret"]  # no credentials: the pod waits, never runs
    (driver,) = pod["containers"]
    assert {"name": volume["name"], "mountPath": "/var/run/neptune/kafka/kafka-creds",
            "readOnly": True} in driver["volumeMounts"]
    assert restricted_violations(pod) == []
    # Nothing of the Secret in the pod's environment or the ConfigMap, only its path.
    assert "kafka-creds" not in json.dumps(driver["env"])
    jobs = json.loads(children[("ConfigMap", "fraud-config")]["data"]["jobs.json"])["jobs"]
    assert jobs["score"]["source"] == {"kafka": {
        **KAFKA, "secretDir": "/var/run/neptune/kafka/kafka-creds"}}
    sts_pod = children[("StatefulSet", "fraud-executor")]["spec"]["template"]["spec"]
    assert not [v for v in sts_pod["volumes"] if "secret" in v]


def test_kafka_secrets_are_mounted_once_each(capp: dict[str, Any]) -> None:
    long_name = "kafka." + "a" * 200  # a subdomain: too long for a volume name
    capp["spec"]["jobs"] = [
        {"name": "a", "kind": "stream", "slo": "1s", "source": {"kafka": {**KAFKA}}},
        {"name": "b", "kind": "stream", "slo": "1s",
         "source": {"kafka": {**KAFKA, "group": "other"}}},
        {"name": "c", "kind": "stream", "slo": "1s",
         "source": {"kafka": {**KAFKA, "secretRef": {"name": long_name}}}},
        {"name": "d", "kind": "stream", "slo": "1s",
         "source": {"kafka": {k: v for k, v in KAFKA.items() if k != "secretRef"}}},
        {"name": "e", "kind": "stream", "slo": "1s", "source": {"http": {}}},
    ]
    assert render.kafka_secrets(capp["spec"]) == ["kafka-creds", long_name]
    volumes, mounts = render.kafka_volumes(capp["spec"])
    assert [v["secret"]["secretName"] for v in volumes] == ["kafka-creds", long_name]
    assert all(len(v["name"]) <= 63 for v in volumes)
    assert len({v["name"] for v in volumes}) == 2
    assert [m["mountPath"] for m in mounts] == ["/var/run/neptune/kafka/kafka-creds",
                                                f"/var/run/neptune/kafka/{long_name}"]
    jobs = render.jobs_document(capp["spec"])["jobs"]
    assert "secretDir" not in jobs["d"]["source"]["kafka"]
    assert jobs["e"]["source"] == {"http": {}}


def test_an_old_objects_source_name_is_passed_on(capp: dict[str, Any]) -> None:
    # Before sources were objects the CRD took a name; the API server keeps such objects.
    capp["spec"]["jobs"][0]["source"] = "http"
    assert render.kafka_secrets(capp["spec"]) == []
    assert render.jobs_document(capp["spec"])["jobs"]["score"]["source"] == "http"


def test_upgrade_mode_and_generation_reach_the_driver(capp: dict[str, Any]) -> None:
    dep = by_kind(render.render(capp, CTX))[("Deployment", "fraud-driver")]
    (driver,) = dep["spec"]["template"]["spec"]["containers"]
    assert env(driver)["NEPTUNE_UPGRADE_MODE"] == "last-state"  # the default
    assert env(driver)["NEPTUNE_SPEC_GENERATION"] == "3"  # metadata.generation
    capp["spec"]["upgradeMode"] = "stateless"
    ctx = RenderContext(secret_hex="", driver_revision=render.DriverRevision("2", "last-state"))
    dep = by_kind(render.render(capp, ctx))[("Deployment", "fraud-driver")]
    (driver,) = dep["spec"]["template"]["spec"]["containers"]
    assert (env(driver)["NEPTUNE_UPGRADE_MODE"], env(driver)["NEPTUNE_SPEC_GENERATION"]) == (
        "last-state", "2")


def live_driver(obj: dict[str, Any]) -> dict[str, Any]:
    return render.driver_deployment(obj, CTX)


def test_driver_revision_changes_only_with_what_the_driver_runs(capp: dict[str, Any]) -> None:
    assert render.driver_revision(capp, None) == render.DriverRevision("3", "last-state")
    live = live_driver(capp)
    # A scale, a priority change, autoscale, monitoring, upgradeMode: the generation counts
    # them, the driver's template does not change.
    later = copy.deepcopy(capp)
    later["metadata"]["generation"] = 9
    later["spec"]["executors"]["replicas"] = 7
    later["spec"]["priority"] = 900
    later["spec"]["monitoring"] = {"podMonitor": False}
    later["spec"]["upgradeMode"] = "stateless"
    later["spec"]["executors"]["autoscale"] = {"maxReplicas": 9}
    later["spec"]["executors"]["resources"] = {"requests": {"cpu": "2"}}  # executors only
    # where the driver runs: a move, not an upgrade
    later["spec"]["driver"]["nodeSelector"] = {"neptune.dev/node": "node2"}
    later["spec"]["driver"]["tolerations"] = [{"operator": "Exists"}]
    kept = render.driver_revision(later, live)
    assert kept == render.DriverRevision("3", "last-state")
    assert render.driver_spec_hash(later["spec"]) == render.driver_spec_hash(capp["spec"])
    moved_only = copy.deepcopy(capp)
    moved_only["spec"]["driver"] = {"nodeSelector": {"disk": "ssd"}}
    unset = copy.deepcopy(capp)
    del unset["spec"]["driver"]
    assert render.driver_spec_hash(moved_only["spec"]) == render.driver_spec_hash(unset["spec"])
    # What the driver runs changes: an upgrade, with the mode of the resource as it is now.
    for field, value in (("image", "neptune:v2"), ("jobs", [{"name": "score",
                                                            "kind": "stream", "slo": "9ms"}]),
                         ("policy", "fair"), ("app", {"module": "other"}),
                         ("driver", {"resources": {"limits": {"memory": "1Gi"}}})):
        changed = copy.deepcopy(later)
        changed["spec"][field] = value
        assert render.driver_revision(changed, live) == render.DriverRevision(
            "9", "stateless"), field


def test_driver_revision_of_a_driver_from_an_older_operator(capp: dict[str, Any]) -> None:
    live = live_driver(capp)
    del live["spec"]["template"]["metadata"]["annotations"]["neptune.dev/driver-spec-hash"]
    capp["metadata"]["generation"] = 5
    assert render.driver_revision(capp, live) == render.DriverRevision("5", "last-state")
    live = live_driver(capp)
    (driver,) = live["spec"]["template"]["spec"]["containers"]
    driver["env"] = [e for e in driver["env"] if e["name"] != "NEPTUNE_SPEC_GENERATION"]
    capp["metadata"]["generation"] = 6
    assert render.driver_revision(capp, live).generation == "6"


def test_a_scale_renders_the_same_driver(capp: dict[str, Any]) -> None:
    live = live_driver(capp)
    scaled = copy.deepcopy(capp)
    scaled["spec"]["executors"]["replicas"] = 9
    scaled["metadata"]["generation"] = 4
    ctx = RenderContext(secret_hex="ab" * 32, priority_class="neptune-normal",
                        driver_revision=render.driver_revision(scaled, live))
    assert render.driver_deployment(scaled, ctx) == live


def test_autoscaled_replicas(capp: dict[str, Any]) -> None:
    del capp["spec"]["executors"]["replicas"]
    capp["spec"]["executors"]["autoscale"] = {"minReplicas": 2, "maxReplicas": 6}
    sts = by_kind(render.render(capp, CTX))[("StatefulSet", "fraud-executor")]
    assert sts["spec"]["replicas"] == 2  # until the autoscaler writes executors.replicas
    capp["spec"]["executors"]["replicas"] = 4
    assert render.executor_replicas(capp["spec"]) == 4
    capp["spec"]["suspend"] = True
    assert by_kind(render.render(capp, CTX))[("StatefulSet", "fraud-executor")][
        "spec"]["replicas"] == 0
