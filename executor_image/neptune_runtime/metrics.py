"""Prometheus metrics of the runtime (names in base units, see docs/architecture.md).

Observations are made per task, never per record: `observe()` takes a lock.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Sub-millisecond buckets: suspension takes microseconds, prometheus' default starts at 5 ms.
FAST_BUCKETS = (
    10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
    1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0, 10.0,
)
TASK_BUCKETS = (1e-3, 5e-3, 10e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

SUSPENSION_LATENCY = Histogram(
    "neptune_task_suspension_latency_seconds",
    "From a preempting task's arrival at the executor to the running task being suspended.",
    buckets=FAST_BUCKETS,
)
QUEUE_DELAY = Histogram(
    "neptune_task_queue_delay_seconds", "From a task being ready to it starting.",
    ["job", "kind"], buckets=FAST_BUCKETS,
)
STREAM_LATENCY = Histogram(
    "neptune_stream_latency_seconds", "From an event's arrival at the driver to its result.",
    ["job"], buckets=FAST_BUCKETS,
)
TASK_DURATION = Histogram(
    "neptune_task_duration_seconds", "Wall time from a task starting to it finishing.",
    ["job", "kind"], buckets=TASK_BUCKETS,
)
SUSPENSIONS = Counter("neptune_task_suspensions_total", "Tasks suspended.", ["job"])
PREEMPTIONS = Counter(
    "neptune_task_preemptions_total", "Preemption decisions by policy and action.",
    ["policy", "action"],
)
TASKS = Gauge("neptune_tasks", "Tasks by state and kind.", ["state", "kind"])
BATCH_RECORDS = Counter("neptune_batch_records_total", "Records processed by batch tasks.", ["job"])
SLO_VIOLATIONS = Counter(
    "neptune_slo_violations_total", "Stream results later than the job's SLO.", ["job"]
)
WASTED = Counter(
    "neptune_wasted_task_seconds_total", "Task run time thrown away by killing tasks."
)
TASK_FAILURES = Counter(
    "neptune_task_failures_total", "Task attempts that raised.", ["job"]
)
INGEST_REJECTED = Counter(
    "neptune_ingest_rejected_total", "Ingest requests or events rejected.", ["job", "reason"]
)
EVENTS_INGESTED = Counter("neptune_events_ingested_total", "Events accepted.", ["job"])
AUTH_FAILURES = Counter(
    "neptune_auth_failures_total", "Executor connections dropped during the handshake.",
    ["reason"],
)
EXECUTORS = Gauge("neptune_executors", "Registered executors.")
EXECUTORS_LOST = Counter("neptune_executors_lost_total", "Executors whose connection was lost.")
STATE_VERSION = Gauge("neptune_shared_state_version", "Published shared state version.", ["name"])
EXECUTOR_MEMORY = Gauge("neptune_executor_memory_bytes", "Executor resident memory.")
EXECUTOR_SUSPENDED = Gauge("neptune_executor_suspended_tasks", "Tasks suspended on the executor.")

TASK_STATES = ("queued", "running", "suspended", "finished", "failed", "killed")
