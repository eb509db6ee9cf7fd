"""A tiny app whose stream job can never meet its SLO (1 us): drives the operator's
feedback loop in test_integration_feedback.py with a real driver and executor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from neptune_runtime import App, TaskContext, sources


def echo(ctx: TaskContext, events: Iterator[Any]) -> list[Any]:
    return list(events)


def read(partition: int, epoch: int) -> Iterator[int]:
    yield from range(1000)


def total(ctx: TaskContext, rows: Iterator[Any]) -> int:
    return sum(rows)


app = App("always-late")
app.stream_job("late", source=sources.Synthetic(rate=50.0, partitions=1, seed=1), task=echo,
               slo="1us")
app.batch_job("count", read=read, task=total, partitions=2)
