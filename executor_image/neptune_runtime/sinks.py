"""Stream sinks: where a stream job's outputs go. They run on the driver."""

from __future__ import annotations

import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

log = logging.getLogger("neptune.sink")


class Sink(ABC):
    @abstractmethod
    def write(self, job: str, outputs: list[Any]) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional
        pass


class Log(Sink):
    """Log each output at INFO on the driver."""

    def write(self, job: str, outputs: list[Any]) -> None:
        for output in outputs:
            log.info("%s: %s", job, output)


class JsonLines(Sink):
    """Append each output as one JSON line to `path`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._handle: Any = None

    def write(self, job: str, outputs: list[Any]) -> None:
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        for output in outputs:
            self._handle.write(json.dumps(output, default=str) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class Callback(Sink):
    """Call `fn(job, outputs)` on the driver."""

    def __init__(self, fn: Callable[[str, list[Any]], None]) -> None:
        self.fn = fn

    def write(self, job: str, outputs: list[Any]) -> None:
        self.fn(job, outputs)
