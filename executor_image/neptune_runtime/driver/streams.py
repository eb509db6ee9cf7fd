"""The driver's stream side: events in, tasks out, outputs handed on, offsets committed.

The rule of delivery: nothing is committed before the output it stands for is handed on. A
finished task's outputs go to the job's sink (and a dead record's letter to the dead-letter
sink); only then are its events done in the offset tracker. A sink that raises keeps the
delivery, and every later one of that job, in order, written again with a back-off while the
job is degraded; nothing of them is committed meanwhile. The committer then, at most every
COMMIT_INTERVAL, syncs the sinks (off the event loop) and only after that commits the sources
and saves the tokens in the state directory.

A task that fails is retried `max_retries` times; after that, under `on_error="dead_letter"`
(the default), its records are split in halves until the failing record stands alone, which
goes to the dead-letter sink with its error and counts as handed on; under "fail" the job fails
and its ingest answers 503 from then on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .. import metrics
from ..app import StreamJob
from ..bodies import IngestLimits
from ..durable import OffsetStore
from ..offsets import OffsetTracker
from ..sinks import JsonLines, Sink
from ..tasks import Task
from .figures import JobStats

log = logging.getLogger("neptune.driver")

COMMIT_INTERVAL = 0.05
RETRY_FIRST, RETRY_MAX = 0.05, 5.0


class TaskHost(Protocol):
    """What the stream side needs of the driver."""

    def new_task(self, job: StreamJob, **fields: Any) -> Task: ...

    def schedule(self) -> None: ...

    def drop_queued(self, job: str) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...


@dataclass
class Delivery:
    """What one finished (or dead) task hands on: its events are done once it is written."""

    seqs: list[int]
    outputs: list[Any] = field(default_factory=list)
    letters: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StreamState:
    job: StreamJob
    stats: JobStats
    dead_letter: Sink
    tracker: OffsetTracker = field(default_factory=OffsetTracker)
    handed_on: Any = None  # the token up to which every event was handed on
    committed: Any = None  # the token last committed (and saved, with a state directory)
    resumed_from: Any = None
    microbatch: list[tuple[Any, int, float]] = field(default_factory=list)
    pending: deque[Delivery] = field(default_factory=deque)  # refused by a failing sink
    retrying: bool = False


def default_dead_letter(job: str, state_dir: Path | None) -> Sink:
    base = (state_dir or Path.cwd()) / "dead-letter"
    return _LazyDirJsonLines(base / f"{job}.jsonl")


class _LazyDirJsonLines(JsonLines):
    """The default dead-letter file: its directory is made at the first letter."""

    def write(self, job: str, outputs: list[Any]) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        super().write(job, outputs)


def _first_line(error: str) -> str:
    return error.splitlines()[0] if error else "unknown error"


class Streams:
    def __init__(self, host: TaskHost, jobs: list[StreamJob], stats: dict[str, JobStats],
                 saved: dict[str, Any], state_dir: Path | None,
                 limits: IngestLimits) -> None:
        self.host = host
        self.limits = limits
        self.jobs = {
            job.name: StreamState(job, stats[job.name],
                                  job.dead_letter or default_dead_letter(job.name, state_dir),
                                  committed=saved.get(job.name), resumed_from=saved.get(job.name))
            for job in jobs}

    # -- events in ---------------------------------------------------------------------------
    def on_events(self, job: StreamJob, events: list[tuple[Any, Any]]) -> None:
        """Events from a source, in order; one scheduling pass for all of them."""
        st = self.jobs[job.name]
        if not st.stats.takes_events or not events:
            return
        now = time.monotonic()
        st.stats.events += len(events)
        metrics.EVENTS_INGESTED.labels(job.name).inc(len(events))
        for value, token in events:
            seq = st.tracker.track(token)
            if job.trigger.interval is None:
                self.host.new_task(job, records=[value], seqs=[seq], event_times=[now])
            else:
                st.microbatch.append((value, seq, now))
        if job.trigger.interval is None:
            self.host.schedule()

    async def microbatch_loop(self, job: StreamJob) -> None:
        assert job.trigger.interval is not None
        st = self.jobs[job.name]
        while True:
            await asyncio.sleep(job.trigger.interval)
            batch = st.microbatch
            if batch and st.stats.takes_events:
                st.microbatch = []
                self.host.new_task(job, records=[v for v, _, _ in batch],
                                   seqs=[s for _, s, _ in batch],
                                   event_times=[t for _, _, t in batch])
                self.host.schedule()

    def in_flight(self, job: str) -> int:
        """Events accepted and not yet handed on."""
        return self.jobs[job].tracker.uncommitted

    async def room(self, job: str) -> None:
        while self.in_flight(job) >= self.limits.max_backlog:
            await asyncio.sleep(0.01)

    def refusal(self, job: str, count: int) -> tuple[str, dict[str, Any]] | None:
        """Why the job cannot take `count` more events now, as (reason, answer), or None."""
        st = self.jobs[job]
        answer = {"job": job, "state": st.stats.state, "error": st.stats.error}
        if not st.stats.takes_events:
            return "job_failed", {**answer, "message": f"job {job!r} has failed and takes no "
                                  "events; fix the cause and restart the driver"}
        if self.in_flight(job) + count > self.limits.max_backlog:
            return "backlog_full", {**answer, "message": (
                f"job {job!r} has {self.in_flight(job)} events in flight, and the limit is "
                f"{self.limits.max_backlog} (max_backlog): retry later")}
        return None

    # -- outputs out ------------------------------------------------------------------------
    def finished(self, task: Task, outputs: list[Any], now: float) -> None:
        st = self.jobs[task.job]
        stats = st.stats
        for arrived in task.event_times:
            latency = now - arrived
            stats.latency.add(now, latency)
            metrics.STREAM_LATENCY.labels(task.job).observe(latency)
            stats.slo_total += 1
            if latency <= st.job.slo:
                stats.slo_met += 1
            else:
                metrics.SLO_VIOLATIONS.labels(task.job).inc()
        stats.results += len(outputs)
        stats.records += len(task.event_times)
        stats.rate.add(now, len(task.event_times))
        self._hand_on(st, Delivery(task.seqs, outputs))

    def failed(self, task: Task, error: str) -> bool:
        """A stream task raised. Returns True if it should simply be retried."""
        st = self.jobs[task.job]
        job = st.job
        if task.attempt < job.max_retries:
            return True
        if job.on_error == "fail":
            log.error("job %s failed: task %s raised %d times: %s", job.name, task.id,
                      task.attempt + 1, error)
            st.stats.fail(error)
            self.host.drop_queued(job.name)
            return False
        records = task.records or []
        if len(records) > 1:
            # Isolate the failing record: each half runs once more, and fails straight on
            # to splitting again (its attempt is already the last).
            half = len(records) // 2
            for part in (slice(0, half), slice(half, None)):
                self.host.new_task(job, records=records[part], seqs=task.seqs[part],
                                   event_times=task.event_times[part], attempt=task.attempt)
            return False
        log.warning("job %s: a record failed %d times; to the dead-letter sink: %s", job.name,
                    task.attempt + 1, _first_line(error))
        st.stats.dead_letters += 1
        metrics.DEAD_LETTERS.labels(job.name).inc()
        letter = {"job": job.name, "record": records[0] if records else None, "error": error,
                  "task": task.id, "attempts": task.attempt + 1, "at": time.time()}
        self._hand_on(st, Delivery(task.seqs, letters=[letter]))
        return False

    def _hand_on(self, st: StreamState, delivery: Delivery) -> None:
        if st.pending:  # a failing sink: keep the order; the retry loop writes it
            st.pending.append(delivery)
        elif self._write(st, delivery):
            self._done(st, delivery)
        else:
            st.pending.append(delivery)
            if not st.retrying:
                st.retrying = True
                self.host.spawn(self._retry(st))

    def _write(self, st: StreamState, delivery: Delivery) -> bool:
        name = st.job.name
        target: Sink | None = st.dead_letter
        try:
            if delivery.letters:
                st.dead_letter.write(name, delivery.letters)
            target = st.job.sink
            if delivery.outputs and target is not None:
                target.write(name, delivery.outputs)
        except Exception as exc:
            st.stats.sink_failures += 1
            metrics.SINK_FAILURES.labels(name).inc()
            cause = f"sink {target!r} failed: {type(exc).__name__}: {exc}"
            if st.stats.state == "running" or st.stats.sink_failures % 100 == 1:
                log.error("job %s: %s (its outputs are kept and written again; nothing is "
                          "committed meanwhile)", name, cause)
            st.stats.degrade(cause)
            return False
        if st.stats.state == "degraded":
            log.warning("job %s: the sink takes outputs again", name)
            st.stats.recover()
        return True

    async def _retry(self, st: StreamState) -> None:
        delay = RETRY_FIRST
        try:
            while st.pending:
                await asyncio.sleep(delay)
                while st.pending and self._write(st, st.pending[0]):
                    self._done(st, st.pending.popleft())
                delay = min(delay * 2, RETRY_MAX)
        finally:
            st.retrying = False

    def _done(self, st: StreamState, delivery: Delivery) -> None:
        token = st.tracker.done(delivery.seqs)
        if token is not None:
            st.handed_on = token

    # -- commits ----------------------------------------------------------------------------
    async def committer(self, store: OffsetStore | None,
                        stopping: Callable[[], bool]) -> None:
        """Commit what was handed on, at most every COMMIT_INTERVAL (being a little behind only
        means replaying more after a crash), and once more at a clean stop: the sinks are synced
        first, off the event loop (an fsync may take milliseconds)."""
        while True:
            last = stopping()
            moved = [st for st in self.jobs.values() if st.handed_on != st.committed]
            if moved:
                await self._commit(moved, store)
            if last:
                return
            await asyncio.sleep(COMMIT_INTERVAL)

    async def _commit(self, moved: list[StreamState], store: OffsetStore | None) -> None:
        tokens = {st.job.name: st.handed_on for st in moved}
        try:
            await asyncio.to_thread(_sync_all, [s for st in moved
                                                for s in (st.job.sink, st.dead_letter)])
        except OSError as exc:
            log.error("cannot sync the sinks (nothing committed): %s", exc)
            return
        for st in moved:
            st.job.source.commit(tokens[st.job.name])
            st.committed = tokens[st.job.name]
        if store is not None:
            entries = {st.job.name: (st.job.source.kind, st.committed)
                       for st in self.jobs.values()}
            try:
                await asyncio.to_thread(store.save, entries)
            except (OSError, TypeError, ValueError) as exc:
                log.error("cannot save the committed offsets to %s: %s", store.path, exc)


def _sync_all(sinks: list[Sink | None]) -> None:
    for sink in sinks:
        if sink is not None:
            sink.sync()
