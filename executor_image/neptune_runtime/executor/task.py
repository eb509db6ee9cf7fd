"""The executor's record of one task."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import greenlet


@dataclass(slots=True)  # slots: cheaper to make and to read, cold, on the preemption path
class TaskRecord:
    id: str
    job: str
    kind: str
    partition: int
    epoch: int
    stage: int
    attempt: int
    priority: int
    records: list[Any] | None
    glet: greenlet.greenlet | None = None
    started_ns: int = 0
    received_ns: int = 0
    noticed_ns: int = 0  # a preempting one: when a yield point noticed its `run` coming
    noticed_span_ns: int = 0  # and the time since the tune before that yield point
    consumed: int = 0
    outcome: tuple[str, Any] | None = None  # set by the task's greenlet as it ends
    preempting: bool = False  # started from the greenlet of the task it preempted
    more: int = 0  # stream tasks the driver still held when it sent this one
    max_gap_ns: int = 0  # the longest time between two of its yield points
    changes: list[Any] | None = None  # a keyed task's state changes, once it succeeded
    shipments: Iterator[Any] | None = None  # or, for many, shipped from the hub (runner.py)


def from_run(message: dict[str, Any], received_ns: int) -> TaskRecord:
    """The record of a `run` message (its fields were checked by protocol.check)."""
    return TaskRecord(id=message["id"], job=message["job"], kind=message["kind"],
                      partition=message["partition"], epoch=message["epoch"],
                      stage=message.get("stage") or 0,
                      attempt=message["attempt"], priority=message["priority"],
                      records=message.get("records"), received_ns=received_ns,
                      more=message.get("more") or 0)
