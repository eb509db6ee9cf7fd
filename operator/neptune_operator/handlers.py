"""kopf handlers: thin wiring of the pure functions (render, specdiff, ranking, feedback,
status) to the API server through reconcile.py. Importing this module registers them.

kopf already serialises the handling of each object (one worker per object), so two
reconciles of the same app never overlap; different apps proceed in parallel.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import kopf
import prometheus_client

from . import (
    autoscale,
    config,
    cpushare,
    feedback,
    metrics,
    migrate,
    ranking,
    reconcile,
    render,
    specdiff,
)
from . import status as status_mod
from .appspec import app_spec
from .constants import API_VERSION, GROUP, KIND, PLURAL, VERSION
from .kube import ApiError, Kube, default_login

CONFIG = config.from_env()
# The namespaces kopf watches (main.py sets them; empty: all).
WATCHED: tuple[str, ...] = ()
RESOURCE = (GROUP, VERSION, PLURAL)
AppIndex = kopf.Index[tuple[str, str], ranking.AppSpec]


class _State:
    kube: Kube | None = None
    # Feedback timers live in memory: after a restart the windows start again, which only
    # delays a step; the boost itself is persisted in status.assignedPriority.
    feedback: dict[tuple[str, str], feedback.FeedbackState] = {}
    # Last priority table written per app, to skip identical ConfigMap applies.
    tables: dict[tuple[str, str], dict[str, int]] = {}
    # Autoscaler windows, in memory like the feedback's: a restart only delays the next step.
    autoscale: dict[tuple[str, str], autoscale.AutoscaleState] = {}
    # Each app's read token for the driver's /status, re-read from its Secret on a 401.
    tokens = reconcile.TokenCache()
    warned: dict[tuple[str, str], frozenset[str]] = {}  # jobs whose warning has an Event
    # The executors' CPU request wanted (cpushare.py), and the last resize failures told.
    cpu: dict[tuple[str, str], int] = {}
    resize_failed: dict[tuple[str, str], list[str]] = {}


STATE = _State()
log = logging.getLogger(__name__)


def kube() -> Kube:
    if STATE.kube is None:
        raise kopf.TemporaryError("operator not started yet", delay=5)
    return STATE.kube


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@asynccontextmanager
async def measured(action: str) -> AsyncIterator[None]:
    """Count and time a reconcile; turn transient failures into kopf retries."""
    started = time.perf_counter()
    metrics.RECONCILES.labels(action).inc()
    try:
        yield
    except ApiError as exc:
        metrics.ERRORS.labels(action, str(exc.temporary).lower()).inc()
        if exc.temporary:
            raise kopf.TemporaryError(str(exc), delay=10) from exc
        raise kopf.PermanentError(str(exc)) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        metrics.ERRORS.labels(action, "true").inc()
        raise kopf.TemporaryError(f"{type(exc).__name__}: {exc}", delay=10) from exc
    finally:
        metrics.DURATION.labels(action).observe(time.perf_counter() - started)


def _apps(index: AppIndex, override: ranking.AppSpec | None = None) -> list[ranking.AppSpec]:
    """Every app's ranking input; `override` in place of its indexed one (a fresher boost)."""
    apps = [a for _, store in index.items() for a in store]
    if override is not None:
        apps = [a for a in apps if a.key != override.key] + [override]
    return apps


def assignments(index: AppIndex, key: tuple[str, str],
                override: ranking.AppSpec | None = None) -> ranking.Assignment | None:
    return ranking.rank(_apps(index, override), CONFIG.classes).get(key)


# -- lifecycle --------------------------------------------------------------------------------
@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Watches are re-established well before load balancers drop idle connections.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # Our own Events explain each decision; kopf's per-handler chatter would drown them.
    settings.posting.level = logging.WARNING
    settings.queueing.worker_limit = 64
    settings.execution.max_workers = 8
    metrics.register()
    prometheus_client.start_http_server(CONFIG.metrics_port)
    STATE.kube = Kube(lambda: default_login(settings))
    await migrate_stored(STATE.kube)


