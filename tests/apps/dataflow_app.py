"""A test app of the dataflow API: a tumbling-window count per key over HTTP-ingested events,
and (DF_BATCH=1) a slow batch job beside it for the window job's tasks to preempt.

Events are {"id", "key", "ts", "v"}. The stream keys them by "key", counts them and sums "v" in
tumbling windows of DF_SIZE (10) over "ts" with DF_GRACE (0) of grace; each closed window goes
to DF_SINK, each late event to DF_LATE (JSON lines). DF_EVENT_MS: busy time per event (with
yield points in it); DF_BATCH_US: busy time per record of the batch job (10000 records a task).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from neptune_runtime import App, TaskContext, checkpoint, sinks, sources
from neptune_runtime import dataflow as df

SIZE = float(os.environ.get("DF_SIZE", "10"))
GRACE = float(os.environ.get("DF_GRACE", "0"))
EVENT_MS = float(os.environ.get("DF_EVENT_MS", "0"))
BATCH_US = float(os.environ.get("DF_BATCH_US", "200"))


def busy(event: Any) -> Any:
    deadline = time.perf_counter() + EVENT_MS / 1000
    while time.perf_counter() < deadline:
        checkpoint()
    return event


def crunch(ctx: TaskContext, records: Iterator[int]) -> int:
    total = 0
    for record in records:  # a yield point per record
        deadline = time.perf_counter() + BATCH_US / 1e6
        while time.perf_counter() < deadline:
            pass
        total += record
    return total


app = App("dataflow")
(app.stream("clicks", sources.HttpIngest(), slo="1s")
 .map(busy)
 .key_by("key")
 .window(df.tumbling(SIZE), time="ts", grace=GRACE,
         late=sinks.JsonLines(os.environ.get("DF_LATE", "/dev/null")))
 .agg(n=df.count(), total=df.sum("v"))
 .final()
 .to(sinks.JsonLines(os.environ.get("DF_SINK", "/dev/null"))))

if os.environ.get("DF_BATCH") == "1":
    app.batch_job("crunch", read=lambda partition, epoch: range(10_000), task=crunch,
                  partitions=4, combine=lambda results, previous: sum(results))

