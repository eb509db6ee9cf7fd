"""Spec -> child manifests. Pure: the same resource and context always give the same dicts.

The handlers apply these with server-side apply, so rendering the full desired state on
every reconcile is both simple and idempotent (a restarted operator converges, no duplicates).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .constants import (
    API_VERSION,
    CONFIG_MOUNT,
    DEFAULT_STATE_SIZE,
    DEFAULT_UPGRADE_MODE,
    DRIVER_SPEC_ANNOTATION,
    EXECUTOR_CONTAINER,
    EXECUTOR_PORT,
    HTTP_PORT,
    JOBS_FILE,
    JOBS_HASH_ANNOTATION,
    KAFKA_SECRETS_DIR,
    KIND,
    LABEL_APP,
    LABEL_MANAGED_BY,
    LABEL_ROLE,
    MANAGER,
    METRICS_PORT,
    PRIORITIES_FILE,
    RUN_AS_UID,
    STATE_DIR,
    TOKENS_DIR,
    TOKENS_FILE_MODE,
)

Manifest = dict[str, Any]
APP_SOURCE_MOUNT = "/app/source"


@dataclass(frozen=True)
class RenderContext:
    """Everything rendering needs besides the resource itself."""

    secret_hex: str  # the app's HMAC secret; generated once by the handler and kept
    # The driver's HTTP tokens {"ingest": ..., "read": ...}; generated once and kept, like the
    # HMAC secret (only rendered into the Secret when it is created).
    tokens: Mapping[str, str] = field(default_factory=dict)
    priority_class: str | None = None  # from ranking; None: the cluster default
    priorities: Mapping[str, int] = field(default_factory=dict)  # job -> runtime priority
    monitoring_namespace: str = "monitoring"
    # The operator reads the driver's /status; None leaves that path closed (tests, dev).
    operator_namespace: str | None = None
    # NEPTUNE_SPEC_GENERATION and NEPTUNE_UPGRADE_MODE of the driver (see driver_revision);
    # None: those of the resource as it is (a new app, and the pure tests).
    driver_revision: DriverRevision | None = None


@dataclass(frozen=True)
class DriverRevision:
    """What the driver is told about upgrades: the spec generation it runs and the upgrade
    mode to start it with. The driver compares the generation with the one it left in its
    state directory: another one is an upgrade (stateless: keyed state starts empty), the same
    one a restart (state kept either way)."""

    generation: str
    upgrade_mode: str


@dataclass(frozen=True)
class Names:
    app: str

    @property
    def driver(self) -> str:
        return f"{self.app}-driver"

    @property
    def executor(self) -> str:
        return f"{self.app}-executor"

    @property
    def secret(self) -> str:
        return f"{self.app}-secret"

    @property
    def tokens(self) -> str:
        return f"{self.app}-ingest-token"

    @property
    def config(self) -> str:
        return f"{self.app}-config"

    @property
    def driver_state(self) -> str:
        return f"{self.app}-driver-state"


def labels(app: str, role: str | None = None) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": "neptune",
        "app.kubernetes.io/instance": app,
        LABEL_APP: app,
        LABEL_MANAGED_BY: MANAGER,
    }
    if role is not None:
        out[LABEL_ROLE] = role
    return out


def selector(app: str, role: str) -> dict[str, str]:
    return {LABEL_APP: app, LABEL_ROLE: role}


def executor_selector_string(app: str) -> str:
    return ",".join(f"{k}={v}" for k, v in selector(app, "executor").items())


def app_selector_string(app: str) -> str:
    """Every pod of the app: its driver's and its executors'."""
    return f"{LABEL_APP}={app}"


def owner_reference(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(obj: Mapping[str, Any], name: str, role: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": obj["metadata"]["namespace"],
        "labels": labels(obj["metadata"]["name"], role),
        "ownerReferences": [owner_reference(obj)],
    }


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# -- pod security: the `restricted` Pod Security Standard ------------------------------------
def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_UID,
        "runAsGroup": RUN_AS_UID,
        "fsGroup": RUN_AS_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _resources(spec_part: Mapping[str, Any] | None) -> dict[str, Any]:
    res = (spec_part or {}).get("resources") or {}
    return {k: dict(v) for k, v in res.items() if k in ("requests", "limits") and v}


def _app_env_and_mounts(spec: Mapping[str, Any]) -> tuple[list[dict[str, Any]],
                                                           list[dict[str, Any]],
                                                           list[dict[str, Any]]]:
    """NEPTUNE_APP plus the volume/mount a ConfigMap-held module needs."""
    app = spec["app"]
    if "configMap" in app:
        cm = app["configMap"]
        env = [{"name": "NEPTUNE_APP", "value": f"{APP_SOURCE_MOUNT}/{cm['key']}"}]
        volumes = [{"name": "app-source",
                    "configMap": {"name": cm["name"], "items": [{"key": cm["key"],
                                                                 "path": cm["key"]}]}}]
        mounts = [{"name": "app-source", "mountPath": APP_SOURCE_MOUNT, "readOnly": True}]
        return env, volumes, mounts
    return [{"name": "NEPTUNE_APP", "value": app["module"]}], [], []


def _common_env(names: Names) -> list[dict[str, Any]]:
    return [
        {"name": "NEPTUNE_SECRET",
         "valueFrom": {"secretKeyRef": {"name": names.secret, "key": "secret"}}},
        # Read-only root filesystem: no bytecode cache, and HOME on the writable /tmp.
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
    ]


def _pod_spec(ctx: RenderContext, containers: list[dict[str, Any]],
              volumes: list[dict[str, Any]],
              spec_part: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A pod's spec; `spec_part` (spec.driver or spec.executors) may place it on nodes."""
    spec: dict[str, Any] = {
        # App pods never talk to the API server.
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(),
        "containers": containers,
        "volumes": [{"name": "tmp", "emptyDir": {}}, *volumes],
        "terminationGracePeriodSeconds": 30,
    }
    if ctx.priority_class:
        spec["priorityClassName"] = ctx.priority_class
    for name in PLACEMENT_FIELDS:
        value = (spec_part or {}).get(name)
        if value:
            spec[name] = copy.deepcopy(value)
    return spec