async def migrate_stored(client: Kube) -> None:
    """Patch the objects an older CRD stored to this one's schema (migrate.py), before kopf
    watches them: until then every write to them fails, kopf's own finalizer and status
    patches included, so no handler would ever run for them."""
    namespaces: tuple[str | None, ...] = WATCHED or (None,)
    for namespace in namespaces:
        for obj in await client.list(API_VERSION, KIND, namespace):
            ops = migrate.source_patch(obj.get("spec") or {})
            if ops is None:
                continue
            meta = obj["metadata"]
            try:
                await client.patch(API_VERSION, KIND, meta["namespace"], meta["name"], ops,
                                   content_type="application/json-patch+json")
            except ApiError as exc:  # changed meanwhile: kopf will show it failing
                log.warning("cannot migrate %s/%s: %s", meta["namespace"], meta["name"], exc)
                continue
            log.info("migrated %s/%s: %s", meta["namespace"], meta["name"],
                     migrate.describe(ops))
            # kopf's event poster is not running yet: the Event is written directly.
            await client.create(migrate.event(
                obj, f"{migrate.describe(ops)} (sources are objects since this operator "
                     "version; update your manifests)", now_iso()))


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if STATE.kube is not None:
        await STATE.kube.close()


@kopf.on.probe(id="apps")
def probe_apps(**_: Any) -> int:
    return len(metrics.PHASES)


# -- index: every app's ranking input, cluster-wide -------------------------------------------
@kopf.index(*RESOURCE)
def apps_index(*, namespace: str | None, name: str, spec: kopf.Spec, status: kopf.Status,
               **_: Any) -> dict[tuple[str, str], ranking.AppSpec]:
    return {(namespace or "", name): app_spec(namespace or "", name, spec, status)}


# -- spec handlers ----------------------------------------------------------------------------
def _event(body: kopf.Body, reason: str, message: str, warning: bool = False) -> None:
    kopf.event(body, type="Warning" if warning else "Normal", reason=reason, message=message)


async def _apply(body: kopf.Body, action: str, index: AppIndex, patch: kopf.Patch) -> None:
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    assignment = assignments(index, key)
    result = await reconcile.apply_children(kube(), CONFIG, body, action, assignment)
    if result.secrets_created:
        _event(body, "SecretCreated", f"created {', '.join(result.secrets_created)} (the HMAC "
               "secret and the driver's HTTP tokens are made once and kept)")
    if result.skipped:
        _event(body, "MonitoringUnavailable",
               f"not created (kind not served; install the Prometheus Operator): "
               f"{', '.join(result.skipped)}", warning=True)
    if result.missing_secrets:
        _event(body, "SecretMissing",
               f"Secret {', '.join(result.missing_secrets)} (spec.jobs[].source.kafka."
               "secretRef) not found in the namespace: the driver pod waits for it",
               warning=True)
    if assignment is not None:
        STATE.tables[key] = dict(assignment.table)
    patch.status["lastAction"] = action


