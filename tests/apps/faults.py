"""A test app: HTTP-ingested stream job with a sink, and a batch job that sums partitions.

Environment: FAULTS_SINK (JSON-lines output path), FAULTS_BAD_JOB=1 adds a batch job whose
tasks always raise, FAULTS_EVENT_MS (work per event), FAULTS_EPOCHS (batch epochs, 0 = forever),
FAULTS_PARTITION_RECORDS (records per batch partition), FAULTS_RUN_LOG (a file to which each
stream task appends its id when it starts, on the executor), FAULTS_TRIGGER (the stream job's
trigger, default per event), FAULTS_ON_ERROR (its on_error), FAULTS_DEAD_LETTER (a JSON-lines
dead-letter path; default the runtime's), FAULTS_RECORD_SLEEP_MS (each batch record sleeps this
long: a coarse record, like a C call), FAULTS_NO_DOORBELL=1 (the driver cannot ring the
executors' doorbells, as across pods). An event with `"poison": true` makes its task raise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from neptune_runtime import App, TaskContext, checkpoint, sinks, sources

EVENT_MS = float(os.environ.get("FAULTS_EVENT_MS", "1"))
RUN_LOG = os.environ.get("FAULTS_RUN_LOG")
PARTITION_RECORDS = int(os.environ.get("FAULTS_PARTITION_RECORDS", "20000"))
RECORD_SLEEP = float(os.environ.get("FAULTS_RECORD_SLEEP_MS", "0")) / 1000

if os.environ.get("FAULTS_NO_DOORBELL") == "1":
    from neptune_runtime import doorbell

    def _cannot_attach(*_args: object) -> None:  # as a driver in another pod
        return None

    doorbell.Ringer.attach = _cannot_attach  # type: ignore[method-assign, assignment]


def handle(ctx: TaskContext, events: Iterator[Any]) -> list[dict[str, Any]]:
    if RUN_LOG:
        with open(RUN_LOG, "a") as log:
            log.write(f"{ctx.task_id}/{ctx.attempt}\n")
    out = []
    for event in events:
        if event.get("poison"):
            raise ValueError(f"poison event {event['id']}")
        deadline = time.perf_counter() + EVENT_MS / 1000
        while time.perf_counter() < deadline:
            checkpoint()
        out.append({"id": event["id"], "executor": os.getpid()})
    return out


def read(partition: int, epoch: int) -> range:
    return range(partition * PARTITION_RECORDS, (partition + 1) * PARTITION_RECORDS)


def total(ctx: TaskContext, records: Iterator[int]) -> int:
    acc = 0
    for record in records:  # every record is a yield point
        if RECORD_SLEEP:
            time.sleep(RECORD_SLEEP)
        acc += record * record % 7
    return acc


def combine(results: list[int], previous: int) -> int:
    return sum(results)


def always_raises(ctx: TaskContext, records: Iterator[int]) -> int:
    raise RuntimeError(f"bad partition {ctx.partition}")


app = App("faults")
dead_letter = os.environ.get("FAULTS_DEAD_LETTER")
app.stream_job("events", source=sources.HttpIngest(), task=handle, slo="50ms",
               sink=sinks.JsonLines(os.environ.get("FAULTS_SINK", "/dev/null")),
               trigger=os.environ.get("FAULTS_TRIGGER"),
               on_error=os.environ.get("FAULTS_ON_ERROR", "dead_letter"),  # type: ignore[arg-type]
               dead_letter=sinks.JsonLines(dead_letter) if dead_letter else None)
epochs = int(os.environ.get("FAULTS_EPOCHS", "0")) or None
app.batch_job("sums", read=read, task=total, partitions=6, combine=combine, publishes="sums",
              initial_state=0, max_epochs=epochs)
if os.environ.get("FAULTS_BAD_JOB") == "1":
    app.batch_job("bad", read=read, task=always_raises, partitions=1, max_retries=2)
