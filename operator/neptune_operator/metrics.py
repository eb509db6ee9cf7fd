"""The operator's own Prometheus metrics (names in base units, prefix neptune_operator_)."""

from __future__ import annotations

import contextlib
from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

RECONCILES = Counter("neptune_operator_reconciles_total",
                     "Reconciles by action (create, scale, roll, reload, status, ...).",
                     ["action"])
ERRORS = Counter("neptune_operator_reconcile_errors_total",
                 "Reconciles that failed, by action and whether kopf will retry.",
                 ["action", "retry"])
DURATION = Histogram("neptune_operator_reconcile_duration_seconds",
                     "Time spent in one reconcile.", ["action"],
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
PRIORITY_CHANGES = Counter("neptune_operator_priority_changes_total",
                           "Feedback loop steps.", ["direction"])
AUTOSCALE_CHANGES = Counter("neptune_operator_autoscale_changes_total",
                            "Executor replica changes made by the autoscaler.", ["direction"])
JOB_SLO = Gauge("neptune_operator_job_slo_seconds", "SLO of each stream job.",
                ["namespace", "app", "job"])
EXECUTORS_DESIRED = Gauge("neptune_operator_executors_desired",
                          "Executor pods wanted (0 while suspended).", ["namespace", "app"])
EXECUTORS_READY = Gauge("neptune_operator_executors_ready", "Executor pods ready.",
                        ["namespace", "app"])

# (namespace, name) -> phase, kept by the handlers; exported as counts per phase.
PHASES: dict[tuple[str, str], str] = {}
ALL_PHASES = ("Pending", "Running", "Degraded", "Suspended", "Failed")


class AppsByPhase(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("neptune_operator_apps", "ContinuousApplications by phase.",
                                   labels=["phase"])
        counts = Tally(PHASES.values())
        for phase in sorted(set(ALL_PHASES) | set(counts)):
            family.add_metric([phase], counts.get(phase, 0))
        yield family


def register(registry: CollectorRegistry = REGISTRY) -> None:
    registry.register(AppsByPhase())
    # Error series exist at 0 from the start: rate() and alerts over them need a series.
    for action in ("create", "resume", "status"):
        for retry in ("true", "false"):
            ERRORS.labels(action, retry)


def forget(namespace: str, name: str, jobs: list[str]) -> None:
    """Drop a deleted app's series, so dashboards do not show ghosts."""
    PHASES.pop((namespace, name), None)
    for gauge in (EXECUTORS_DESIRED, EXECUTORS_READY):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
    for job in jobs:
        with contextlib.suppress(KeyError):
            JOB_SLO.remove(namespace, name, job)
