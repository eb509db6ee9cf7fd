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
from dataclasses import dataclass
from typing import Any

import aiohttp

from . import render
from .config import OperatorConfig
from .kube import ApiError, Kube, http_get_json
from .ranking import Assignment
from .render import Names, RenderContext
from .status import ChildState

log = logging.getLogger(__name__)

# Actions after which running pods keep their PriorityClass: changing the class in a pod
# template would replace every pod, which a scale or a priority update must not do.
KEEP_POD_CLASS = ("scale", "reconfigure", "reload", "noop", "status")


@dataclass(frozen=True)
class ApplyResult:
    applied: list[str]
    skipped: list[str]  # kinds the cluster does not serve (PodMonitor without its CRD)
    secret_created: bool


async def ensure_secret(kube: Kube, obj: Mapping[str, Any]) -> bool:
    """Create the app's HMAC secret once; an existing one is kept (pods already use it)."""
    meta = obj["metadata"]
    name = Names(meta["name"]).secret
    if await kube.get("v1", "Secret", meta["namespace"], name) is not None:
        return False
    ctx = RenderContext(secret_hex=secrets.token_hex(32))
    return await kube.create(render.app_secret(obj, ctx)) is not None


async def live_priority_class(kube: Kube, obj: Mapping[str, Any]) -> str | None:
    meta = obj["metadata"]
    sts = await kube.get("apps/v1", "StatefulSet", meta["namespace"],
                         Names(meta["name"]).executor)
    if sts is None:
        return None
    cls: str | None = sts["spec"]["template"]["spec"].get("priorityClassName")
    return cls


async def apply_children(kube: Kube, cfg: OperatorConfig, obj: Mapping[str, Any],
                         action: str, assignment: Assignment | None) -> ApplyResult:
    secret_created = await ensure_secret(kube, obj)
    pod_class = assignment.priority_class if assignment else None
    if action in KEEP_POD_CLASS:
        live = await live_priority_class(kube, obj)
        pod_class = live if live is not None else pod_class
    ctx = RenderContext(secret_hex="", priority_class=pod_class,
                        priorities=dict(assignment.table) if assignment else {},
                        monitoring_namespace=cfg.monitoring_namespace,
                        operator_namespace=cfg.operator_namespace)
    applied, skipped = [], []
    for manifest in render.render(obj, ctx):
        ident = f"{manifest['kind']}/{manifest['metadata']['name']}"
        if manifest["kind"] == "Secret":
            continue  # created once above, never re-applied
        try:
            await kube.apply(manifest)
            applied.append(ident)
        except ApiError as exc:
            # 404 on apply means the kind itself is not served (no Prometheus Operator).
            if exc.status == 404 and manifest["kind"] == "PodMonitor":
                skipped.append(ident)
                continue
            raise
    return ApplyResult(applied, skipped, secret_created)


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

    dep, sts, pvc = await asyncio.gather(
        kube.get("apps/v1", "Deployment", meta["namespace"], names.driver),
        kube.get("apps/v1", "StatefulSet", meta["namespace"], names.executor),
        claim(),
    )
    desired = 0 if spec.get("suspend") else int(spec["executors"]["replicas"])
    pvc_status = (pvc or {}).get("status") or {}
    return ChildState(
        driver_ready=bool(dep and (dep.get("status") or {}).get("readyReplicas")),
        executors_ready=int(((sts or {}).get("status") or {}).get("readyReplicas") or 0),
        executors_desired=desired,
        claim_phase=pvc_status.get("phase") if pvc else None,
        claim_capacity=(pvc_status.get("capacity") or {}).get("storage"),
    )


async def driver_status(cfg: OperatorConfig, obj: Mapping[str, Any]
                        ) -> tuple[dict[str, Any] | None, str | None]:
    meta = obj["metadata"]
    url = cfg.driver_status_url.format(name=meta["name"], namespace=meta["namespace"])
    try:
        doc = await http_get_json(url)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return None, f"GET {url}: {type(exc).__name__}: {exc}"[:512]
    if not isinstance(doc, dict):
        return None, f"GET {url}: not a JSON object"
    return doc, None