def scrape_annotations(port: int) -> dict[str, str]:
    """The common Prometheus pod-discovery convention, for clusters without the Prometheus
    Operator (the PodMonitor covers those with it)."""
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port)}


def kafka_source(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A job's spec.jobs[].source.kafka, or None (no source, http, or an old object's
    source name, which the CRD took as a string before sources became objects)."""
    source = job.get("source")
    kafka = source.get("kafka") if isinstance(source, Mapping) else None
    return kafka if isinstance(kafka, Mapping) else None


def kafka_secrets(spec: Mapping[str, Any]) -> list[str]:
    """The Secrets the app's Kafka sources name (secretRef), each once, sorted."""
    names = {str(k["secretRef"]["name"]) for j in spec.get("jobs") or []
             if (k := kafka_source(j)) is not None and (k.get("secretRef") or {}).get("name")}
    return sorted(names)


def kafka_secret_dir(secret: str) -> str:
    return f"{KAFKA_SECRETS_DIR}/{secret}"


def kafka_volume_name(secret: str) -> str:
    # A volume name is a DNS label of at most 63 characters; a Secret's name is a subdomain
    # of up to 253: a digest keeps it short and stable.
    return "kafka-" + hashlib.sha256(secret.encode()).hexdigest()[:12]


def _job_settings(job: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in job.items() if k != "name"}
    kafka = kafka_source(job)
    if kafka is not None and (kafka.get("secretRef") or {}).get("name"):
        # Where the driver finds the Secret's files (jobconfig turns them into settings).
        out["source"] = {"kafka": {**kafka,
                                   "secretDir": kafka_secret_dir(kafka["secretRef"]["name"])}}
    return out


