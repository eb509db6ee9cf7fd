"""Stream sources. They run on the driver (asyncio) and emit events with a commit token.

A token is the source's own position (a file offset, an ingest sequence number). The driver
calls `commit(token)` only once every event up to that token has been processed by a finished
task, so a restart resumes from the last committed position: at-least-once delivery.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class SourceOutput(Protocol):
    def emit(self, value: Any, token: Any) -> None: ...

    def emit_all(self, events: list[tuple[Any, Any]]) -> None:
        """Several (value, token) events at once: the driver schedules once for all."""

    def malformed(self, reason: str) -> None: ...


class Source(ABC):
    """Base of all sources: `run` emits events until cancelled."""

    kind = "source"

    @abstractmethod
    async def run(self, out: SourceOutput) -> None: ...

    def commit(self, token: Any) -> None:  # noqa: B027 - most sources have nothing to persist
        """Persist that everything up to `token` is processed."""


def _default_make(partition: int, index: int, rng: random.Random) -> Any:
    return {"partition": partition, "index": index, "x": rng.random()}


class Synthetic(Source):
    """Events at `rate` per second, Poisson or evenly spaced, deterministic per partition.

    Event i goes to partition i % partitions; its value is `make(partition, n, rng)` where n counts
    that partition's events and rng is seeded by (seed, partition), so a partition's event
    sequence is the same on every run whatever the timing.
    """

    kind = "synthetic"

    def __init__(
        self,
        rate: float,
        make: Callable[[int, int, random.Random], Any] = _default_make,
        *,
        arrival: str = "poisson",
        partitions: int = 1,
        seed: int = 0,
        limit: int | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"Synthetic: rate must be positive, got {rate}")
        if arrival not in ("poisson", "constant"):
            raise ValueError(f"Synthetic: arrival must be 'poisson' or 'constant', got {arrival!r}")
        if partitions < 1:
            raise ValueError(f"Synthetic: partitions must be at least 1, got {partitions}")
        self.rate = rate
        self.make = make
        self.arrival = arrival
        self.partitions = partitions
        self.seed = seed
        self.limit = limit

    async def run(self, out: SourceOutput) -> None:
        loop = asyncio.get_running_loop()
        timing = random.Random(self.seed)
        rngs = [random.Random(self.seed * 1_000_003 + p) for p in range(self.partitions)]
        counts = [0] * self.partitions
        due = loop.time()
        index = 0
        while self.limit is None or index < self.limit:
            gap = timing.expovariate(self.rate) if self.arrival == "poisson" else 1.0 / self.rate
            due += gap
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            p = index % self.partitions
            out.emit(self.make(p, counts[p], rngs[p]), index)
            counts[p] += 1
            index += 1


class HttpIngest(Source):
    """Events POSTed to the driver at /ingest/JOB (a JSON value, a JSON array, or JSON lines)."""

    kind = "http"

    def __init__(self) -> None:
        self._out: SourceOutput | None = None
        self._seq = 0

    async def run(self, out: SourceOutput) -> None:
        self._out = out
        await asyncio.Event().wait()

    @property
    def accepting(self) -> bool:
        return self._out is not None

    def ingest(self, values: list[Any]) -> int:
        if self._out is None:
            raise RuntimeError("source not started")
        self._out.emit_all([(value, self._seq + i) for i, value in enumerate(values)])
        self._seq += len(values)
        return len(values)


def parse_body(body: bytes, content_type: str) -> list[Any]:
    """Parse an ingest request body into events; raise ValueError naming the problem."""
    if not body.strip():
        raise ValueError("empty body: send a JSON value, a JSON array, or JSON lines")
    text = body.decode("utf-8", errors="strict")
    if "ndjson" in content_type or "jsonl" in content_type or "json-seq" in content_type:
        events = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"line {number}: invalid JSON: {exc.msg}") from None
        return events
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    return value if isinstance(value, list) else [value]


class JsonLinesTail(Source):
    """Tail a JSON-lines file, or every `*.jsonl` file of a directory in name order.

    Committed positions are kept in `offsets_file` (default: beside the data), so a restarted
    driver resumes after the last line whose task finished. A line that is not valid JSON is
    counted as malformed and skipped.
    """

    kind = "jsonl"

    def __init__(self, path: str | os.PathLike[str], *, poll: float = 0.1,
                 offsets_file: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.poll = poll
        default = (self.path / ".neptune-offsets.json" if self.path.is_dir()
                   else self.path.with_name(self.path.name + ".offsets.json"))
        self.offsets_file = Path(offsets_file) if offsets_file else default

    def _files(self) -> list[Path]:
        if self.path.is_dir():
            return sorted(self.path.glob("*.jsonl"))
        return [self.path] if self.path.exists() else []

    def committed(self) -> dict[str, int]:
        try:
            data = json.loads(self.offsets_file.read_text())
        except FileNotFoundError:
            return {}
        return {str(k): int(v) for k, v in data.items()}

    def commit(self, token: Any) -> None:
        name, offset = token
        offsets = self.committed()
        offsets[name] = offset
        tmp = self.offsets_file.with_name(self.offsets_file.name + ".tmp")
        tmp.write_text(json.dumps(offsets))
        os.replace(tmp, self.offsets_file)

    async def run(self, out: SourceOutput) -> None:
        positions = self.committed()
        while True:
            for file in self._files():
                positions[file.name] = self._read_new(file, positions.get(file.name, 0), out)
            await asyncio.sleep(self.poll)

    @staticmethod
    def _read_new(file: Path, start: int, out: SourceOutput) -> int:
        events: list[tuple[Any, Any]] = []
        with file.open("rb") as handle:
            handle.seek(start)
            position = start
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # a line still being written: read it whole next time
                position += len(raw)
                if not raw.strip():
                    continue
                try:
                    value = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    out.malformed(f"{file.name} at byte {position - len(raw)}: {exc}")
                    continue
                events.append((value, (file.name, position)))
        if events:
            out.emit_all(events)
        return position
