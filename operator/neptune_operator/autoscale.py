"""Executor autoscaling from the lag the driver reports (spec.executors.autoscale).

Pure, like feedback.py: the driver's /status and the time in, the replicas wanted and the
reason out; the kopf timer only wires it (handlers.refresh) and writes
spec.executors.replicas.

The signal is the time the backlog would take to drain: for each running stream job whose
source reports lag, `sum(lag over partitions) / throughput_per_s`. The executors are one pool
of cores for every job, so the job furthest behind decides (the maximum): a step up when it is
over the target, a step down only when every job is well under it. Hysteresis and windows
keep it from flapping:

- up: the worst drain time over `target` for `up_window_s` without a break: to
  `ceil(replicas * drain / target)` (the pods that would drain it within the target, if
  throughput grows with the pods), at least one more and at most double;
- down: under `DOWN_FRACTION * target` for `down_window_s` without a break: one pod fewer;
- between the two thresholds: hold, and both windows restart;
- every change (ours, or someone's `kubectl scale`) restarts both windows, so there is at most
  one step per window;
- no evidence (driver unreachable, no running stream job that reports lag): hold, and both
  windows restart;
- replicas outside minReplicas..maxReplicas (bounds just set or changed): corrected at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# "Well under the target": scale down only below this fraction of it.
DOWN_FRACTION = 0.5
# A step up at most doubles the executors.
MAX_UP_FACTOR = 2


@dataclass(frozen=True)
class AutoscaleSpec:
    min_replicas: int
    max_replicas: int
    target_lag_s: float
    up_window_s: float = 60.0
    down_window_s: float = 300.0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> AutoscaleSpec | None:
        """spec.executors.autoscale (with the CRD's defaults for what is absent), or None."""
        raw = (spec.get("executors") or {}).get("autoscale")
        if not isinstance(raw, Mapping) or raw.get("maxReplicas") is None:
            return None
        return cls(min_replicas=int(raw.get("minReplicas", 1)),
                   max_replicas=int(raw["maxReplicas"]),
                   target_lag_s=float(raw.get("targetLagSeconds", 30)),
                   up_window_s=float(raw.get("scaleUpWindowSeconds", 60)),
                   down_window_s=float(raw.get("scaleDownWindowSeconds", 300)))

    @property
    def low_s(self) -> float:
        return DOWN_FRACTION * self.target_lag_s

    @property
    def bounds(self) -> str:
        return f"{self.min_replicas}..{self.max_replicas}"


@dataclass(frozen=True)
class JobDrain:
    job: str
    lag: int  # records waiting, over all partitions
    throughput: float  # records per second
    seconds: float  # lag / throughput; inf: lag and no throughput

    def describe(self) -> str:
        if math.isinf(self.seconds):
            return (f"job {self.job} has {self.lag} records waiting and no throughput "
                    "(nothing processed in the last 10 s)")
        return (f"job {self.job} needs {self.seconds:.1f}s to drain {self.lag} records at "
                f"{self.throughput:.1f}/s")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def drains(driver_doc: Mapping[str, Any] | None) -> list[JobDrain]:
    """The drain time of every running stream job whose source reports lag. A degraded job (its
    source cannot read, its sink fails) is left out: its lag is stale or pods would not help."""
    out = []
    for name, job in sorted(((driver_doc or {}).get("jobs") or {}).items()):
        if not isinstance(job, Mapping) or job.get("kind") != "stream":
            continue
        lag = job.get("lag")
        if job.get("state") != "running" or not isinstance(lag, Mapping) or not lag:
            continue
        total = int(sum(v for v in (_number(x) for x in lag.values())
                        if v is not None and v > 0))
        throughput = max(_number(job.get("throughput_per_s")) or 0.0, 0.0)
        if total == 0:
            seconds = 0.0
        elif throughput > 0:
            seconds = total / throughput
        else:
            seconds = math.inf
        out.append(JobDrain(str(name), total, throughput, seconds))
    return out


def worst(found: list[JobDrain]) -> JobDrain | None:
    """The job that decides: the longest drain time (ties: the first name)."""
    if not found:
        return None
    return min(found, key=lambda d: (-d.seconds, d.job))


@dataclass(frozen=True)
class AutoscaleState:
    over_since: float | None = None  # drain time over the target since then, unbroken
    under_since: float | None = None  # under DOWN_FRACTION of it since then, unbroken
    replicas: int | None = None  # executors.replicas at the last step (a change restarts)


@dataclass(frozen=True)
class Decision:
    state: AutoscaleState
    replicas: int  # wanted; the current count when nothing changes
    changed: bool
    reason: str  # the Event's message when changed, else ""
    message: str  # for the status: what it is waiting for, or what it did
    worst: JobDrain | None


def _up_to(current: int, drain: JobDrain, spec: AutoscaleSpec) -> int:
    if math.isinf(drain.seconds):
        wanted = current * MAX_UP_FACTOR
    else:
        wanted = math.ceil(current * drain.seconds / spec.target_lag_s)
    wanted = min(max(wanted, current + 1), current * MAX_UP_FACTOR)
    return min(wanted, spec.max_replicas)


def step(state: AutoscaleState, spec: AutoscaleSpec, current: int, drain: JobDrain | None,
         now: float) -> Decision:
    """One look at the evidence. `current` is executors.replicas now; `drain` the worst job
    (worst(drains(doc))), None without evidence."""
    restarted = AutoscaleState(None, None, current)
    if state.replicas is not None and state.replicas != current:
        # Scaled by someone else (kubectl scale): count from here, as after our own step.
        state = restarted
    bounded = min(max(current, spec.min_replicas), spec.max_replicas)
    if bounded != current:
        side = (f"below autoscale.minReplicas {spec.min_replicas}" if bounded > current
                else f"above autoscale.maxReplicas {spec.max_replicas}")
        reason = f"executors {current} -> {bounded}: executors.replicas {current} is {side}"
        return Decision(AutoscaleState(None, None, bounded), bounded, True, reason, reason,
                        drain)
    if drain is None:
        message = (f"holding at {current}: no running stream job reports lag (driver "
                   "unreachable, or its sources report none)")
        return Decision(restarted, current, False, "", message, None)

    fmt = drain.describe()
    if drain.seconds > spec.target_lag_s:
        since = state.over_since if state.over_since is not None else now
        held = now - since
        if current >= spec.max_replicas:
            message = f"{fmt}, over the target {spec.target_lag_s:g}s, at maxReplicas {current}"
            return Decision(AutoscaleState(since, None, current), current, False, "", message,
                            drain)
        if held >= spec.up_window_s:
            wanted = _up_to(current, drain, spec)
            reason = (f"executors {current} -> {wanted}: {fmt}, over the target "
                      f"{spec.target_lag_s:g}s for {held:.0f}s (scaleUpWindowSeconds "
                      f"{spec.up_window_s:g}); bounds {spec.bounds}")
            return Decision(AutoscaleState(None, None, wanted), wanted, True, reason, reason,
                            drain)
        message = (f"{fmt}, over the target {spec.target_lag_s:g}s for {held:.0f}s of "
                   f"{spec.up_window_s:g}s before a step up")
        return Decision(AutoscaleState(since, None, current), current, False, "", message,
                        drain)

    if drain.seconds < spec.low_s:
        since = state.under_since if state.under_since is not None else now
        held = now - since
        if current <= spec.min_replicas:
            message = f"{fmt}, under {spec.low_s:g}s, at minReplicas {current}"
            return Decision(AutoscaleState(None, since, current), current, False, "", message,
                            drain)
        if held >= spec.down_window_s:
            wanted = current - 1
            reason = (f"executors {current} -> {wanted}: the worst, {fmt}, under "
                      f"{spec.low_s:g}s (half the target {spec.target_lag_s:g}s) for "
                      f"{held:.0f}s (scaleDownWindowSeconds {spec.down_window_s:g}); bounds "
                      f"{spec.bounds}")
            return Decision(AutoscaleState(None, None, wanted), wanted, True, reason, reason,
                            drain)
        message = (f"{fmt}, under {spec.low_s:g}s for {held:.0f}s of "
                   f"{spec.down_window_s:g}s before a step down")
        return Decision(AutoscaleState(None, since, current), current, False, "", message,
                        drain)

    message = (f"{fmt}: within the target {spec.target_lag_s:g}s (steps down under "
               f"{spec.low_s:g}s)")
    return Decision(restarted, current, False, "", message, drain)


def status(decision: Decision, previous: Mapping[str, Any] | None,
           now_iso: str) -> dict[str, Any]:
    """status.autoscale: the evidence, the message, and the last change (kept until the next)."""
    out: dict[str, Any] = {"message": decision.message[:1024]}
    if decision.worst is not None:
        out["job"] = decision.worst.job
        if not math.isinf(decision.worst.seconds):
            out["drainSeconds"] = round(decision.worst.seconds, 3)
    before = previous or {}
    if decision.changed:
        out["lastScaleTime"] = now_iso
        out["lastScale"] = decision.reason[:1024]
    else:
        for key in ("lastScaleTime", "lastScale"):
            if before.get(key):
                out[key] = before[key]
    return out
