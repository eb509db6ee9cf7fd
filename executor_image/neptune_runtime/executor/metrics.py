"""The executors' Prometheus metrics (served on each executor's --metrics-port; the driver's
are in ../metrics.py). Only an executor process imports this module, so that neither side
shows the other's series, always 0.

Observations are made per task, never per record: `observe()` takes a lock.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ..buckets import FAST_BUCKETS, TASK_BUCKETS

SUSPENSION_LATENCY = Histogram(
    "neptune_task_suspension_latency_seconds",
    "From a preempting task's arrival at the executor to the running task being suspended.",
    buckets=FAST_BUCKETS,
)
TASK_DURATION = Histogram(
    "neptune_task_duration_seconds", "Wall time from a task starting to it finishing.",
    ["job", "kind"], buckets=TASK_BUCKETS,
)
EXECUTOR_MEMORY = Gauge("neptune_executor_memory_bytes", "Executor resident memory.")
EXECUTOR_SUSPENDED = Gauge("neptune_executor_suspended_tasks", "Tasks suspended on the executor.")
WIRE_ERRORS = Counter(
    "neptune_executor_wire_errors_total",
    "Driver connections dropped for an invalid or unauthenticated frame or message.",
)
