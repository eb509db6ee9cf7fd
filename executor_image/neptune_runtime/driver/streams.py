"""The driver's stream side: events in, tasks out, outputs handed on, offsets committed.

Each stream job has one lane per source partition (a Kafka partition; one lane for sources
without partitions), with its own offset tracker. The rule of delivery: nothing is committed
before the output it stands for is handed on. A finished task's outputs go to the job's sink
(and a dead record's letter to the dead-letter sink); only then are its events done in its
lane's tracker. A sink that raises keeps the delivery, and every later one of that job, in
order, written again with a back-off while the job is degraded; nothing of them is committed
meanwhile. The committer then, at most every COMMIT_INTERVAL, syncs the sinks (off the event
loop) and only after that commits the sources and saves the tokens in the state directory.

A keyed job's lane runs one task at a time, pinned to the executor that holds the lane's state
(its owner). The driver commits every finished task's changes to the checkpoint store
(checkpoints.py) together with the lane's token, once the changes' outputs are handed on, and
keeps the changes since the lane's last commit. A lane placed anew (its owner lost, or a new
driver) gets the store's state and those changes, which hold absolute values: applied again
over a state that has them already (a commit that ended meanwhile), they change nothing. The
changes come packed (keyed.py) and the driver unpacks none of them: keeping a copy of the
state itself, a 1M-key task took the driver 1.2 s of copying, in 5-40 ms steps that the stream
waited behind.

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
from ..checkpoint_writer import CheckpointWriter
from ..dataflow.stream import META
from ..durable import OffsetStore
from ..kafka.sink import KafkaSink
from ..kafka.source import Kafka as KafkaSource
from ..keyed import Change, merge, unpacked
from ..offsets import OffsetTracker
from ..sinks import JsonLines, Sink
from ..tasks import Task
from .figures import JobStats

log = logging.getLogger("neptune.driver")

COMMIT_INTERVAL = 0.05
RETRY_FIRST, RETRY_MAX = 0.05, 5.0
KEYED_BATCH = 1000  # events at most in one task of a keyed lane that takes what waits
RESTORE_CHUNK = 20  # packed changes per `restore` message (100k keys at most)


class TaskHost(Protocol):
    """What the stream side needs of the driver."""

    def new_task(self, job: StreamJob, **fields: Any) -> Task: ...

    def schedule(self) -> None: ...

    def drop_queued(self, job: str) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...


Event = tuple[Any, int, float]  # value, sequence number in its lane, arrival time


@dataclass
class Delivery:
    """What one finished (or dead) task hands on: its events are done once it is written."""

    partition: int
    seqs: list[int]
    outputs: list[Any] = field(default_factory=list)
    letters: list[dict[str, Any]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)  # keyed state, packed


@dataclass
class Lane:
    """One partition of a stream job."""

    partition: int
    tracker: OffsetTracker = field(default_factory=OffsetTracker)
    handed_on: Any = None  # the token up to which every event was handed on
    committed: Any = None  # the token last committed (and saved, with a state directory)
    committed_released: int = 0  # tracker.released as of that commit's token
    resumed_from: Any = None
    microbatch: list[Event] = field(default_factory=list)
    # keyed jobs only
    waiting: deque[Event] = field(default_factory=deque)  # events not in a task yet
    in_flight: Task | None = None
    owner: str | None = None  # the executor holding the lane's state
    since: list[Change] = field(default_factory=list)  # finished since the last commit
    # its keyed state "dataflow" (a few counters and clocks a dataflow operator keeps, late
    # and skipped records among them), which /status reports
    counters: dict[Any, Any] = field(default_factory=dict)
    unsaved: list[Change] = field(default_factory=list)  # handed on, to commit

    @property
    def uncommitted(self) -> int:
        """Events accepted and not committed yet: not handed on, or handed on since the last
        commit (with an exactly-once sink, still in an open transaction)."""
        return self.tracker.unreleased + self.tracker.released - self.committed_released


@dataclass
class StreamState:
    job: StreamJob
    stats: JobStats
    dead_letter: Sink
    lanes: dict[int, Lane] = field(default_factory=dict)
    pending: deque[Delivery] = field(default_factory=deque)  # refused by a failing sink
    retrying: bool = False

    def lane(self, partition: int) -> Lane:
        lane = self.lanes.get(partition)
        if lane is None:
            lane = self.lanes[partition] = Lane(partition)
        return lane

    @property
    def uncommitted(self) -> int:
        return sum(lane.uncommitted for lane in self.lanes.values())

    @property
    def unreleased(self) -> int:
        return sum(lane.tracker.unreleased for lane in self.lanes.values())

    @property
    def transactional(self) -> KafkaSink | None:
        """The job's exactly-once sink, if it has one (its commits are Kafka transactions)."""
        sink = self.job.sink
        return sink if isinstance(sink, KafkaSink) and sink.exactly_once else None

    @property
    def ordered(self) -> bool:
        """Its lanes run one task at a time, in order: a keyed job's (its state), and an
        exactly-once job's (a transaction holds the outputs of exactly the offsets it commits,
        so a lane's outputs must be written in offset order)."""
        return self.job.keyed or self.transactional is not None


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


