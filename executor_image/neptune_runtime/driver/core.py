"""The driver: one per application, wiring its parts together.

It accepts authenticated executors (session.py), turns sources and batch partitions into tasks
(streams.py, batch.py), places them with the policy (placement.py), follows each task's state,
re-runs the tasks of lost executors, and serves what /status shows. The HTTP side (ingest,
/metrics, /healthz, /status) is in http_api.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from .. import hotpath, metrics, protocol
from ..app import App, BatchJob, StreamJob
from ..bodies import IngestLimits
from ..checkpoint_writer import CheckpointWriter
from ..checkpoints import DIRECTORY, CheckpointStore
from ..dataflow.stream import META
from ..durable import OffsetStore, StateDirError, open_state_dir
from ..kafka.sink import TXN_TIMEOUT, KafkaSink
from ..kafka.source import Kafka as KafkaSource
from ..keyed import Change, PartitionState, are_changes
from ..policies import POLICIES, NeptuneConfig, get_policy
from ..sources import Saved
from ..stats import Slowest, Window, preemption_split
from ..tasks import Task, TaskTable
from . import placement, session
from .batch import Batches
from .figures import JobStats
from .session import ExecutorConn
from .streams import Streams

# How long a new driver waits to learn whether a dead one's last transaction committed, when
# it could not fence it first: the transaction's timeout (sink.py) plus the broker's cleanup
# interval, with a margin.
SETTLE_SECONDS = 2 * TXN_TIMEOUT + 15.0

log = logging.getLogger("neptune.driver")

# A batch job whose tasks go longer between yield points than this fraction of the tightest
# stream SLO gets a warning (/status, the run summary, a Kubernetes Event).
DEFAULT_COARSE_FRACTION = 0.25


class _SourceOutput:
    def __init__(self, driver: Driver, job: StreamJob) -> None:
        self.driver = driver
        self.job = job

    def emit(self, value: Any, token: Any, partition: int = 0) -> None:
        self.driver.streams.on_events(self.job, [(value, token)], partition)

    def emit_all(self, events: list[tuple[Any, Any]], partition: int = 0) -> None:
        self.driver.streams.on_events(self.job, events, partition)

    def malformed(self, reason: str) -> None:
        metrics.INGEST_REJECTED.labels(self.job.name, "malformed").inc()
        self.driver.rejected += 1
        log.warning("job %s: skipped malformed event: %s", self.job.name, reason)

    async def room(self) -> None:
        await self.driver.streams.room(self.job.name)

    def degraded(self, cause: str | None) -> None:
        stats = self.driver.stats[self.job.name]
        if cause != stats.source_problem:
            if cause is None:
                log.warning("job %s: its source reads again", self.job.name)
            else:
                log.error("job %s: %s", self.job.name, cause)
            stats.source_problem = cause

    def lag(self, partition: int, records: int) -> None:
        self.driver.stats[self.job.name].lag[partition] = records
        metrics.SOURCE_LAG.labels(self.job.name, str(partition)).set(records)


UPGRADE_MODES = ("last-state", "stateless")


def upgrade(directory: Path, mode: str, generation: str | None) -> None:
    """The operator's upgrade mode (the Flink operator's idea): with `stateless`, a driver of a
    new spec generation (an upgrade, not a restart) starts its keyed jobs with empty state, from
    their source's committed offsets: the checkpoint store is dropped. `last-state` keeps it."""
    if mode not in UPGRADE_MODES:
        raise ValueError(f"upgrade mode must be one of {', '.join(UPGRADE_MODES)}, got {mode!r}")
    if generation is None:
        return
    stamp = directory / "generation"
    before = stamp.read_text().strip() if stamp.exists() else None
    if mode == "stateless" and before is not None and before != generation:
        log.warning("stateless upgrade (spec generation %s -> %s): keyed state starts empty",
                    before, generation)
        shutil.rmtree(directory / DIRECTORY, ignore_errors=True)
    stamp.write_text(generation + "\n")


def _changes(entries: Any) -> list[Change]:
    """A finished keyed task's state changes, packed (keyed.py): [[name, map], ...]."""
    if entries is None:
        return []
    if not are_changes(entries):
        raise protocol.ProtocolError("finished: changes must be [[name, packed map], ...]")
    changes: list[Change] = entries
    return changes


