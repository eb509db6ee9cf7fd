"""Build the ContinuousApplication status from child state and the driver's /status JSON.

Pure: the handler gathers the inputs (two workload reads, one HTTP GET) and patches the result.
Conditions keep their lastTransitionTime unless their status flips, as Kubernetes expects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .constants import DEFAULT_UPGRADE_MODE, UNSCHEDULABLE_SHOWN
from .render import Names, driver_storage, executor_selector_string


@dataclass(frozen=True)
class ChildState:
    driver_ready: bool  # the driver Deployment has a ready replica
    executors_ready: int  # ready executor pods
    executors_desired: int  # 0 while suspended
    # The driver's state claim (spec.driver.storage): its phase (Pending, Bound, Lost; None
    # when it does not exist yet) and capacity. Ignored without spec.driver.storage.
    claim_phase: str | None = None
    claim_capacity: str | None = None
    # Secrets named by Kafka sources (spec.jobs[].source.kafka.secretRef) that do not exist.
    missing_secrets: tuple[str, ...] = ()
    # The app's pods that the scheduler cannot place: (pod, the scheduler's message).
    unschedulable: tuple[tuple[str, str], ...] = ()
    # Each live executor pod's CPU request now, in millicores (cpushare.executor_requests).
    executor_cpu: tuple[tuple[str, int | None], ...] = ()


def unschedulable(pods: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    """The pods the scheduler tried and could not place (PodScheduled False, Unschedulable),
    with its message, e.g. "0/1 nodes are available: 1 Insufficient cpu." The scheduler backs
    off and tries again by itself: nothing to retry here, only to show."""
    out = []
    for pod in pods:
        st = pod.get("status") or {}
        if st.get("phase") != "Pending" or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        for c in st.get("conditions") or []:
            if (c.get("type") == "PodScheduled" and c.get("status") == "False"
                    and c.get("reason") == "Unschedulable"):
                out.append((str(pod["metadata"]["name"]), str(c.get("message") or "")[:512]))
    return tuple(sorted(out))


def _f(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def job_figures(driver_doc: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Driver snake_case figures -> status camelCase (the CRD schema prunes anything else)."""
    out: dict[str, dict[str, Any]] = {}
    for name, j in ((driver_doc or {}).get("jobs") or {}).items():
        fig: dict[str, Any] = {"kind": j.get("kind"), "state": j.get("state")}
        if j.get("error"):
            fig["error"] = str(j["error"])[:1024]
        for src, dst in (("priority", "priority"), ("suspensions", "suspensions"),
                         ("failures", "failures"), ("records", "records")):
            if isinstance(j.get(src), int):
                fig[dst] = j[src]
        if isinstance(j.get("uncommitted"), int):
            fig["uncommitted"] = j["uncommitted"]
        if isinstance(j.get("lag"), Mapping) and j["lag"]:
            fig["lag"] = sum(v for v in j["lag"].values()
                             if isinstance(v, int) and not isinstance(v, bool) and v > 0)
        if isinstance(j.get("offsets"), Mapping):
            fig["offsets"] = offsets(j["offsets"])
        for src, dst in (("throughput_per_s", "throughputPerSecond"), ("slo_ms", "sloMs"),
                         ("p50_ms", "p50Ms"), ("p99_ms", "p99Ms"),
                         ("slo_attainment", "sloAttainment")):
            value = _f(j.get(src))
            if value is not None:
                fig[dst] = round(value, 3)
        out[str(name)] = {k: v for k, v in fig.items() if v is not None}
    return out


def _token(value: Any) -> str | None:
    # Tokens are the source's own (an int for HTTP ingest): kept as text in the status.
    return None if value is None else str(value)[:256]


def offsets(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"committed": _token(raw.get("committed")),
                           "resumedFrom": _token(raw.get("resumed_from"))}
    if isinstance(raw.get("accepted"), int):
        out["accepted"] = raw["accepted"]
    return {k: v for k, v in out.items() if v is not None}


def storage_status(name: str, spec: Mapping[str, Any],
                   children: ChildState) -> dict[str, Any]:
    """Where the driver keeps its state, and whether its claim is usable."""
    if driver_storage(spec) is None:
        return {"volume": "emptyDir"}
    out = {"volume": "PersistentVolumeClaim", "claimName": Names(name).driver_state,
           "phase": children.claim_phase or "Missing"}
    if children.claim_capacity:
        out["capacity"] = children.claim_capacity
    return out