def jobs_document(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Job settings as the driver reads them (NEPTUNE_JOBS_FILE)."""
    return {"jobs": {j["name"]: _job_settings(j) for j in spec["jobs"]},
            "policy": spec.get("policy", "neptune")}


def executor_replicas(spec: Mapping[str, Any]) -> int:
    """Executor pods wanted (suspension aside): executors.replicas, which the autoscaler
    writes while executors.autoscale is set; before its first write, autoscale.minReplicas."""
    execs = spec.get("executors") or {}
    if execs.get("replicas") is not None:
        return int(execs["replicas"])
    return int((execs.get("autoscale") or {}).get("minReplicas", 1))


# What the driver runs: a change of any of these restarts it with another program or other
# settings, which is an upgrade. Not in it: executor-only fields (the driver keeps running),
# replicas, priority, monitoring, suspend (a resume is a restart of the same spec),
# upgradeMode itself (it says what the next upgrade does) and autoscale.
# Nor where the driver runs: a move to another node is a restart of the same spec.
DRIVER_SPEC_FIELDS = ("image", "imagePullPolicy", "app", "driver", "jobs", "policy")
PLACEMENT_FIELDS = ("nodeSelector", "tolerations")


def driver_spec_hash(spec: Mapping[str, Any]) -> str:
    what = {k: spec.get(k) for k in DRIVER_SPEC_FIELDS}
    driver = what["driver"]
    if isinstance(driver, Mapping) and any(k in driver for k in PLACEMENT_FIELDS):
        runs = {k: v for k, v in driver.items() if k not in PLACEMENT_FIELDS}
        what["driver"] = runs or None  # as if placement had never been set
    return _hash(what)


def _env_value(container: Mapping[str, Any], name: str) -> str | None:
    for env in container.get("env") or []:
        if env.get("name") == name and isinstance(env.get("value"), str):
            return str(env["value"])
    return None


def driver_revision(obj: Mapping[str, Any],
                    live: Mapping[str, Any] | None) -> DriverRevision:
    """NEPTUNE_SPEC_GENERATION and NEPTUNE_UPGRADE_MODE for the driver's template, given the
    live driver Deployment (None: there is none yet).

    metadata.generation counts every spec change, a scale and a priority change too: put in
    the template as it is, it would restart the driver on each. So the live template's values
    are kept while what the driver runs (driver_spec_hash) is unchanged, and the resource's
    generation and upgradeMode are taken when it changed (an upgrade: the driver restarts
    anyway). This holds across operator restarts, since the hash is in the live template."""
    fresh = DriverRevision(str(obj["metadata"].get("generation") or 1),
                           str(obj["spec"].get("upgradeMode") or DEFAULT_UPGRADE_MODE))
    if live is None:
        return fresh
    template = (live.get("spec") or {}).get("template") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    if annotations.get(DRIVER_SPEC_ANNOTATION) != driver_spec_hash(obj["spec"]):
        return fresh
    containers = (template.get("spec") or {}).get("containers") or []
    driver = next((c for c in containers if c.get("name") == "driver"), None)
    generation = _env_value(driver or {}, "NEPTUNE_SPEC_GENERATION")
    mode = _env_value(driver or {}, "NEPTUNE_UPGRADE_MODE")
    if generation is None or mode is None:
        return fresh
    return DriverRevision(generation, mode)


def priorities_document(spec: Mapping[str, Any], priorities: Mapping[str, int]) -> dict[str, Any]:
    # Jobs the ranking did not cover keep the runtime's defaults (stream 10, batch 0).
    table = {j["name"]: int(priorities.get(j["name"], 10 if j["kind"] == "stream" else 0))
             for j in spec["jobs"]}
    return {"jobs": dict(sorted(table.items()))}


def driver_storage(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """spec.driver.storage, or None: the driver's state then lives on an emptyDir."""
    storage: Mapping[str, Any] | None = (spec.get("driver") or {}).get("storage")
    return storage


def driver_state_claim(obj: Mapping[str, Any]) -> Manifest | None:
    """The driver's state volume when spec.driver.storage asks for one. ReadWriteOnce: one
    driver at a time, which the Deployment's Recreate strategy guarantees."""
    storage = driver_storage(obj["spec"])
    if storage is None:
        return None
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": str(storage.get("size", DEFAULT_STATE_SIZE))}},
    }
    # Absent: the cluster's default StorageClass (filled in by the API server at creation).
    if storage.get("storageClassName"):
        spec["storageClassName"] = storage["storageClassName"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(obj, Names(obj["metadata"]["name"]).driver_state, "driver"),
        "spec": spec,
    }