def tokens_view(tokens: dict[int, Any]) -> Any:
    """A job's tokens as /status and offsets.json show them: the bare token of a single-lane
    job, else {partition: token}."""
    if set(tokens) <= {0}:
        return tokens.get(0)
    return {str(p): t for p, t in sorted(tokens.items())}


class Streams:
    def __init__(self, host: TaskHost, jobs: list[StreamJob], stats: dict[str, JobStats],
                 saved: dict[str, dict[int, Any]], state_dir: Path | None,
                 limits: IngestLimits, checkpoint_store: CheckpointWriter | None = None,
                 counters: dict[tuple[str, int], dict[Any, Any]] | None = None) -> None:
        self.host = host
        self.limits = limits
        self.checkpoint_store = checkpoint_store
        self.jobs: dict[str, StreamState] = {}
        for job in jobs:
            metrics.declare_stream_job(job.name)
            st = self.jobs[job.name] = StreamState(
                job, stats[job.name], job.dead_letter or default_dead_letter(job.name, state_dir))
            for partition, token in saved.get(job.name, {}).items():
                lane = st.lane(partition)
                lane.committed = lane.handed_on = lane.resumed_from = token
        for (name, partition), values in (counters or {}).items():
            if name in self.jobs:
                self.jobs[name].lane(partition).counters = values

    # -- events in ---------------------------------------------------------------------------
    def on_events(self, job: StreamJob, events: list[tuple[Any, Any]],
                  partition: int = 0) -> None:
        """Events from a source partition, in order; one scheduling pass for all of them."""
        st = self.jobs[job.name]
        if not st.stats.takes_events or not events:
            return
        now = time.monotonic()
        st.stats.events += len(events)
        metrics.EVENTS_INGESTED.labels(job.name).inc(len(events))
        lane = st.lane(partition)
        per_event = job.trigger.interval is None
        for value, token in events:
            seq = lane.tracker.track(token)
            if st.ordered:
                lane.waiting.append((value, seq, now))
            elif per_event:
                self.host.new_task(job, records=[value], seqs=[seq], event_times=[now],
                                   partition=partition)
            else:
                lane.microbatch.append((value, seq, now))
        if st.ordered and per_event:
            self._feed(st, lane)
        if per_event:
            self.host.schedule()

    def _feed(self, st: StreamState, lane: Lane) -> None:
        """An ordered lane's next task, if none is in flight: one event under a per-event
        trigger, else all that wait (up to KEYED_BATCH)."""
        if lane.in_flight is not None or not lane.waiting or not st.stats.takes_events:
            return
        count = 1 if st.job.trigger.interval is None and not st.job.batchable \
            else min(len(lane.waiting), KEYED_BATCH)
        events = [lane.waiting.popleft() for _ in range(count)]
        lane.in_flight = self._task(st.job, lane.partition, events, pinned=lane.owner)

    def _task(self, job: StreamJob, partition: int, events: list[Event], **fields: Any) -> Task:
        return self.host.new_task(job, records=[v for v, _, _ in events],
                                  seqs=[s for _, s, _ in events],
                                  event_times=[t for _, _, t in events], partition=partition,
                                  **fields)

    async def microbatch_loop(self, job: StreamJob) -> None:
        assert job.trigger.interval is not None
        st = self.jobs[job.name]
        while True:
            await asyncio.sleep(job.trigger.interval)
            if not st.stats.takes_events:
                continue
            for lane in list(st.lanes.values()):
                if st.ordered:
                    self._feed(st, lane)
                elif lane.microbatch:
                    batch, lane.microbatch = lane.microbatch, []
                    self._task(job, lane.partition, batch)
            self.host.schedule()

    def in_flight(self, job: str) -> int:
        """Events accepted and not yet handed on."""
        return self.jobs[job].unreleased

    async def room(self, job: str) -> None:
        while self.in_flight(job) >= self.limits.max_backlog:
            await asyncio.sleep(0.01)

    def refusal(self, job: str, count: int) -> tuple[str, dict[str, Any]] | None:
        """Why the job cannot take `count` more events now, as (reason, answer), or None."""
        st = self.jobs[job]
        answer = {"job": job, "state": st.stats.shown_state, "error": st.stats.shown_error}
        if not st.stats.takes_events:
            return "job_failed", {**answer, "message": f"job {job!r} has failed and takes no "
                                  "events; fix the cause and restart the driver"}
        if self.in_flight(job) + count > self.limits.max_backlog:
            return "backlog_full", {**answer, "message": (
                f"job {job!r} has {self.in_flight(job)} events in flight, and the limit is "
                f"{self.limits.max_backlog} (max_backlog): retry later")}
        return None

    # -- keyed lanes and their owners --------------------------------------------------------
    def placing(self, task: Task, executor: str) -> list[dict[str, Any]]:
        """A keyed task goes to `executor`: the `restore` messages to send before its `run`,
        if that executor does not hold the lane's state yet (the first replaces what it held,
        the others add to it: frames stay far below their limit). The store's part is read
        here, after any commit in progress: a lane placed anew (an executor lost, a new
        driver) waits for it, as it waits for its task to run again."""
        st = self.jobs.get(task.job)
        if st is None or not st.job.keyed:
            return []
        lane = st.lane(task.partition)
        if lane.owner == executor:
            return []
        changes = self._stored(task.job, lane.partition) + lane.since
        lane.owner = executor
        return [{"t": "restore", "job": task.job, "partition": task.partition,
                 "changes": changes[at:at + RESTORE_CHUNK], "add": at > 0}
                for at in range(0, max(1, len(changes)), RESTORE_CHUNK)]

    def _stored(self, job: str, partition: int) -> list[Change]:
        """The lane's committed state. A store that cannot give it twice running stops the
        driver (exit code 2, as when it cannot read the store at start): a task run on a
        state without it would count its events again, and nothing is committed meanwhile."""
        if self.checkpoint_store is None:
            return []
        try:
            return self.checkpoint_store.changes((job, partition))
        except OSError as exc:  # the writer died: the call starts a new one
            log.warning("job %s, lane %d: reading its checkpoint again: %s", job, partition,
                        exc)
        try:
            return self.checkpoint_store.changes((job, partition))
        except OSError as exc:
            log.critical("job %s, lane %d: cannot read its keyed state from the checkpoint "
                         "store, so the driver stops: %s", job, partition, exc)
            raise SystemExit(2) from exc

    def lost(self, executor: str) -> None:
        """An executor is gone: its lanes have no owner, and their tasks no pin."""
        for st in self.jobs.values():
            for lane in st.lanes.values():
                if lane.owner == executor:
                    lane.owner = None
                    if lane.in_flight is not None:
                        lane.in_flight.pinned = None

    # -- outputs out ------------------------------------------------------------------------
    def finished(self, task: Task, outputs: list[Any], changes: list[Change],
                 now: float) -> None:
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
        if st.ordered:
            lane = st.lane(task.partition)
            lane.since += changes
            for change in changes:
                if change[0] == META:
                    try:
                        merge(lane.counters, unpacked(change)[1])
                    except ValueError as exc:  # an executor's bug: its checkpoint fails too
                        log.error("job %s, lane %d: %s", task.job, lane.partition, exc)
            if lane.in_flight is task:
                lane.in_flight = None
            self._feed(st, lane)
        self._hand_on(st, Delivery(task.partition, task.seqs, outputs, changes=changes))

    def failed(self, task: Task, error: str) -> bool:
        """A stream task raised. Returns True if it should simply be retried."""
        st = self.jobs[task.job]
        job = st.job
        if task.attempt < job.max_retries:
            return True
        lane = st.lane(task.partition)
        if st.ordered and lane.in_flight is task:
            lane.in_flight = None
        if job.on_error == "fail":
            log.error("job %s failed: task %s raised %d times: %s", job.name, task.id,
                      task.attempt + 1, error)
            st.stats.fail(error)
            self.host.drop_queued(job.name)
            return False
        records = task.records or []
        if len(records) > 1:
            # Isolate the failing record: each half runs once more, and fails straight on
            # to splitting again (its attempt is already the last). A keyed lane runs them
            # one after the other, in order: the second half waits at the head of the lane.
            half = len(records) // 2
            events = list(zip(records, task.seqs, task.event_times, strict=True))
            if st.ordered:
                lane.waiting.extendleft(reversed(events[half:]))
                lane.in_flight = self._task(job, task.partition, events[:half],
                                            attempt=task.attempt, pinned=lane.owner)
            else:
                for part in (events[:half], events[half:]):
                    self._task(job, task.partition, part, attempt=task.attempt)
            return False
        log.warning("job %s: a record failed %d times; to the dead-letter sink: %s", job.name,
                    task.attempt + 1, _first_line(error))
        st.stats.dead_letters += 1
        metrics.DEAD_LETTERS.labels(job.name).inc()
        letter = {"job": job.name, "record": records[0] if records else None, "error": error,
                  "task": task.id, "attempts": task.attempt + 1, "at": time.time()}
        self._hand_on(st, Delivery(task.partition, task.seqs, letters=[letter]))
        if st.ordered:
            self._feed(st, lane)
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
        lane = st.lane(delivery.partition)
        lane.unsaved += delivery.changes
        token = lane.tracker.done(delivery.seqs)
        if token is not None:
            lane.handed_on = token

    # -- commits ----------------------------------------------------------------------------
    def committed(self, job: str) -> dict[int, Any]:
        return {p: lane.committed for p, lane in self.jobs[job].lanes.items()
                if lane.committed is not None}

    async def committer(self, store: OffsetStore | None,
                        stopping: Callable[[], bool]) -> None:
        """Commit what was handed on, at most every COMMIT_INTERVAL (being a little behind only
        means replaying more after a crash), and once more at a clean stop: the sinks are synced
        first, off the event loop (an fsync may take milliseconds)."""
        while True:
            last = stopping()
            # released: events handed on whose token did not move past the committed one (a
            # replay's) are committed all the same, so that `uncommitted` reaches 0
            moved = [(st, lane) for st in self.jobs.values() for lane in st.lanes.values()
                     if lane.handed_on != lane.committed or lane.unsaved
                     or lane.tracker.released != lane.committed_released]
            if moved:
                await self._commit(moved, store)
            if last:
                return
            await asyncio.sleep(COMMIT_INTERVAL)

    async def _commit(self, moved: list[tuple[StreamState, Lane]],
                      store: OffsetStore | None) -> None:
        tokens = {(st.job.name, lane.partition): lane.handed_on for st, lane in moved}
        released = {(st.job.name, lane.partition): lane.tracker.released for st, lane in moved}
        changes = {(st.job.name, lane.partition): lane.unsaved for st, lane in moved
                   if st.job.keyed}
        for _, lane in moved:
            lane.unsaved = []
        jobs = {st.job.name: st for st, _ in moved}
        for st in jobs.values():
            if st.transactional is not None:
                st.transactional.seal()  # its writes from now on belong to the next commit
        done: list[tuple[StreamState, Lane]] = []
        plain = [(st, lane) for st, lane in moved if st.transactional is None]
        try:
            sinks = {id(s): s for st, _ in plain for s in (st.job.sink, st.dead_letter)}
            await asyncio.to_thread(_sync_all, list(sinks.values()))
            keyed = {k: c for k, c in changes.items() if jobs[k[0]].transactional is None}
            if self.checkpoint_store is not None and keyed:
                await asyncio.to_thread(self.checkpoint_store.commit, keyed,
                                        {k: tokens[k] for k in keyed})
            done += plain
        except Exception as exc:  # OSError, or the store's: nothing of these is committed
            self._uncommit(plain, changes)
            log.error("cannot sync the sinks or write the checkpoint (nothing committed; "
                      "trying again): %s", exc)
        for st in jobs.values():
            if st.transactional is not None:
                lanes = [(s, lane) for s, lane in moved if s is st]
                if await self._commit_transaction(st, lanes, tokens, changes):
                    done += lanes
                else:
                    self._uncommit(lanes, changes)
        for st, lane in done:
            # what the store has now: a lane placed anew gets it from there
            del lane.since[:len(changes.get((st.job.name, lane.partition), ()))]
            token = tokens[(st.job.name, lane.partition)]
            if token is not None and token != lane.committed and st.transactional is None:
                st.job.source.commit(token, lane.partition)
            lane.committed = token
            lane.committed_released = released[(st.job.name, lane.partition)]
        if store is not None and done:
            entries = {st.job.name: (st.job.source.kind, self.committed(st.job.name))
                       for st in self.jobs.values()}
            try:
                await asyncio.to_thread(store.save, entries)
            except (OSError, TypeError, ValueError) as exc:
                log.error("cannot save the committed offsets to %s: %s", store.path, exc)

    async def _commit_transaction(self, st: StreamState, lanes: list[tuple[StreamState, Lane]],
                                  tokens: dict[tuple[str, int], Any],
                                  changes: dict[tuple[str, int], list[Change]]
                                  ) -> bool:
        """An exactly-once job's commit: its outputs and its source's offsets in one Kafka
        transaction; with keyed state, the checkpoint is written as pending first and
        confirmed after (checkpoints.py says why)."""
        sink, source = st.transactional, st.job.source
        assert sink is not None
        if not isinstance(source, KafkaSource) or source.consumer is None:
            sink.seal_off()
            return False  # nothing consumed yet
        lane_tokens = {lane.partition: tokens[(st.job.name, lane.partition)] for _, lane in lanes
                       if tokens[(st.job.name, lane.partition)] is not None}
        keyed = {k: c for k, c in changes.items() if k[0] == st.job.name}
        store = self.checkpoint_store if st.job.keyed else None
        try:
            if store is not None:
                await asyncio.to_thread(store.prepare, keyed,
                                        {k: tokens[k] for k in keyed if tokens[k] is not None})
            await asyncio.to_thread(sink.commit_transaction, source.offsets(lane_tokens),
                                    source.consumer.consumer_group_metadata())
        except Exception as exc:
            if store is not None:
                await asyncio.to_thread(store.settle, False)
            log.error("job %s: the transaction did not commit (trying again): %s", st.job.name,
                      exc)
            return False
        if store is not None:
            await asyncio.to_thread(store.settle, True)
        return True

    def _uncommit(self, moved: list[tuple[StreamState, Lane]],
                  changes: dict[tuple[str, int], list[Change]]) -> None:
        """A failed commit: its keyed changes go back in front of what came since."""
        for st, lane in moved:
            kept = changes.get((st.job.name, lane.partition))
            if kept:
                lane.unsaved = kept + lane.unsaved


def _sync_all(sinks: list[Sink | None]) -> None:
    for sink in sinks:
        if sink is not None:
            sink.sync()
