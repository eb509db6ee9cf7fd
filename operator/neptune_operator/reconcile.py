"""The I/O side of a reconcile: apply rendered children, read their state, read the driver.

Every write is a server-side apply of the full desired object (or a create-once for the
secret), so running any of this twice, or after a crash half-way, converges to one set of
children with no duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from . import cpushare, render, tokens
from .config import OperatorConfig
from .constants import API_VERSION, EXECUTOR_CONTAINER, KIND, READ_TOKEN_KEY
from .kube import ApiError, Kube, http_get_json
from .ranking import Assignment
from .render import Names, RenderContext
from .status import ChildState, unschedulable

log = logging.getLogger(__name__)

# Actions after which running pods keep their PriorityClass: changing the class in a pod
# template would replace every pod, which a scale or a priority update must not do.
KEEP_POD_CLASS = ("scale", "reconfigure", "reload", "noop", "status")


@dataclass(frozen=True)
class ApplyResult:
    applied: list[str]
    skipped: list[str]  # kinds the cluster does not serve (PodMonitor without its CRD)
    secrets_created: list[str]  # Secrets made by this reconcile (the first one, normally)
    # Secrets named by Kafka sources (secretRef) that do not exist: the driver pod waits.
    missing_secrets: list[str] = field(default_factory=list)
    revision: render.DriverRevision | None = None  # what the driver template says


async def ensure_secrets(kube: Kube, obj: Mapping[str, Any]) -> list[str]:
    """Create the app's HMAC secret and its HTTP token Secret once each, with fresh random
    values; existing ones are kept as they are (pods use them, and a user may have rotated
    the tokens). Returns the names of the Secrets created."""
    meta = obj["metadata"]
    ctx = RenderContext(secret_hex=secrets.token_hex(32), tokens=tokens.generate())
    created = []
    for manifest in (render.app_secret(obj, ctx), render.token_secret(obj, ctx)):
        name = manifest["metadata"]["name"]
        if await kube.get("v1", "Secret", meta["namespace"], name) is not None:
            continue
        # None: made meanwhile by someone else (a previous operator's half-done reconcile).
        if await kube.create(manifest) is not None:
            created.append(name)
    return created


async def live_priority_class(kube: Kube, obj: Mapping[str, Any]) -> str | None:
    meta = obj["metadata"]
    sts = await kube.get("apps/v1", "StatefulSet", meta["namespace"],
                         Names(meta["name"]).executor)
    if sts is None:
        return None
    cls: str | None = sts["spec"]["template"]["spec"].get("priorityClassName")
    return cls


async def missing_secrets(kube: Kube, obj: Mapping[str, Any]) -> list[str]:
    """The Secrets the Kafka sources name that are not there (the driver pod would wait for
    its volume)."""
    namespace = obj["metadata"]["namespace"]
    wanted = render.kafka_secrets(obj["spec"])
    found = await asyncio.gather(*(kube.get("v1", "Secret", namespace, n) for n in wanted))
    return [name for name, secret in zip(wanted, found, strict=True) if secret is None]


async def app_pods(kube: Kube, obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The app's pods; none if they cannot be listed (a chart older than its RBAC rule): the
    status then only lacks the scheduler's reasons."""
    meta = obj["metadata"]
    try:
        return await kube.list("v1", "Pod", meta["namespace"],
                               render.app_selector_string(meta["name"]))
    except ApiError as exc:
        log.warning("%s/%s: cannot list its pods: %s", meta["namespace"], meta["name"], exc)
        return []


async def apply_children(kube: Kube, cfg: OperatorConfig, obj: Mapping[str, Any],
                         action: str, assignment: Assignment | None) -> ApplyResult:
    meta = obj["metadata"]
    secrets_created = await ensure_secrets(kube, obj)
    pod_class = assignment.priority_class if assignment else None
    if action in KEEP_POD_CLASS:
        live = await live_priority_class(kube, obj)
        pod_class = live if live is not None else pod_class
    # The generation and upgrade mode the driver runs with, unless what it runs changes.
    live_driver = await kube.get("apps/v1", "Deployment", meta["namespace"],
                                 Names(meta["name"]).driver)
    revision = render.driver_revision(obj, live_driver)
    ctx = RenderContext(secret_hex="", priority_class=pod_class,
                        priorities=dict(assignment.table) if assignment else {},
                        monitoring_namespace=cfg.monitoring_namespace,
                        operator_namespace=cfg.operator_namespace,
                        driver_revision=revision)
    applied, skipped = [], []
    for manifest in render.render(obj, ctx):
        ident = f"{manifest['kind']}/{manifest['metadata']['name']}"
        if manifest["kind"] == "Secret":
            continue  # created once above, never re-applied (values kept, rotations too)
        try:
            await kube.apply(manifest)
            applied.append(ident)
        except ApiError as exc:
            # 404 on apply means the kind itself is not served (no Prometheus Operator).
            if exc.status == 404 and manifest["kind"] == "PodMonitor":
                skipped.append(ident)
                continue
            raise
    return ApplyResult(applied, skipped, secrets_created, await missing_secrets(kube, obj),
                       revision)


async def apply_priorities(kube: Kube, cfg: OperatorConfig, obj: Mapping[str, Any],
                           assignment: Assignment) -> None:
    ctx = RenderContext(secret_hex="", priorities=dict(assignment.table),
                        monitoring_namespace=cfg.monitoring_namespace)
    await kube.apply(render.config_map(obj, ctx))