def _state_volume(obj: Mapping[str, Any]) -> dict[str, Any]:
    claim = driver_state_claim(obj)
    if claim is None:
        # Survives a container restart (liveness kill, crash), not the pod's deletion.
        return {"name": "state", "emptyDir": {}}
    return {"name": "state",
            "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}


def kafka_volumes(spec: Mapping[str, Any]) -> tuple[list[dict[str, Any]],
                                                    list[dict[str, Any]]]:
    """The Kafka sources' Secrets as read-only files in the driver (the only pod that runs
    sources): volumes and mounts. Not optional: a missing Secret keeps the pod waiting (the
    operator says so in an Event and in the status) rather than starting without
    credentials."""
    volumes, mounts = [], []
    for secret in kafka_secrets(spec):
        name = kafka_volume_name(secret)
        volumes.append({"name": name,
                        "secret": {"secretName": secret, "defaultMode": TOKENS_FILE_MODE}})
        mounts.append({"name": name, "mountPath": kafka_secret_dir(secret), "readOnly": True})
    return volumes, mounts


def driver_deployment(obj: Mapping[str, Any], ctx: RenderContext) -> Manifest:
    spec = obj["spec"]
    names = Names(obj["metadata"]["name"])
    app_env, app_volumes, app_mounts = _app_env_and_mounts(spec)
    kafka_vols, kafka_mounts = kafka_volumes(spec)
    revision = ctx.driver_revision or driver_revision(obj, None)
    container = {
        "name": "driver",
        "image": spec["image"],
        "imagePullPolicy": spec.get("imagePullPolicy", "IfNotPresent"),
        "args": ["driver"],
        "env": [
            *app_env,
            *_common_env(names),
            {"name": "NEPTUNE_PORT", "value": str(EXECUTOR_PORT)},
            {"name": "NEPTUNE_HTTP_PORT", "value": str(HTTP_PORT)},
            {"name": "NEPTUNE_POLICY", "value": spec.get("policy", "neptune")},
            {"name": "NEPTUNE_PRIORITIES_FILE", "value": f"{CONFIG_MOUNT}/{PRIORITIES_FILE}"},
            {"name": "NEPTUNE_JOBS_FILE", "value": f"{CONFIG_MOUNT}/{JOBS_FILE}"},
            # Committed offsets and the ingest log: a new driver resumes from them.
            {"name": "NEPTUNE_STATE_DIR", "value": STATE_DIR},
            # Files `ingest` and `read`: the HTTP tokens, re-read when the kubelet refreshes
            # them after the Secret's values are replaced.
            {"name": "NEPTUNE_TOKENS_DIR", "value": TOKENS_DIR},
            # stateless: a driver of another generation starts its keyed jobs empty.
            {"name": "NEPTUNE_UPGRADE_MODE", "value": revision.upgrade_mode},
            {"name": "NEPTUNE_SPEC_GENERATION", "value": revision.generation},
        ],
        "ports": [
            {"name": "executors", "containerPort": EXECUTOR_PORT, "protocol": "TCP"},
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                           "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                          "periodSeconds": 10, "failureThreshold": 6},
        "resources": _resources(spec.get("driver")),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            # The whole ConfigMap (no subPath) so that priority updates reach the file.
            {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "state", "mountPath": STATE_DIR},
            # The whole Secret (no subPath), or a rotation would never reach the files.
            {"name": "tokens", "mountPath": TOKENS_DIR, "readOnly": True},
            *kafka_mounts,
            *app_mounts,
        ],
    }
    volumes = [{"name": "config", "configMap": {"name": names.config}}, _state_volume(obj),
               tokens_volume(names), *kafka_vols, *app_volumes]
    # Job settings are read at start: their hash in the template restarts the driver on
    # change (the "reload" action) without touching the executors.
    template_annotations = {JOBS_HASH_ANNOTATION: _hash(jobs_document(spec)),
                            DRIVER_SPEC_ANNOTATION: driver_spec_hash(spec),
                            **scrape_annotations(HTTP_PORT)}
    pod = _pod_spec(ctx, [container], volumes, spec.get("driver"))
    # fsGroup (pod_security_context) makes the volume writable by the non-root user; only
    # chown it when its root is not already ours, or every start walks the whole log.
    pod["securityContext"]["fsGroupChangePolicy"] = "OnRootMismatch"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(obj, names.driver, "driver"),
        "spec": {
            "replicas": 0 if spec.get("suspend") else 1,
            # Two drivers would split the executors between them: never overlap.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(names.app, "driver")},
            "template": {
                "metadata": {"labels": labels(names.app, "driver"),
                             "annotations": template_annotations},
                "spec": pod,
            },
        },
    }


