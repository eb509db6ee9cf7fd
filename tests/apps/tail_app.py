"""A test app reading a JSON-lines directory (TAIL_DIR) into a JSON-lines sink (TAIL_SINK)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from neptune_runtime import App, TaskContext, sinks, sources


def echo(ctx: TaskContext, events: Iterator[Any]) -> list[Any]:
    return list(events)


app = App("tail")
app.stream_job("lines", source=sources.JsonLinesTail(os.environ["TAIL_DIR"], poll=0.05),
               task=echo, slo="1s", trigger="20ms",
               sink=sinks.JsonLines(os.environ["TAIL_SINK"]))