def state_warning(spec: Mapping[str, Any]) -> str | None:
    """Why upgradeMode last-state would not hold, or None: without driver.storage the state
    directory is an emptyDir, gone with the pod (the StateNotDurable Warning)."""
    if (spec.get("upgradeMode") or DEFAULT_UPGRADE_MODE) != "last-state":
        return None
    if driver_storage(spec) is not None:
        return None
    return ("upgradeMode is last-state but driver.storage is not set: keyed state, offsets "
            "and the ingest log are on an emptyDir, lost when the driver pod is replaced "
            "(roll, reload, eviction, node loss); a Kafka job then starts from its group's "
            "committed offsets with empty keyed state, as with stateless. driver.storage can "
            "only be set at creation")


def _has_samples(fig: Mapping[str, Any], raw: Mapping[str, Any]) -> bool:
    # A p99 of 0 with no samples says nothing about the SLO.
    samples = raw.get("samples")
    return "p99Ms" in fig and "sloMs" in fig and (samples is None or samples > 0)


def slo_met(driver_doc: Mapping[str, Any] | None) -> bool | None:
    """True: every stream job with samples is within its SLO at p99; None: no evidence."""
    jobs = (driver_doc or {}).get("jobs") or {}
    figures = job_figures(driver_doc)
    verdicts = [figures[n]["p99Ms"] <= figures[n]["sloMs"]
                for n, raw in jobs.items()
                if raw.get("kind") == "stream" and _has_samples(figures[str(n)], raw)]
    if not verdicts:
        return None
    return all(verdicts)


def worst_job(figures: Mapping[str, Mapping[str, Any]]) -> str | None:
    ratios = [(f["p99Ms"] / f["sloMs"], name, f) for name, f in figures.items()
              if f.get("kind") == "stream" and "p99Ms" in f and f.get("sloMs")]
    if not ratios:
        return None
    _, name, f = max(ratios, key=lambda r: (r[0], r[1]))
    return f"{name} {f['p99Ms']:.3g}ms/{f['sloMs']:.3g}ms"


def _condition(previous: Sequence[Mapping[str, Any]], ctype: str, status: bool | None,
               reason: str, message: str, generation: int, now: str) -> dict[str, Any]:
    text = "Unknown" if status is None else ("True" if status else "False")
    before = next((c for c in previous if c.get("type") == ctype), None)
    since = before.get("lastTransitionTime") if before and before.get("status") == text else None
    return {"type": ctype, "status": text, "reason": reason, "message": message,
            "lastTransitionTime": since or now, "observedGeneration": generation}


EXECUTORS_MISSING = "ExecutorsMissing"


def executors_missing(generation: int, children: ChildState,
                      previous: Mapping[str, Any] | None) -> bool:
    """Fewer executors ready than desired, for the same spec, after all of them were (the last
    status said Running, or already this): pods lost, not pods of a roll-out or a scale still
    starting, which are Progressing."""
    if children.executors_ready >= children.executors_desired or previous is None \
            or previous.get("observedGeneration") != generation:
        return False
    if previous.get("phase") == "Running":
        return True
    degraded: Mapping[str, Any] = next((c for c in previous.get("conditions") or []
                                        if c.get("type") == "Degraded"), {})
    return degraded.get("status") == "True" and degraded.get("reason") == EXECUTORS_MISSING


