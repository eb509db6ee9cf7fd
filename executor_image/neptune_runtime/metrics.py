"""The driver's Prometheus metrics (names in base units, see docs/architecture.md). The
executors' are in executor/metrics.py: each process shows only its own series.

Observations are made per task, never per record: `observe()` takes a lock.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from .buckets import FAST_BUCKETS, TASK_BUCKETS

QUEUE_DELAY = Histogram(
    "neptune_task_queue_delay_seconds", "From a task being ready to it starting.",
    ["job", "kind"], buckets=FAST_BUCKETS,
)
STREAM_LATENCY = Histogram(
    "neptune_stream_latency_seconds", "From an event's arrival at the driver to its result.",
    ["job"], buckets=FAST_BUCKETS,
)
YIELD_INTERVAL = Histogram(
    "neptune_yield_interval_seconds",
    "Per task, the longest time between two of its yield points: how long a preemption of it "
    "may wait.", ["job"], buckets=FAST_BUCKETS,
)
SUSPENSIONS = Counter("neptune_task_suspensions_total", "Tasks suspended.", ["job"])
PREEMPTIONS = Counter(
    "neptune_task_preemptions_total", "Preemption decisions by policy and action.",
    ["policy", "action"],
)
TASKS = Gauge("neptune_tasks", "Tasks by state and kind.", ["state", "kind"])
BATCH_RECORDS = Counter("neptune_batch_records_total", "Records processed by batch tasks.", ["job"])
# Per stage of a batch job (the dataset API's are several, split at shuffles; other batch
# jobs have one, "0"): its tasks finished, their duration, their records.
STAGE_TASKS = Counter(
    "neptune_stage_tasks_total", "Batch stage tasks finished, per stage.", ["job", "stage"]
)
STAGE_TASK_SECONDS = Histogram(
    "neptune_stage_task_seconds",
    "From a batch stage task's start to it finishing (its last attempt, suspensions included).",
    ["job", "stage"], buckets=TASK_BUCKETS,
)
STAGE_RECORDS = Counter(
    "neptune_stage_records_total", "Records processed by batch stage tasks, per stage.",
    ["job", "stage"],
)
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
SOURCE_BAD_RECORDS = Counter(
    "neptune_source_bad_records_total", "Source records that could not be decoded, skipped.",
    ["job"],
)
SOURCE_LAG = Gauge(
    "neptune_source_lag_records", "Records waiting in the source, per partition.",
    ["job", "partition"],
)
DEAD_LETTERS = Counter(
    "neptune_dead_letter_total", "Records that kept failing, sent to the dead-letter sink.", ["job"]
)
SINK_FAILURES = Counter(
    "neptune_sink_failures_total", "Sink writes that raised (the outputs are written again).",
    ["job"],
)
WIRE_ERRORS = Counter(
    "neptune_wire_errors_total",
    "Executor connections dropped for an invalid or unauthenticated frame or message.",
)
HTTP_AUTH_FAILURES = Counter(
    "neptune_http_auth_failures_total", "HTTP requests refused for a missing or wrong token.",
    ["endpoint"],
)

TASK_STATES = ("queued", "sent", "running", "suspended", "finished", "failed", "killed")


def declare_stream_job(job: str) -> None:
    """Show a stream job's counters at 0 from its start: a series that appears only at its first
    increment leaves `rate()` with no data, so a dashboard panel or an alert reads "unknown"
    where the truth is "none"."""
    for counter in (SLO_VIOLATIONS, EVENTS_INGESTED, SOURCE_BAD_RECORDS, DEAD_LETTERS,
                    SINK_FAILURES, TASK_FAILURES):
        counter.labels(job)
