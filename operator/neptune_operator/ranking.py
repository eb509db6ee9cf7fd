"""Cluster-wide priorities: rank every application's stream jobs, then derive
(a) each application's PriorityClass and (b) each application's runtime priority table.

Key of a stream job: effective app priority (spec.priority + feedback boost * BOOST_STEP),
higher first; then SLO, tighter first; then namespace/app/job names so the order is total
and stable (the same input always gives the same output, so re-applying changes nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# Runtime priorities (higher = more urgent), matching neptune_runtime.app's defaults:
# batch jobs stay at 0, stream jobs start at 10 and go up with their cluster-wide rank.
BATCH_PRIORITY = 0
STREAM_BASE = 10
# One feedback step raises an app as if its spec.priority were this much higher.
BOOST_STEP = 100


@dataclass(frozen=True)
class PriorityClassSpec:
    name: str
    min_priority: int  # lowest effective app priority that gets this class


DEFAULT_CLASSES: tuple[PriorityClassSpec, ...] = (
    PriorityClassSpec("neptune-low", 0),
    PriorityClassSpec("neptune-normal", 100),
    PriorityClassSpec("neptune-high", 500),
    PriorityClassSpec("neptune-critical", 900),
)


@dataclass(frozen=True)
class JobSpec:
    name: str
    kind: str  # stream | batch
    slo_seconds: float | None = None


@dataclass(frozen=True)
class AppSpec:
    namespace: str
    name: str
    priority: int
    jobs: tuple[JobSpec, ...]
    boost: int = 0
    suspended: bool = False  # no pods: it still ranks, but takes no CPU (cpushare.levels)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def effective_priority(self) -> int:
        return self.priority + self.boost * BOOST_STEP


@dataclass(frozen=True)
class Assignment:
    priority_class: str
    rank: int | None  # cluster-wide rank of the app's best stream job; None: no stream job
    effective_priority: int
    table: Mapping[str, int] = field(default_factory=dict)  # job -> runtime priority
    reason: str = ""


def class_for(effective: int, classes: Sequence[PriorityClassSpec]) -> str:
    chosen = min(classes, key=lambda c: c.min_priority)
    for cls in sorted(classes, key=lambda c: c.min_priority):
        if effective >= cls.min_priority:
            chosen = cls
    return chosen.name


def rank(apps: Iterable[AppSpec],
         classes: Sequence[PriorityClassSpec] = DEFAULT_CLASSES
         ) -> dict[tuple[str, str], Assignment]:
    apps = list(apps)
    stream = [
        (app, job)
        for app in apps
        for job in app.jobs
        if job.kind == "stream"
    ]
    stream.sort(key=lambda aj: (-aj[0].effective_priority,
                                aj[1].slo_seconds if aj[1].slo_seconds is not None
                                else float("inf"),
                                aj[0].namespace, aj[0].name, aj[1].name))
    total = len(stream)
    positions: dict[tuple[str, str, str], int] = {
        (app.namespace, app.name, job.name): i for i, (app, job) in enumerate(stream)
    }
    out: dict[tuple[str, str], Assignment] = {}
    for app in apps:
        table: dict[str, int] = {}
        best: int | None = None
        for job in app.jobs:
            if job.kind == "stream":
                pos = positions[(app.namespace, app.name, job.name)]
                best = pos if best is None else min(best, pos)
                # First in the cluster gets the highest number; every stream job > batch.
                table[job.name] = STREAM_BASE + (total - 1 - pos)
            else:
                table[job.name] = BATCH_PRIORITY
        cls = class_for(app.effective_priority, classes)
        reason = (f"priority {app.priority}"
                  + (f" + boost {app.boost}" if app.boost else "")
                  + (f"; best stream job ranked {best + 1} of {total}" if best is not None
                     else "; no stream job"))
        out[app.key] = Assignment(cls, best, app.effective_priority, dict(sorted(table.items())),
                                  reason)
    return out
