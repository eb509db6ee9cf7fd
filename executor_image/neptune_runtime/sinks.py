"""Stream sinks: where a stream job's outputs go. They run on the driver.

A sink that raises fails the delivery: the driver keeps the outputs, writes them again with a
back-off, marks the job degraded meanwhile, and commits none of their offsets until the sink
took them. Before the driver commits offsets it calls `sync`, so that what the commit stands for
is durable first.
"""

from __future__ import annotations

import json
import logging
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

log = logging.getLogger("neptune.sink")


class Sink(ABC):
    @abstractmethod
    def write(self, job: str, outputs: list[Any]) -> None:
        """Hand the outputs of job `job` on; raise if they were not taken (they are written
        again, and nothing of them is committed meanwhile)."""

    def sync(self) -> None:  # noqa: B027 - most sinks hand on in `write`
        """Make everything written so far durable (called off the event loop, before a commit)."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release what the sink holds (at the driver's stop)."""


class Log(Sink):
    """Log each output at INFO on the driver."""

    def write(self, job: str, outputs: list[Any]) -> None:
        """Log each output."""
        for output in outputs:
            log.info("%s: %s", job, output)


def _finite(value: Any) -> Any:
    """`value` with NaN and the infinities, which JSON cannot hold, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_line(value: Any, allow_nan: bool = False) -> str:
    """One line of strict JSON (NaN and infinities as null, unless `allow_nan`); objects JSON
    has no type for are written as their str()."""
    try:
        return json.dumps(value, default=str, allow_nan=allow_nan) + "\n"
    except ValueError:  # a non-finite float: rare, so the walk is paid only then
        return json.dumps(_finite(value), default=str) + "\n"


class JsonLines(Sink):
    """Append each output as one line of JSON to `path`.

    The lines are strict JSON: NaN and +-Infinity, which JSON has no literal for, are written
    as null. `allow_nan=True` writes Python's non-standard `NaN`/`Infinity` instead."""

    def __init__(self, path: str | os.PathLike[str], *, allow_nan: bool = False) -> None:
        self.path = os.fspath(path)
        self.allow_nan = allow_nan
        self._handle: Any = None

    def write(self, job: str, outputs: list[Any]) -> None:
        """Append each output as a line."""
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        self._handle.write("".join(json_line(o, self.allow_nan) for o in outputs))
        self._handle.flush()

    def sync(self) -> None:
        handle = self._handle
        if handle is not None:
            os.fsync(handle.fileno())

    def __repr__(self) -> str:
        return f"JsonLines({self.path!r})"

    def close(self) -> None:
        """Close the file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class Callback(Sink):
    """Call `fn(job, outputs)` on the driver."""

    def __init__(self, fn: Callable[[str, list[Any]], None]) -> None:
        self.fn = fn

    def write(self, job: str, outputs: list[Any]) -> None:
        """Call the function."""
        self.fn(job, outputs)


from .kafka.sink import KafkaSink as Kafka  # noqa: E402  # it builds on the above

__all__ = ["Callback", "JsonLines", "Kafka", "Log", "Sink", "json_line"]