def build(*, name: str, generation: int, spec: Mapping[str, Any], children: ChildState,
          driver_doc: Mapping[str, Any] | None, driver_error: str | None,
          assigned: Mapping[str, Any] | None, previous: Mapping[str, Any] | None,
          now: str, autoscale: Mapping[str, Any] | None = None) -> dict[str, Any]:
    suspended = bool(spec.get("suspend"))
    figures = job_figures(driver_doc)
    failed_jobs = sorted(n for n, f in figures.items() if f.get("state") == "failed")
    registered = int(((driver_doc or {}).get("executors") or {}).get("registered", 0))
    all_ready = (children.driver_ready
                 and children.executors_ready >= children.executors_desired)
    met = None if suspended else slo_met(driver_doc)
    storage = storage_status(name, spec, children)
    # A Lost claim (its volume is gone) never comes back by itself: the driver cannot start.
    storage_lost = storage.get("phase") == "Lost"
    prev_conditions = list((previous or {}).get("conditions") or [])
    missing = not suspended and executors_missing(generation, children, previous)

    if suspended:
        phase = "Suspended"
    elif failed_jobs or storage_lost or missing or (driver_doc or {}).get("phase") == "Degraded":
        phase = "Degraded"
    elif all_ready and driver_doc is not None:
        phase = "Running"
    else:
        phase = "Pending"

    progressing = not suspended and not all_ready
    waiting = "waiting for pods to become ready"
    if storage.get("phase") not in (None, "Bound"):
        waiting += f"; driver state claim {storage['claimName']} is {storage['phase']}"
    if children.unschedulable:
        pod, why = children.unschedulable[0]
        many = len(children.unschedulable)
        waiting += (f"; {many} pod{'s' if many > 1 else ''} cannot be scheduled ({pod}: "
                    f"{why or 'no reason given'})")
    if children.missing_secrets:
        many = len(children.missing_secrets) > 1
        waiting += (f"; the driver waits for Secret{'s' if many else ''} "
                    f"{', '.join(children.missing_secrets)} (spec.jobs[].source.kafka."
                    f"secretRef), which do{'' if many else 'es'} not exist")

    def cond(ctype: str, status: bool | None, reason: str, message: str) -> dict[str, Any]:
        return _condition(prev_conditions, ctype, status, reason, message, generation, now)

    conditions = [
        cond("Ready", phase == "Running",
             "Running" if phase == "Running" else phase,
             f"driver ready: {children.driver_ready}; executors "
             f"{children.executors_ready}/{children.executors_desired}"),
        cond("Progressing", progressing,
             ("Unschedulable" if children.unschedulable else "RollingOut") if progressing
             else "Stable",
             waiting if progressing else "all pods ready"),
        cond("Degraded", phase == "Degraded",
             "JobFailed" if failed_jobs else "StorageLost" if storage_lost
             else EXECUTORS_MISSING if missing
             else "DriverUnreachable" if driver_error else "Healthy",
             f"failed jobs: {', '.join(failed_jobs)}" if failed_jobs
             else f"driver state claim {storage.get('claimName')} is Lost" if storage_lost
             else (f"executors ready {children.executors_ready}/"
                   f"{children.executors_desired} after all were: pods lost (a node down?) or "
                   "restarting; the driver re-runs their tasks on the others") if missing
             else driver_error or ""),
        cond("SLOMet", met,
             "Unknown" if met is None else ("WithinSLO" if met else "SLOMissed"),
             worst_job(figures) or "no stream latency samples yet"),
        cond("Suspended", suspended, "SpecSuspend" if suspended else "Active",
             "spec.suspend is true: pods removed" if suspended else ""),
    ]
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": generation,
        "conditions": conditions,
        "executors": {
            "desired": children.executors_desired,
            "ready": children.executors_ready,
            "registered": registered,
            "summary": f"{children.executors_ready}/{children.executors_desired}",
        },
        "selector": executor_selector_string(name),
        "jobs": figures,
        "driver": {"reachable": driver_doc is not None,
                   **({"message": driver_error} if driver_error else {}),
                   "storage": storage},
    }
    if children.unschedulable:
        status["unschedulable"] = {
            "count": len(children.unschedulable),
            "pods": [{"pod": pod, "message": why}
                     for pod, why in children.unschedulable[:UNSCHEDULABLE_SHOWN]]}
    worst = worst_job(figures)
    if worst:
        status["worstJob"] = worst
    if assigned:
        status["assignedPriority"] = dict(assigned)
    if autoscale:
        status["autoscale"] = dict(autoscale)
    return status


def as_merge_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any],
                   keep: Sequence[str] = ("kopf",)) -> dict[str, Any]:
    """`new` as a JSON merge patch over `old`: keys that disappeared become None (deleted),
    so stale figures (an old driver error, a removed job) do not linger in the status.
    Lists are replaced whole by merge patches, so only mappings are walked."""
    out: dict[str, Any] = dict(new)
    for key, before in (old or {}).items():
        if key in keep:
            continue
        if key not in new:
            out[key] = None
        elif isinstance(before, Mapping) and isinstance(new[key], Mapping):
            out[key] = as_merge_patch(before, new[key], ())
    return out


def fresh_warnings(driver_doc: Mapping[str, Any] | None,
                   warned: frozenset[str]) -> tuple[list[tuple[str, str]], frozenset[str]]:
    """The jobs' warnings (coarse records: /status jobs.JOB.warning) not posted yet, as
    (job, text), and the jobs warned about now. A job is warned about once until its warning
    goes away; its figures change at every poll, so the text cannot be the key."""
    now = {name: str(j["warning"]) for name, j in ((driver_doc or {}).get("jobs") or {}).items()
           if isinstance(j, Mapping) and j.get("warning")}
    if driver_doc is None:
        return [], warned  # no answer this time: no evidence either way
    return [(job, text) for job, text in now.items() if job not in warned], frozenset(now)
