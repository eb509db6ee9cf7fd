"""Stream sources. They run on the driver (asyncio) and emit events with a commit token.

A token is the source's own position (a file offset, an ingest sequence number). The driver
calls `commit(token)` only once every event up to that token has been processed by a finished
task, so a restart resumes from the last committed position: at-least-once delivery. A driver
with a state directory persists the committed tokens and hands each source its job's through
`restore` before `run` (durable.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from .durable import IngestLog

REPLAY_CHUNK = 1000  # events read and emitted between two turns of the driver's event loop


class SourceOutput(Protocol):
    def emit(self, value: Any, token: Any, partition: int = 0) -> None:
        """One event of `partition`, with its token."""

    def emit_all(self, events: list[tuple[Any, Any]], partition: int = 0) -> None:
        """Several (value, token) events of one partition at once, in order: the driver
        schedules once for all. Tokens are per partition (`commit` gets them back with it)."""

    def malformed(self, reason: str) -> None:
        """An event that could not be read (counted and skipped), and why."""

    async def room(self) -> None:
        """Return once the job has room for more events in flight (back-pressure: a source
        with a backlog, such as a log to replay, awaits this between chunks)."""

    def degraded(self, cause: str | None) -> None:
        """The source cannot read now, and why (its job shows degraded); None: it reads again."""

    def lag(self, partition: int, records: int) -> None:
        """How many records of `partition` wait in the source, not yet read."""


@dataclass(frozen=True)
class Saved:
    """What a driver with a state directory saved for a job's source."""

    job: str
    committed: Any  # partition 0's last token the driver persisted; None before its first
    state_dir: Path  # where the source may keep files of its own
    partitions: dict[int, Any] = field(default_factory=dict)  # every partition's token


class Source(ABC):
    """Base of all sources: `run` emits events until cancelled."""

    kind = "source"
    # Whether `run` reports the records it has not read out yet (out.lag): until its first
    # report such a source's lag is unknown, not zero.
    reports_lag = False

    @abstractmethod
    async def run(self, out: SourceOutput) -> None:
        """Emit events into `out` until cancelled (on the driver's event loop)."""

    def commit(self, token: Any, partition: int = 0) -> None:  # noqa: B027 - most have nothing
        """Persist that everything of `partition` up to `token` is processed (and handed on)."""

    def restore(self, saved: Saved) -> None:  # noqa: B027 - a source may start over
        """Continue after `saved.committed` instead of from the beginning (called before
        `run`, and only when the driver has a state directory)."""


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
        self._start = 0  # the first index to emit: a token is the event's index

    def restore(self, saved: Saved) -> None:
        if saved.committed is not None:
            self._start = int(saved.committed) + 1

    async def run(self, out: SourceOutput) -> None:
        """Emit the events at their rate, after the committed index."""
        loop = asyncio.get_running_loop()
        timing = random.Random(self.seed)
        rngs = [random.Random(self.seed * 1_000_003 + p) for p in range(self.partitions)]
        counts = [0] * self.partitions
        due = loop.time()
        index = 0
        while self.limit is None or index < self.limit:
            gap = timing.expovariate(self.rate) if self.arrival == "poisson" else 1.0 / self.rate
            p = index % self.partitions
            if index < self._start:
                # Fast-forward after a restart: the same draws as the committed events made, so
                # the sequence goes on as if the driver had never stopped; no waiting for them.
                self.make(p, counts[p], rngs[p])
                due = loop.time()
                if index % 4096 == 4095:
                    await asyncio.sleep(0)  # a long history must not stall the driver
            else:
                due += gap
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                out.emit(self.make(p, counts[p], rngs[p]), index)
            counts[p] += 1
            index += 1


class HttpIngest(Source):
    """Events POSTed to the driver at /ingest/JOB (a JSON value, a JSON array, or JSON lines).

    A token is the number of the job's events accepted up to and including it. With a state
    directory, accepted events go to an ingest log and are durable before `ingest` returns (and
    the request is answered); a restart replays those after the committed token.
    """

    kind = "http"

    def __init__(self) -> None:
        self._out: SourceOutput | None = None
        self._log: IngestLog | None = None
        self._replay_after = 0
        self.accepted = 0  # events accepted (durably, with a log) so far, across restarts
        self._unsynced: deque[tuple[Any, int]] = deque()  # written to the log, not durable yet
        self._syncing = asyncio.Lock()

    def restore(self, saved: Saved) -> None:
        self._log = IngestLog(saved.state_dir / "ingest" / saved.job)
        self._replay_after = int(saved.committed or 0)
        self.accepted = self._log.accepted

    async def run(self, out: SourceOutput) -> None:
        """Replay the logged events after the committed token, then take ingest requests."""
        if self._log is not None:
            if self._log.torn:
                out.malformed(f"{self._log.directory}: cut a torn last line of {self._log.torn} "
                              "bytes (a request the driver died writing, never answered)")
            for base, path in self._log.segments(self._replay_after):
                with path.open("rb") as handle:
                    lines = enumerate(json_lines(handle, path.name, out), start=base + 1)
                    await _emit_chunks(out, ((value, token) for token, (_, value) in lines
                                             if token > self._replay_after
                                             and value is not SKIPPED))
        self._out = out  # only now: new events come after the replayed ones
        await asyncio.Event().wait()

    @property
    def accepting(self) -> bool:
        return self._out is not None

    async def ingest(self, values: list[Any]) -> int:
        """Emit the events; with a log, once they are durable. Raises OSError if they cannot be
        written or synced (the request must then fail)."""
        if self._out is None:
            raise RuntimeError("source not started")
        if self._log is None:
            first = self.accepted
            self.accepted += len(values)
            self._out.emit_all([(v, first + i) for i, v in enumerate(values, start=1)])
            return len(values)
        first = self._log.accepted
        end = self._log.append(values)
        self._unsynced.extend((v, first + i) for i, v in enumerate(values, start=1))
        async with self._syncing:
            # One sync covers every append made before it, so the requests queued here behind
            # it usually find theirs done (group commit). Off the event loop: an fsync takes
            # milliseconds on many disks, and the loop schedules the tasks.
            if self.accepted < end:
                durable, sync = self._log.accepted, self._log.syncer()
                await asyncio.to_thread(sync)
                self.accepted = durable
                ready = []
                while self._unsynced and self._unsynced[0][1] <= durable:
                    ready.append(self._unsynced.popleft())
                self._out.emit_all(ready)
        return len(values)

    def commit(self, token: Any, partition: int = 0) -> None:
        if self._log is not None:
            self._log.compact(token)


