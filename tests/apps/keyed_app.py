"""A test app: a keyed stream job counting events per key in ctx.keyed_state.

Each HTTP-ingested event {"id", "key"} adds one to its key's count; the output carries the count
after it, so the highest count seen per key is the state's total. KEYED_SINK (JSON lines),
KEYED_EVENT_MS (work per event), KEYED_DEAD_LETTER. An event with "bad": true stores a value
keyed state cannot hold.

Job "bulk" (keyed too): an event {"id", "n"} writes keys 0..n-1 of ctx.keyed_state("keys")
(with "bad": true, an unstorable value after them) and outputs the state's size after it: a
task with many changes, which its executor ships after the body (executor/runner.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from neptune_runtime import App, TaskContext, checkpoint, sinks, sources

EVENT_MS = float(os.environ.get("KEYED_EVENT_MS", "0"))


def count(ctx: TaskContext, events: Iterator[Any]) -> list[dict[str, Any]]:
    counts = ctx.keyed_state("counts")
    out = []
    for event in events:
        deadline = time.perf_counter() + EVENT_MS / 1000
        while time.perf_counter() < deadline:
            checkpoint()
        if event.get("bad"):
            counts[event["key"]] = object()  # not storable: the task must fail, cleanly
            continue
        counts[event["key"]] = counts.get(event["key"], 0) + 1
        out.append({"id": event["id"], "key": event["key"], "count": counts[event["key"]]})
    return out


def bulk(ctx: TaskContext, events: Iterator[Any]) -> list[dict[str, Any]]:
    keys = ctx.keyed_state("keys")
    out = []
    for event in events:
        for i in range(event["n"]):
            keys[i] = [event["id"], i]
        if event.get("bad"):
            keys["bad"] = object()
        out.append({"id": event["id"], "size": len(keys)})
    return out


def unkeyed(ctx: TaskContext, events: Iterator[Any]) -> list[Any]:
    ctx.keyed_state("counts")
    return list(events)


app = App("keyed")
dead = os.environ.get("KEYED_DEAD_LETTER")
app.stream_job("counts", source=sources.HttpIngest(), task=count, slo="1s", keyed=True,
               sink=sinks.JsonLines(os.environ.get("KEYED_SINK", "/dev/null")),
               dead_letter=sinks.JsonLines(dead) if dead else None)
app.stream_job("bulk", source=sources.HttpIngest(), task=bulk, slo="1s", keyed=True,
               max_retries=0, sink=sinks.JsonLines(os.environ.get("KEYED_BULK_SINK", "/dev/null")),
               dead_letter=sinks.JsonLines(dead) if dead else None)
app.stream_job("unkeyed", source=sources.HttpIngest(), task=unkeyed, slo="1s", max_retries=0,
               dead_letter=sinks.JsonLines(dead) if dead else None)