def _partitions(entries: list[Any]) -> frozenset[tuple[str, int]]:
    """A heartbeat's cached partitions, [[job, partition], ...]."""
    if not all(isinstance(e, list) and len(e) == 2 and isinstance(e[0], str)
               and isinstance(e[1], int) and not isinstance(e[1], bool) for e in entries):
        raise protocol.ProtocolError("heartbeat: partitions must be [[job, partition], ...]")
    return frozenset((job, partition) for job, partition in entries)


class Driver:
    def __init__(self, app: App, secret: str, *, policy: str = "neptune",
                 neptune_config: NeptuneConfig | None = None,
                 priorities_file: str | None = None,
                 state_dir: str | os.PathLike[str] | None = None,
                 warm_us: int = hotpath.DEFAULT_WARM_US,
                 heartbeat_timeout: float | None = None,
                 limits: IngestLimits | None = None,
                 coarse_fraction: float = DEFAULT_COARSE_FRACTION,
                 checkpoint_dir: str | os.PathLike[str] | None = None,
                 upgrade_mode: str = "last-state", generation: str | None = None) -> None:
        """Raises durable.StateDirError if `state_dir` or what is in it cannot be used."""
        self.app = app
        self.secret = secret
        self.policy_name = policy
        self.warm_us = warm_us
        self.heartbeat_timeout = heartbeat_timeout or session.DEFAULT_HEARTBEAT_TIMEOUT
        self.limits = limits or IngestLimits()
        self.coarse_fraction = coarse_fraction
        self.rehearsal: hotpath.Rehearsal | None = None
        self.forewarnings = 0  # executors told that a preempting `run` may follow
        # where executors took preempting runs (protocol.SUSPENDED_VIA): the path's health
        self.suspended_via = dict.fromkeys(protocol.SUSPENDED_VIA, 0)
        self.policy = get_policy(policy, neptune_config)
        self.preempts = POLICIES[policy].preempts
        self.priorities_file = priorities_file
        self.priorities: dict[str, int] = {}
        self.executors: dict[str, ExecutorConn] = {}
        self.table = TaskTable()
        self.stats = {name: JobStats() for name in app.jobs}
        # preempting tasks: send-to-start (valid on one host only: it compares two processes'
        # monotonic clocks) and arrival-to-start (on the executor's clock alone)
        self.preempt_latency = Window(seconds=3600.0, limit=100000)
        self.preempt_local = Window(seconds=3600.0, limit=100000)
        # the slowest since the last reset, each with its split: where a tail comes from
        self.preempt_slowest = Slowest(5)
        self.wasted_seconds = 0.0
        self.rejected = 0
        self.auth_failures = 0
        self.executors_lost = 0
        self.wire_errors = 0
        self.reruns = 0
        self.sent_ahead = 0  # stream tasks sent behind a running one (placement.send_ahead)
        self.started = time.monotonic()
        self.stopping = False
        self.sources_started = False
        self.config_problems: list[str] = []  # resource settings that could not be applied
        self._ids = itertools.count()
        self._names = itertools.count()
        self._background: set[asyncio.Task[None]] = set()
        # With a state directory the committed tokens are saved, and every source continues
        # after its job's.
        self.state_dir = open_state_dir(state_dir) if state_dir is not None else None
        self._store = OffsetStore(self.state_dir) if self.state_dir is not None else None
        saved = self._store.load() if self._store is not None else {}
        tokens = {j.name: self._saved_token(j, saved.get(j.name)) for j in app.stream_jobs()}
        # Keyed jobs: their state and its tokens, committed together (checkpoints.py); those
        # tokens are the ones to resume from, whatever offsets.json says.
        keyed = [j.name for j in app.stream_jobs() if j.keyed]
        where = checkpoint_dir or self.state_dir
        # A lane placed anew gets its state from the store (streams.py): with no directory
        # given, one for this driver alone.
        self._scratch = Path(tempfile.mkdtemp(prefix="neptune-checkpoints-")) \
            if keyed and where is None else None
        where = where or self._scratch
        if where is not None:
            upgrade(Path(where), upgrade_mode, generation)
        store = CheckpointStore(Path(where)) if keyed and where else None
        for stream in app.stream_jobs():
            if isinstance(stream.sink, KafkaSink):
                stream.sink.bind(app.name, stream.name)
                if stream.sink.exactly_once:
                    # what its transactions committed is the truth: the group's offsets
                    tokens[stream.name] = {}
        if store is not None:
            self._settle(store)
        checkpointed = store.tokens() if store is not None else {}
        counters: dict[tuple[str, int], dict[Any, Any]] = {}
        if store is not None:
            for lane in checkpointed:
                kept = PartitionState()  # the dataflow counters /status shows (streams.py)
                kept.restore(store.changes(lane, META))
                counters[lane] = kept.maps.get(META, {})
        for (name, partition), token in checkpointed.items():
            job = app.jobs.get(name)
            changed = isinstance(job, StreamJob) and name in saved \
                and saved[name][0] != job.source.kind
            if name in keyed and not changed:  # a checkpoint's tokens are its source's
                tokens.setdefault(name, {})[partition] = token
        # From now on the writes are made by a process of its own, which takes the store over
        # (checkpoint_writer.py says why).
        self.checkpoint_writer: CheckpointWriter | None = None
        if store is not None:
            store.close()
            self.checkpoint_writer = CheckpointWriter(store.path.parent)
            self.checkpoint_writer.start()
        self.streams = Streams(self, list(app.stream_jobs()), self.stats, tokens,
                               self.state_dir, self.limits, self.checkpoint_writer, counters)
        self.batches = Batches(self, list(app.batch_jobs()), self.stats, self._broadcast)
        self._committer: asyncio.Task[None] | None = None
        if self.state_dir is not None:
            for stream in app.stream_jobs():
                saved_tokens = tokens.get(stream.name, {})
                stream.source.restore(Saved(stream.name, saved_tokens.get(0), self.state_dir,
                                            saved_tokens))

    def _settle(self, store: CheckpointStore) -> None:
        """A checkpoint left pending by a driver that died during its Kafka transaction:
        whether the transaction committed is in the group's committed offsets."""
        pending = store.pending()
        if pending is None:
            return
        _, tokens = pending
        for name in {job for job, _ in tokens}:
            source = self.app.job(name)
            assert isinstance(source, StreamJob)
            if not isinstance(source.source, KafkaSource):
                store.settle(False)
                return
            try:
                # The dead driver's transaction leaves the group's offsets unstable until the
                # broker ends it. Fencing ends it now; else it is aborted past its timeout, at
                # the broker's next cleanup (every 10 s by default).
                if isinstance(source.sink, KafkaSink):
                    source.sink.fence()
                offsets = source.source.committed_offsets(timeout=SETTLE_SECONDS)
            except Exception as exc:
                raise StateDirError(f"job {name}: cannot tell whether its last transaction "
                                    f"committed ({exc}); its checkpoint stays pending") from None
            committed = all(offsets.get(p) == int(t) + 1 for (j, p), t in tokens.items()
                            if j == name)
            log.warning("job %s: the transaction of its pending checkpoint %s: %s", name,
                        "committed" if committed else "did not commit",
                        "confirming it" if committed else "dropping it")
            store.settle(committed)

    @staticmethod
    def _saved_token(job: StreamJob, saved: tuple[str, dict[int, Any]] | None) -> dict[int, Any]:
        if saved is None:
            return {}
        kind, tokens = saved
        if kind != job.source.kind:
            log.warning("job %s: its source was %s and is %s now: it starts from the beginning",
                        job.name, kind, job.source.kind)
            return {}
        return tokens

    @property
    def states(self) -> dict[str, tuple[int, Any]]:
        return self.batches.states

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._accept, host, port)
        bound: int = self.server.sockets[0].getsockname()[1]
        self._load_priorities()
        self.batches.start()
        if self.priorities_file:
            self.spawn(self._reload_priorities_loop())
        self._committer = asyncio.ensure_future(
            self.streams.committer(self._store, lambda: self.stopping))
        self.spawn(session.watch(self.executors, self.heartbeat_timeout))
        if self.warm_us:
            self.rehearsal = hotpath.Rehearsal()
            self.spawn(self._keep_warm(self.rehearsal))
        return bound

    def _start_sources(self) -> None:
        """Start the stream sources once an executor can take their tasks: events generated
        before that would only measure how long executors take to start."""
        self.sources_started = True
        for stream in self.app.stream_jobs():
            if stream.trigger.interval is not None:
                self.spawn(self.streams.microbatch_loop(stream))
            self.spawn(self._run_source(stream))

    async def _run_source(self, stream: StreamJob) -> None:
        if isinstance(stream.sink, KafkaSink) and stream.sink.exactly_once:
            # A dead driver's open transaction leaves the group's offsets unstable, and a
            # read_committed consumer waits for them (about 30 s) before it reads anything:
            # fencing ends that transaction now. Failing (no broker), the first write tries
            # again, and the source reports the broker's absence itself.
            try:
                await asyncio.to_thread(stream.sink.fence)
            except Exception as exc:
                log.warning("job %s: %r could not take over its transactional id yet: %s",
                            stream.name, stream.sink, exc)
        await stream.source.run(_SourceOutput(self, stream))

    async def stop(self) -> None:
        self.stopping = True
        # Executors are not told to stop: a driver stops when its pod is replaced, and they
        # reconnect to the next one (their own SIGTERM stops them). Exiting would restart their
        # containers, with Kubernetes' growing back-off.
        for conn in list(self.executors.values()):
            with contextlib.suppress(Exception):
                conn.close()
        for task in list(self._background):
            task.cancel()
        if self.rehearsal is not None:
            self.rehearsal.close()
        self.server.close()
        if self._committer is not None:
            await self._committer
        if self.checkpoint_writer is not None:
            self.checkpoint_writer.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        for job in self.app.stream_jobs():
            for sink in (job.sink, self.streams.jobs[job.name].dead_letter):
                if sink is not None:
                    sink.close()

    async def _keep_warm(self, rehearsal: hotpath.Rehearsal) -> None:
        """Rehearse sending a `run` (hotpath.py) while a running task could be preempted."""
        period = self.warm_us / 1e6
        busy = False
        while True:
            # an idle application is looked at 10 times a second, not 1000
            await asyncio.sleep(period if busy else max(period, 0.1))
            busy = any(conn.running for conn in self.executors.values())
            if busy:
                rehearsal.run()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    # -- priorities from the operator ----------------------------------------------------------
    def _load_priorities(self) -> None:
        if not self.priorities_file:
            return
        try:
            data = json.loads(Path(self.priorities_file).read_text())
            self.priorities = {str(k): int(v) for k, v in data.get("jobs", {}).items()}
        except FileNotFoundError:
            return
        except (ValueError, AttributeError) as exc:
            log.warning("ignoring priorities file %s: %s", self.priorities_file, exc)

    async def _reload_priorities_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            self._load_priorities()

    def priority_of(self, job: StreamJob | BatchJob) -> int:
        return self.priorities.get(job.name, job.priority)

    # -- executor connections ---------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await session.handshake(reader, writer, self.app.name, self.secret)
        except session.Rejected as exc:
            self.auth_failures += 1
            session.rejected(writer, exc.reason)
            return
        name = hello.name
        conn = ExecutorConn(name if name not in self.executors else f"{name}-{next(self._names)}",
                            writer, hello.sealer)
        writer.write(protocol.encode({
            "t": "welcome", "executor_id": conn.id, "preempts": self.preempts,
            "states": {k: list(v) for k, v in self.states.items()}}, conn.sealer))
        self.executors[conn.id] = conn
        metrics.EXECUTORS.set(len(self.executors))
        log.info("executor %s registered", conn.id)
        frames = protocol.FrameBuffer()
        frames.opener = hello.opener
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                conn.heard_at = time.monotonic()
                for message in frames.feed(data):
                    self._on_message(conn, protocol.check(message, protocol.FROM_EXECUTOR))
        except protocol.ProtocolError as exc:
            self.wire_errors += 1
            metrics.WIRE_ERRORS.inc()
            log.warning("executor %s: dropped for a bad message: %s", conn.id, exc)
        except ConnectionError as exc:
            if not (self.stopping or conn.leaving):
                log.warning("executor %s: %s", conn.id, exc)
        except Exception:  # a bug of ours: say so, and re-run the executor's tasks elsewhere
            log.exception("executor %s: dropped after an internal error", conn.id)
        finally:
            self._lost(conn)
            conn.close()

    def _lost(self, conn: ExecutorConn) -> None:
        if self.executors.pop(conn.id, None) is None or self.stopping:
            return
        metrics.EXECUTORS.set(len(self.executors))
        orphans = [t for t in self.table.tasks.values() if t.executor == conn.id
                   and t.state in ("running", "sent", "suspended", "killed", "shipping")]
        if conn.leaving:
            log.info("executor %s left: re-running %d task(s)", conn.id, len(orphans))
        elif orphans or conn.silent:
            self.executors_lost += 1
            metrics.EXECUTORS_LOST.inc()
            log.warning("executor %s lost: re-running %d task(s)", conn.id, len(orphans))
        if not self.executors:
            log.warning("no live executor: tasks wait until one registers")
        self.streams.lost(conn.id)  # its keyed lanes restore on their next executor
        self.batches.lost(conn.id)  # the shuffle outputs it held are computed again
        for task in orphans:
            self.reruns += 1
            self._requeue(task)
        self.schedule()

    # -- messages from executors ------------------------------------------------------------
    def _on_message(self, conn: ExecutorConn, message: dict[str, Any]) -> None:
        kind = message["t"]
        now = time.monotonic()
        if kind == "heartbeat":
            conn.memory = message["memory"]
            conn.memory_limit = message["memory_limit"]
            conn.partitions = _partitions(message["partitions"])
            return
        if kind == "bye":
            conn.leaving = True
            return
        if kind == "shuffle":
            buckets = message.get("buckets")
            if buckets is not None and not all(
                    isinstance(b, list) and len(b) == 2 and isinstance(b[0], int)
                    and isinstance(b[1], list) for b in buckets):
                raise protocol.ProtocolError("shuffle: buckets must be [[bucket, records], ...]")
            self.batches.shuffled(message["job"], message["epoch"], message["stage"],
                                  message["partition"], buckets)
            return
        if kind == "ready":
            conn.ready = True
            conn.pid = message["pid"]
            conn.attach_bell(message.get("bell"))
            conn.takes_forewarn = message.get("forewarn") is True
            conn.memory_limit = message["memory_limit"]
            if not self.sources_started:
                self._start_sources()
            self.schedule()
            return
        task = self.table.get(message["id"])
        if task is None or task.executor != conn.id:
            return  # a task we already re-ran elsewhere, or finished
        if kind == "started":
            # ready -> sent on our clock, plus received -> started on the executor's clock:
            # no comparison across machines' clocks, only the one-way network time is left out
            waited = message["waited_ns"] / 1e9
            metrics.QUEUE_DELAY.labels(task.job, task.kind).observe(
                max(0.0, task.sent_at - task.ready_at) + waited)
            if task.preempting:
                send_to_start = message["ns"] / 1e9 - task.sent_at
                self.preempt_local.add(now, waited)
                self.preempt_latency.add(now, send_to_start)
                self.preempt_slowest.add(send_to_start, preemption_split(
                    send_to_start, waited, message.get("noticed_ns"), message.get("span_ns"),
                    conn.id))
        elif kind == "resumed":
            # The executor resumed a task by itself when its slot freed. Follow it only if we
            # still see that slot free: if we placed something there since, the executor
            # suspends the resumed task again on arrival and will say so.
            if task.state == "suspended" and conn.running is None:
                self.table.move(task, "running")
                conn.suspended.remove(task.id)
                conn.running = task.id
                task.resumed(now)
        elif kind == "suspended":
            via = message.get("via")
            if via in self.suspended_via:
                self.suspended_via[via] += 1
            task.suspensions += 1
            self.stats[task.job].suspensions += 1
            metrics.SUSPENSIONS.labels(task.job).inc()
        elif kind == "shipping":
            # Its slot is free (a suspension or kill sent meanwhile finds nothing to stop);
            # its lane and outputs wait for `finished`.
            if task.state in ("running", "suspended"):
                placement.release(self.table, conn, task, now)
                self.table.move(task, "shipping")
                self.schedule()
        elif kind == "changes":
            task.shipped += _changes(message["changes"])
        elif kind == "finished":
            self._finished(conn, task, message, now)
        elif kind == "failed":
            self._failed(conn, task, message["error"])
        elif kind == "killed":
            ran = float(message["ran_s"])
            self.wasted_seconds += ran
            metrics.WASTED.inc(ran)
            self._requeue(task)
            self.schedule()

    def _finished(self, conn: ExecutorConn, task: Task, message: dict[str, Any],
                  now: float) -> None:
        placement.release(self.table, conn, task, now)
        self.table.move(task, "finished")
        self.table.forget(task)
        stats = self.stats[task.job]
        stats.tasks_finished += 1
        gap = message.get("gap_ns", 0) / 1e9
        stats.yield_gaps.add(now, gap)
        metrics.YIELD_INTERVAL.labels(task.job).observe(gap)
        if task.kind == "stream":
            result = message["result"]
            changes = task.shipped + _changes(message.get("changes"))
            self.streams.finished(task, result if isinstance(result, list) else [], changes,
                                  now)
        else:
            self.batches.finished(task, message["result"], message["records"], conn.id, now)
        self._update_gauges()
        self.schedule()

    def _failed(self, conn: ExecutorConn, task: Task, error: str) -> None:
        placement.release(self.table, conn, task, time.monotonic())
        self.table.move(task, "failed")
        stats = self.stats[task.job]
        stats.failures += 1
        metrics.TASK_FAILURES.labels(task.job).inc()
        job = self.app.job(task.job)
        if isinstance(job, StreamJob):
            retry = self.streams.failed(task, error)
        else:
            retry = task.attempt < job.max_retries
            if not retry:
                log.error("job %s failed: task %s raised %d times: %s", job.name, task.id,
                          task.attempt + 1, error)
                stats.fail(error)
                self.drop_queued(job.name)
        if retry:
            log.warning("task %s failed (attempt %d), retrying: %s", task.id, task.attempt + 1,
                        error.splitlines()[0] if error else "")
            task.attempt += 1
            self._requeue(task)
        else:
            self.table.forget(task)
        self._update_gauges()
        self.schedule()

    def drop_queued(self, job: str) -> None:
        for other in self.table.queued():
            if other.job == job:
                self.table.forget(other)

    def _requeue(self, task: Task) -> None:
        conn = self.executors.get(task.executor or "")
        if conn is not None:
            placement.release(self.table, conn, task, time.monotonic())
        self.table.move(task, "queued")
        task.executor = None
        task.preempting = False
        task.shipped = []

    # -- task generation --------------------------------------------------------------------
    def new_task(self, job: StreamJob | BatchJob, **fields: Any) -> Task:
        task = Task(id=f"{job.name}-{next(self._ids)}", job=job.name, kind=job.kind,
                    priority=self.priority_of(job), ready_at=time.monotonic(), **fields)
        self.table.add(task)
        if task.kind == "stream" and self.preempts == "suspend":
            self._forewarn(task.priority)
        return task

    def _forewarn(self, priority: int) -> None:
        """Before the policy runs (~100-200 us here), tell the executors whose task the new one
        may suspend: they warm their preemption path meanwhile (doorbell.py). On this host
        that is a byte of the doorbell; across hosts a message, which warms the socket's path
        (read, open, decode: ~100 us cold) as it is handled."""
        tasks = self.table.tasks
        for conn in self.executors.values():
            running = tasks.get(conn.running) if conn.running is not None else None
            if running is None or running.priority >= priority:
                continue
            if conn.ringer is not None:
                conn.ringer.forewarn()
            elif conn.takes_forewarn:
                conn.send({"t": "forewarn"})
            else:
                continue
            self.forewarnings += 1

    def send_to(self, executor: str, message: dict[str, Any]) -> bool:
        """Send to one executor; False if it is gone."""
        conn = self.executors.get(executor)
        if conn is None:
            return False
        conn.send(message)
        return True

    def _broadcast(self, message: dict[str, Any]) -> None:
        for conn in self.executors.values():
            conn.send(message)

    # -- scheduling -------------------------------------------------------------------------
    def schedule(self) -> None:
        if not self.executors:
            return
        ready = [(c.id, c, c.memory, c.memory_limit, c.partitions)
                 for c in self.executors.values() if c.ready]
        snapshot = placement.snapshot(self.table, ready, time.monotonic())
        if not snapshot.queue and not any(e.suspended for e in snapshot.executors):
            return
        self._send(placement.apply(self.policy(snapshot), self.table, self.executors,
                                   time.monotonic()))
        # after what preempts is on its way: the policy runs again for these
        ahead = placement.send_ahead(self.policy, self.table, ready, time.monotonic())
        self.sent_ahead += len(ahead)
        self._send(ahead)
        self._update_gauges()

    def _send(self, sends: list[placement.Send]) -> None:
        for send in sends:
            conn = self.executors[send.executor]
            if send.task is not None:
                action = send.message.get("action")
                if action is not None:
                    metrics.PREEMPTIONS.labels(self.policy_name, action).inc()
                # frames before the run: its express copy waits until they are handled
                for restore in self.streams.placing(send.task, send.executor):
                    conn.send(restore)
                send.task.sent_at = time.monotonic()
            conn.send(send.message, express=send.express)

    def _update_gauges(self) -> None:
        for (state, kind), count in self.table.counts.items():
            metrics.TASKS.labels(state, kind).set(count)

    def reset_stats(self) -> None:
        """Forget the live windows (benchmarks call this after their warm-up)."""
        for stats in self.stats.values():
            stats.reset()
        self.preempt_latency.clear()
        self.preempt_local.clear()
        self.preempt_slowest.clear()
        self.wasted_seconds = 0.0
        self.started = time.monotonic()