async def child_state(kube: Kube, obj: Mapping[str, Any]) -> ChildState:
    meta, spec = obj["metadata"], obj["spec"]
    names = Names(meta["name"])
    async def claim() -> dict[str, Any] | None:
        if render.driver_storage(spec) is None:
            return None
        return await kube.get("v1", "PersistentVolumeClaim", meta["namespace"],
                              names.driver_state)

    dep, sts, pvc, missing, pods = await asyncio.gather(
        kube.get("apps/v1", "Deployment", meta["namespace"], names.driver),
        kube.get("apps/v1", "StatefulSet", meta["namespace"], names.executor),
        claim(),
        missing_secrets(kube, obj),
        app_pods(kube, obj),
    )
    desired = 0 if spec.get("suspend") else render.executor_replicas(spec)
    pvc_status = (pvc or {}).get("status") or {}
    return ChildState(
        driver_ready=bool(dep and (dep.get("status") or {}).get("readyReplicas")),
        executors_ready=int(((sts or {}).get("status") or {}).get("readyReplicas") or 0),
        executors_desired=desired,
        claim_phase=pvc_status.get("phase") if pvc else None,
        claim_capacity=(pvc_status.get("capacity") or {}).get("storage"),
        missing_secrets=tuple(missing),
        unschedulable=unschedulable(pods),
        executor_cpu=tuple(sorted(cpushare.executor_requests(pods).items())),
    )


async def resize_executors(kube: Kube, namespace: str, pods: list[str], milli: int) -> list[str]:
    """Set the executor container's CPU request of these pods in place (the resize
    subresource: the kubelet changes the cgroup's weight, the pod keeps running). What could
    not be resized, each with the API server's reason."""
    body = {"spec": {"containers": [{"name": EXECUTOR_CONTAINER,
                                     "resources": {"requests": {"cpu": f"{milli}m"}}}]}}
    failed = []
    for pod in pods:
        try:
            await kube.patch("v1", "Pod", namespace, pod, body, subresource="resize",
                             content_type="application/strategic-merge-patch+json")
        except ApiError as exc:
            if exc.status != 404:  # gone meanwhile: its replacement is resized next round
                failed.append(f"{pod}: {exc.reason}")
    return failed


async def set_executor_replicas(kube: Kube, obj: Mapping[str, Any], replicas: int) -> None:
    """The autoscaler's write: spec.executors.replicas of the resource, as `kubectl scale`
    would write it (a merge patch: the operator's update handler then scales the
    StatefulSet, as for any other scale)."""
    meta = obj["metadata"]
    await kube.patch(API_VERSION, KIND, meta["namespace"], meta["name"],
                     {"spec": {"executors": {"replicas": int(replicas)}}})


class TokenCache:
    """The read token of each app, from its Secret NAME-ingest-token, read through the
    operator's own client. Kept until the driver refuses it (401): then read again, so that a
    rotation costs one extra GET of the Secret and no lost status."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], str] = {}

    async def get(self, kube: Kube, namespace: str, name: str,
                  fresh: bool = False) -> tuple[str | None, str | None]:
        """(token, None), or (None, why there is none)."""
        key = (namespace, name)
        if not fresh and key in self._tokens:
            return self._tokens[key], None
        self._tokens.pop(key, None)
        secret_name = Names(name).tokens
        try:
            secret = await kube.get("v1", "Secret", namespace, secret_name)
        except ApiError as exc:
            return None, f"cannot read Secret {secret_name}: {exc}"
        if secret is None:
            return None, f"Secret {secret_name} does not exist"
        token = tokens.from_secret(secret).get(READ_TOKEN_KEY)
        if token is None:
            return None, f"Secret {secret_name} has no '{READ_TOKEN_KEY}' token"
        self._tokens[key] = token
        return token, None

    def forget(self, namespace: str, name: str) -> None:
        self._tokens.pop((namespace, name), None)


async def _get_status(url: str, token: str | None) -> tuple[dict[str, Any] | None, str | None,
                                                             int | None]:
    """(document, error, HTTP status of a refusal)."""
    try:
        doc = await http_get_json(url, headers=tokens.headers(token) if token else None)
    except aiohttp.ClientResponseError as exc:
        return None, f"GET {url}: HTTP {exc.status}: {exc.message}", exc.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return None, f"GET {url}: {type(exc).__name__}: {exc}", None
    if not isinstance(doc, dict):
        return None, f"GET {url}: not a JSON object", None
    return doc, None, None


async def driver_status(cfg: OperatorConfig, obj: Mapping[str, Any],
                        kube: Kube | None = None, cache: TokenCache | None = None,
                        ) -> tuple[dict[str, Any] | None, str | None]:
    """The driver's /status, asked with the app's read token (when kube and cache are given).
    On a 401 the token is read again from its Secret and, if it changed (a rotation), the
    request is made once more."""
    meta = obj["metadata"]
    url = cfg.driver_status_url.format(name=meta["name"], namespace=meta["namespace"])
    token, why = (None, None)
    if kube is not None and cache is not None:
        token, why = await cache.get(kube, meta["namespace"], meta["name"])
    doc, error, refused = await _get_status(url, token)
    if refused == 401 and kube is not None and cache is not None:
        old = token
        token, why = await cache.get(kube, meta["namespace"], meta["name"], fresh=True)
        if token is not None and token != old:
            doc, error, refused = await _get_status(url, token)
        elif token is not None:
            why = (f"the read token of Secret {Names(meta['name']).tokens} was refused; after a "
                   "rotation the driver takes the new one within about a minute")
    if error is not None and why is not None:
        error = f"{error} ({why})"
    return doc, None if error is None else error[:512]
