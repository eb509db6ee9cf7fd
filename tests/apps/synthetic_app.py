"""A test app: a Synthetic stream (SYNTH_RATE events/s, two partitions) echoed into a JSON-lines
sink (SYNTH_SINK), each output carrying the event's global index."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

from neptune_runtime import App, TaskContext, sinks, sources

PARTITIONS = 2


def make(partition: int, n: int, rng: random.Random) -> dict[str, Any]:
    return {"index": n * PARTITIONS + partition, "x": rng.random()}


def echo(ctx: TaskContext, events: Iterator[Any]) -> list[Any]:
    return list(events)


app = App("synthetic")
app.stream_job("numbers", source=sources.Synthetic(rate=float(os.environ.get("SYNTH_RATE", "200")),
                                                   make=make, partitions=PARTITIONS, seed=3),
               task=echo, slo="1s", sink=sinks.JsonLines(os.environ["SYNTH_SINK"]))