def tokens_volume(names: Names) -> dict[str, Any]:
    """The token Secret as files. With the pod's fsGroup the kubelet makes them root:10001 and
    group-readable (see TOKENS_FILE_MODE): the driver's user reads them, no one else."""
    return {"name": "tokens",
            "secret": {"secretName": names.tokens, "defaultMode": TOKENS_FILE_MODE}}


def driver_service(obj: Mapping[str, Any]) -> Manifest:
    names = Names(obj["metadata"]["name"])
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(obj, names.driver, "driver"),
        "spec": {
            "selector": selector(names.app, "driver"),
            "ports": [
                {"name": "executors", "port": EXECUTOR_PORT, "targetPort": "executors"},
                {"name": "http", "port": HTTP_PORT, "targetPort": "http"},
            ],
        },
    }


def executor_container(spec: Mapping[str, Any], names: Names) -> dict[str, Any]:
    app_env, _, app_mounts = _app_env_and_mounts(spec)
    slots = int(spec["executors"].get("slotsPerPod", 1))
    return {
        "name": EXECUTOR_CONTAINER,
        "image": spec["image"],
        "imagePullPolicy": spec.get("imagePullPolicy", "IfNotPresent"),
        "args": ["executor"],
        "env": [
            # Defined first: later values refer to them with $(...).
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE",
             "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            *app_env,
            *_common_env(names),
            {"name": "NEPTUNE_DRIVER",
             "value": f"{names.driver}.$(POD_NAMESPACE).svc:{EXECUTOR_PORT}"},
            # The runtime runs one process per slot (one core each) and names them
            # POD_NAME-0, POD_NAME-1, ...; their metrics are served together on one port.
            {"name": "NEPTUNE_EXECUTOR_NAME", "value": "$(POD_NAME)"},
            {"name": "NEPTUNE_SLOTS", "value": str(slots)},
            {"name": "NEPTUNE_METRICS_PORT", "value": str(METRICS_PORT)},
        ],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": "metrics"}, "periodSeconds": 5},
        "resources": _resources(spec.get("executors")),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *app_mounts],
    }


def executor_statefulset(obj: Mapping[str, Any], ctx: RenderContext) -> Manifest:
    spec = obj["spec"]
    names = Names(obj["metadata"]["name"])
    _, app_volumes, _ = _app_env_and_mounts(spec)
    containers = [executor_container(spec, names)]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(obj, names.executor, "executor"),
        "spec": {
            "replicas": 0 if spec.get("suspend") else executor_replicas(spec),
            "serviceName": names.executor,
            # Executors are independent: start and stop them all at once.
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": selector(names.app, "executor")},
            "template": {
                "metadata": {"labels": labels(names.app, "executor"),
                             "annotations": scrape_annotations(METRICS_PORT)},
                "spec": {
                    **_pod_spec(ctx, containers, app_volumes, spec.get("executors")),
                    # One node's loss takes as few executors as it can (a preference: on
                    # fewer nodes than pods they still all run).
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": selector(names.app, "executor")}}],
                },
            },
        },
    }