async def _emit_chunks(out: SourceOutput, events: Iterable[tuple[Any, Any]]) -> None:
    """Emit in chunks, yielding the event loop between them and waiting for room: a long
    backlog (a log of millions of events) neither stalls the driver nor fills its memory."""
    chunk: list[tuple[Any, Any]] = []
    for event in events:
        chunk.append(event)
        if len(chunk) >= REPLAY_CHUNK:
            out.emit_all(chunk)
            chunk = []
            await out.room()
            await asyncio.sleep(0)
    if chunk:
        out.emit_all(chunk)
        await out.room()


SKIPPED: Any = object()  # what `json_lines` gives for a blank or malformed line


def json_lines(handle: IO[bytes], where: str, out: SourceOutput) -> Iterator[tuple[int, Any]]:
    """(end offset, value) of every whole line from the handle's position on. The value is
    SKIPPED for a blank line and for one that is not JSON (reported to `out` as malformed). A
    last line without its newline is left out: it is still being written, or a crash tore it."""
    position = handle.tell()
    for raw in handle:
        if not raw.endswith(b"\n"):
            return
        position += len(raw)
        value = SKIPPED
        if raw.strip():
            try:
                value = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                out.malformed(f"{where} at byte {position - len(raw)}: {exc}")
        yield position, value


class JsonLinesTail(Source):
    """Tail a JSON-lines file, or every `*.jsonl` file of a directory in name order.

    Committed positions are kept in `offsets_file` (default: in the driver's state directory if
    it has one, else beside the data), so a restarted driver resumes after the last line whose
    task finished. A line that is not valid JSON is counted as malformed and skipped.
    """

    kind = "jsonl"

    def __init__(self, path: str | os.PathLike[str], *, poll: float = 0.1,
                 offsets_file: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.poll = poll
        default = (self.path / ".neptune-offsets.json" if self.path.is_dir()
                   else self.path.with_name(self.path.name + ".offsets.json"))
        self.offsets_file = Path(offsets_file) if offsets_file else default
        self._offsets_file_given = offsets_file is not None

    def restore(self, saved: Saved) -> None:
        # Our positions per file are the whole committed state (the driver's token is the last
        # one only); the state directory spares the data's volume, which may be read-only.
        if not self._offsets_file_given:
            self.offsets_file = saved.state_dir / "tail" / f"{saved.job}.json"
            self.offsets_file.parent.mkdir(exist_ok=True)

    def _files(self) -> list[Path]:
        if self.path.is_dir():
            return sorted(self.path.glob("*.jsonl"))
        return [self.path] if self.path.exists() else []

    def committed(self) -> dict[str, int]:
        """The committed position in each file."""
        try:
            data = json.loads(self.offsets_file.read_text())
        except FileNotFoundError:
            return {}
        return {str(k): int(v) for k, v in data.items()}

    def commit(self, token: Any, partition: int = 0) -> None:
        name, offset = token
        offsets = self.committed()
        offsets[name] = offset
        tmp = self.offsets_file.with_name(self.offsets_file.name + ".tmp")
        tmp.write_text(json.dumps(offsets))
        os.replace(tmp, self.offsets_file)

    async def run(self, out: SourceOutput) -> None:
        """Emit new whole lines of the files, polling every `poll` seconds."""
        positions = self.committed()
        while True:
            for file in self._files():
                positions[file.name] = await self._read_new(file, positions.get(file.name, 0),
                                                            out)
            await asyncio.sleep(self.poll)

    @staticmethod
    async def _read_new(file: Path, start: int, out: SourceOutput) -> int:
        end = [start]  # the end of the last whole line read: where the next read starts

        def events(handle: IO[bytes]) -> Iterator[tuple[Any, Any]]:
            for position, value in json_lines(handle, file.name, out):
                end[0] = position
                if value is not SKIPPED:
                    yield value, (file.name, position)

        with file.open("rb") as handle:
            handle.seek(start)
            await _emit_chunks(out, events(handle))
        return end[0]


from .kafka.source import Kafka as Kafka  # noqa: E402  # it builds on the above