@kopf.on.create(*RESOURCE)
async def on_create(*, body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
    apps_index: AppIndex = kwargs["apps_index"]
    action = specdiff.classify(None, body["spec"]).action
    async with measured("create"):
        await _apply(body, action, apps_index, patch)
    _event(body, "Created", f"children applied ({action}); executors "
           f"{0 if body['spec'].get('suspend') else render.executor_replicas(body['spec'])}")
    _state_warning(body)


def _state_warning(body: kopf.Body) -> None:
    message = status_mod.state_warning(body["spec"])
    if message is not None:
        _event(body, "StateNotDurable", message, warning=True)


@kopf.on.resume(*RESOURCE)
async def on_resume(*, body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
    apps_index: AppIndex = kwargs["apps_index"]
    # Operator restart: re-apply everything (idempotent) without touching pod classes.
    async with measured("resume"):
        await _apply(body, "noop", apps_index, patch)


@kopf.on.update(*RESOURCE)
async def on_update(*, body: kopf.Body, old: Any, new: Any, patch: kopf.Patch,
                    **kwargs: Any) -> None:
    apps_index: AppIndex = kwargs["apps_index"]
    change = specdiff.classify((old or {}).get("spec"), (new or {}).get("spec") or {})
    if change.action == "noop":
        _event(body, "NoChange", "metadata-only change: nothing to do")
        return
    async with measured(change.action):
        await _apply(body, change.action, apps_index, patch)
    _event(body, change.action.capitalize(),
           f"{change.action} (also {', '.join(change.actions[1:]) or 'nothing else'}): "
           f"changed {', '.join(change.fields)}")
    if "upgradeMode" in change.fields:
        _state_warning(body)


@kopf.on.delete(*RESOURCE, optional=True)
async def on_delete(*, namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> None:
    # optional=True: no finalizer. Children go with the owner through garbage collection.
    namespace = namespace or ""
    key = (namespace, name)
    STATE.feedback.pop(key, None)
    STATE.tables.pop(key, None)
    STATE.autoscale.pop(key, None)
    STATE.warned.pop(key, None)
    STATE.cpu.pop(key, None)
    STATE.resize_failed.pop(key, None)
    STATE.tokens.forget(namespace, name)
    metrics.forget(namespace, name, [str(j.get("name")) for j in spec.get("jobs") or []])


# -- status, feedback and priorities, periodically ---------------------------------------------
@kopf.timer(*RESOURCE, interval=CONFIG.status_interval_s, initial_delay=2.0)
async def refresh(*, body: kopf.Body, spec: kopf.Spec, status: kopf.Status,
                  namespace: str | None, name: str, patch: kopf.Patch, **kwargs: Any) -> None:
    apps_index: AppIndex = kwargs["apps_index"]
    namespace = namespace or ""
    key = (namespace, name)
    async with measured("status"):
        children = await reconcile.child_state(kube(), body)
        doc, error = (None, None)
        if not spec.get("suspend"):
            # Asked even when the Deployment reports no ready pod: /status answering is the
            # better evidence, and a refused connection costs one quick error.
            doc, error = await reconcile.driver_status(CONFIG, body, kube(), STATE.tokens)

        # Feedback: one step at most per window, bounded; boost persisted in status.
        prev_assigned = dict(status.get("assignedPriority") or {})
        state = STATE.feedback.get(key) or feedback.FeedbackState(
            boost=int(prev_assigned.get("boost") or 0))
        decision = feedback.step(state, status_mod.slo_met(doc), time.time(), CONFIG.feedback)
        STATE.feedback[key] = decision.state
        if decision.changed:
            up = decision.state.boost > state.boost
            metrics.PRIORITY_CHANGES.labels("up" if up else "down").inc()
            _event(body, "PriorityRaised" if up else "PriorityLowered", decision.reason,
                   warning=up)

        me = app_spec(namespace, name, spec, {"assignedPriority": {
            "boost": decision.state.boost}})
        assignment = assignments(apps_index, key, override=me)
        cpu = await _cpu_share(body, spec, key, _apps(apps_index, me), children)
        assigned: dict[str, Any] = {}
        if assignment is not None:
            if STATE.tables.get(key) != dict(assignment.table):
                await reconcile.apply_priorities(kube(), CONFIG, body, assignment)
                STATE.tables[key] = dict(assignment.table)
            if prev_assigned.get("priorityClassName") not in (None, assignment.priority_class):
                _event(body, "PriorityClassChanged",
                       f"{prev_assigned.get('priorityClassName')} -> "
                       f"{assignment.priority_class} ({assignment.reason}); "
                       "running pods keep theirs until they are next replaced")
            assigned = {
                "priorityClassName": assignment.priority_class,
                "boost": decision.state.boost,
                "reason": decision.state.reason or assignment.reason,
            }
            if assignment.rank is not None:
                assigned["rank"] = assignment.rank
            if cpu is not None:
                assigned["executorCpuRequest"] = f"{cpu.milli}m"
            since = prev_assigned.get("since")
            if decision.changed or since is None:
                since = now_iso()
            assigned["since"] = since

        posts, STATE.warned[key] = status_mod.fresh_warnings(
            doc, STATE.warned.get(key, frozenset()))
        for _, text in posts:
            _event(body, "CoarseRecords", text, warning=True)

        scaled = await _autoscale(body, spec, status, key, doc)

        new_status = status_mod.build(
            name=name, generation=int(body["metadata"].get("generation") or 0), spec=spec,
            children=children, driver_doc=doc, driver_error=error, assigned=assigned,
            previous=status, now=now_iso(), autoscale=scaled)
        old_phase = status.get("phase")
        if old_phase and old_phase != new_status["phase"]:
            _event(body, "PhaseChanged", f"{old_phase} -> {new_status['phase']}",
                   warning=new_status["phase"] == "Degraded")
        # Status is merge-patched: what is gone (a removed job, a cleared error) must be nulled.
        for field, value in status_mod.as_merge_patch(status, new_status).items():
            patch.status[field] = value

        metrics.PHASES[key] = new_status["phase"]
        metrics.EXECUTORS_DESIRED.labels(namespace, name).set(children.executors_desired)
        metrics.EXECUTORS_READY.labels(namespace, name).set(children.executors_ready)
        for job in me.jobs:
            if job.slo_seconds is not None:
                metrics.JOB_SLO.labels(namespace, name, job.name).set(job.slo_seconds)



async def _cpu_share(body: kopf.Body, spec: kopf.Spec, key: tuple[str, str],
                     apps: list[ranking.AppSpec],
                     children: status_mod.ChildState) -> cpushare.CpuPlan | None:
    """The executors' CPU weight from the app's priority level (cpushare.py): resize the pods
    whose request differs, and post an Event when the request wanted changes."""
    plan = cpushare.plan(spec, cpushare.levels(apps)[key], CONFIG.cpu_by_rank)
    if plan is None or spec.get("suspend"):
        STATE.cpu.pop(key, None)
        return None
    before = STATE.cpu.get(key)
    if before != plan.milli and (before is not None or plan.milli != plan.spec_milli):
        _event(body, "CPUShareChanged", f"executors' CPU request {plan.describe()}")
    STATE.cpu[key] = plan.milli
    pods = cpushare.to_resize(dict(children.executor_cpu), plan.milli)
    failed = await reconcile.resize_executors(kube(), key[0], pods, plan.milli)
    if failed and failed != STATE.resize_failed.get(key):
        _event(body, "ResizeFailed", f"executors' CPU request not set to {plan.milli}m: "
               f"{'; '.join(failed)}"[:1024], warning=True)
    STATE.resize_failed[key] = failed
    return plan


async def _autoscale(body: kopf.Body, spec: kopf.Spec, status: kopf.Status,
                     key: tuple[str, str], doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """spec.executors.autoscale: decide (autoscale.step), write executors.replicas and say
    why in an Event; the update handler then scales the StatefulSet. None: not autoscaled."""
    cfg = autoscale.AutoscaleSpec.from_spec(spec)
    if cfg is None or spec.get("suspend"):
        STATE.autoscale.pop(key, None)
        return None
    current = render.executor_replicas(spec)
    decision = autoscale.step(STATE.autoscale.get(key) or autoscale.AutoscaleState(), cfg,
                              current, autoscale.worst(autoscale.drains(doc)), time.time())
    if decision.changed or (spec.get("executors") or {}).get("replicas") is None:
        # Also when replicas is absent (autoscale set without it): written once, so that
        # the scale subresource has a value.
        await reconcile.set_executor_replicas(kube(), body, decision.replicas)
    STATE.autoscale[key] = decision.state
    if decision.changed:
        metrics.AUTOSCALE_CHANGES.labels(
            "up" if decision.replicas > current else "down").inc()
        _event(body, "Autoscaled", decision.reason)
    return autoscale.status(decision, status.get("autoscale"), now_iso())