def executor_service(obj: Mapping[str, Any]) -> Manifest:
    names = Names(obj["metadata"]["name"])
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(obj, names.executor, "executor"),
        "spec": {
            "clusterIP": "None",
            "selector": selector(names.app, "executor"),
            "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}],
        },
    }


def app_secret(obj: Mapping[str, Any], ctx: RenderContext) -> Manifest:
    names = Names(obj["metadata"]["name"])
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(obj, names.secret),
        "type": "Opaque",
        "stringData": {"secret": ctx.secret_hex},
    }


def token_secret(obj: Mapping[str, Any], ctx: RenderContext) -> Manifest:
    """NAME-ingest-token: the driver's HTTP tokens. Created once; rotating them means replacing
    the values (the operator never rewrites them)."""
    names = Names(obj["metadata"]["name"])
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(obj, names.tokens, "driver"),
        "type": "Opaque",
        "stringData": dict(ctx.tokens),
    }


def config_map(obj: Mapping[str, Any], ctx: RenderContext) -> Manifest:
    spec = obj["spec"]
    names = Names(obj["metadata"]["name"])
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(obj, names.config),
        "data": {
            PRIORITIES_FILE: json.dumps(priorities_document(spec, ctx.priorities),
                                        sort_keys=True),
            JOBS_FILE: json.dumps(jobs_document(spec), sort_keys=True),
        },
    }


def network_policy(obj: Mapping[str, Any], ctx: RenderContext) -> Manifest:
    name = obj["metadata"]["name"]
    metric_ports = [{"protocol": "TCP", "port": HTTP_PORT},
                    {"protocol": "TCP", "port": METRICS_PORT}]
    out: Manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(obj, name),
        "spec": {
            "podSelector": {"matchLabels": {LABEL_APP: name}},
            "policyTypes": ["Ingress"],
            "ingress": [
                # The app's own pods: executors <-> driver, on every port.
                {"from": [{"podSelector": {"matchLabels": {LABEL_APP: name}}}]},
                # The monitoring namespace: scrapes of /metrics and reads of /status only.
                {"from": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": ctx.monitoring_namespace}}}],
                 "ports": metric_ports},
            ],
        },
    }
    if ctx.operator_namespace:
        out["spec"]["ingress"].append({
            "from": [{"namespaceSelector": {"matchLabels": {
                          "kubernetes.io/metadata.name": ctx.operator_namespace}},
                      "podSelector": {"matchLabels": {
                          "app.kubernetes.io/name": "neptune-operator"}}}],
            "ports": [{"protocol": "TCP", "port": HTTP_PORT}],
        })
    return out


def pod_monitor(obj: Mapping[str, Any]) -> Manifest:
    name = obj["metadata"]["name"]
    # honorLabels: the runtime's `job` label (the Neptune job) must win over Prometheus's.
    endpoints = [{"port": "http", "path": "/metrics", "honorLabels": True},
                 {"port": "metrics", "path": "/metrics", "honorLabels": True}]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": _meta(obj, name),
        "spec": {
            "selector": {"matchLabels": {LABEL_APP: name}},
            "podMetricsEndpoints": endpoints,
        },
    }


def render(obj: Mapping[str, Any], ctx: RenderContext) -> list[Manifest]:
    """All children of one ContinuousApplication, in the order they should be applied."""
    claim = driver_state_claim(obj)
    out = [
        app_secret(obj, ctx),
        token_secret(obj, ctx),
        config_map(obj, ctx),
        network_policy(obj, ctx),
        driver_service(obj),
        *([claim] if claim is not None else []),
        driver_deployment(obj, ctx),
        executor_service(obj),
        executor_statefulset(obj, ctx),
    ]
    if (obj["spec"].get("monitoring") or {}).get("podMonitor"):
        out.append(pod_monitor(obj))
    return out
