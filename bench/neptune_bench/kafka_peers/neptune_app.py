"""Our side of the Kafka and window benchmarks, configured by environment variables.

KB_MODE:
- "keyed" (kafka_bench): sources.Kafka -> a keyed stream job (`keyed=True`, `batchable=True`:
  a task takes every event that waits on its partition) keeping each key's running [count, sum]
  in `ctx.keyed_state("agg")` (kafka_peers.aggregate) -> sinks.Kafka, at least once;
- "window" (window_bench): the dataflow API, app.stream(...).key_by("key")
  .window(tumbling(WINDOW_MS), time="ts").count().final() -> sinks.Kafka;
- "batch": the batch job only (batch alone).
KB_BATCH=1 adds the benchmark's batch job (neptune_bench.workload's read and batch_task:
BENCH_BATCH_MS of ~10 us records, BENCH_LOOPS iterations a record). KB_IN, KB_OUT, KB_GROUP,
KB_BOOTSTRAP; KB_EXACTLY_ONCE=1: the sink's `exactly_once`. An event with "bulk": N writes N
keys into the state in one task (the checkpoint probe of kafka_bench: its changes make one
checkpoint of N keys) and outputs {"bulk_done": wall-clock ms} when its writes are made.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from neptune_bench import kafka_peers as kp
from neptune_bench import workload
from neptune_runtime import App, TaskContext, sinks, sources
from neptune_runtime import dataflow as df

MODE = os.environ.get("KB_MODE", "keyed")
BOOTSTRAP = os.environ.get("KB_BOOTSTRAP", kp.BOOTSTRAP)
TOPIC_IN = os.environ.get("KB_IN", "in")
TOPIC_OUT = os.environ.get("KB_OUT", "out")
GROUP = os.environ.get("KB_GROUP", "neptune-bench")
EXACTLY_ONCE = os.environ.get("KB_EXACTLY_ONCE") == "1"


def keyed_task(ctx: TaskContext, events: Iterator[Any]) -> list[dict[str, Any]]:
    state = ctx.keyed_state("agg")
    out = []
    for ev in events:
        bulk = ev.get("bulk")
        if bulk:
            for i in range(bulk):
                state[f"bulk{i:07d}"] = [1, i]
            out.append({"key": "bulk", "bulk_done": time.time() * 1000})
            continue
        key = ev["key"]
        value, result = kp.aggregate(state.get(key), ev)
        state[key] = value
        out.append(result)
    return out


def _source() -> sources.Kafka:
    return sources.Kafka(TOPIC_IN, bootstrap=BOOTSTRAP, group=GROUP)


def _sink() -> sinks.Kafka:
    return sinks.Kafka(TOPIC_OUT, bootstrap=BOOTSTRAP, key=lambda o: o["key"],
                       exactly_once=EXACTLY_ONCE)


app = App("kafka-bench")
if MODE == "keyed":
    app.stream_job("agg", source=_source(), task=keyed_task, slo="50ms", keyed=True,
                   batchable=True, sink=_sink())
elif MODE == "window":
    (app.stream("windows", _source(), slo="1s")
     .key_by("key")
     .window(df.tumbling(kp.WINDOW_MS), time="ts")
     .count()
     .final()
     .to(_sink()))
if MODE == "batch" or os.environ.get("KB_BATCH") == "1":
    app.batch_job("batch", read=workload.read, task=workload.batch_task,
                  partitions=workload.PARTITIONS, cache_partitions=False)
