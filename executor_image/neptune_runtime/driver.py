"""The driver: one per application.

It accepts authenticated executors, turns sources and batch partitions into tasks, places them
with the policy, follows each task's state, re-runs the tasks of lost executors, combines batch
results into versioned shared state, sinks stream results and commits source offsets only once
their tasks finished (with a state directory, saved for a restart). The HTTP side (ingest,
/metrics, /healthz, /status) is in http_api.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import hotpath, metrics, protocol
from .app import App, BatchJob, StreamJob
from .doorbell import Ringer
from .durable import OffsetStore, open_state_dir
from .offsets import OffsetTracker
from .policies import (
    POLICIES,
    Decision,
    ExecutorView,
    Kill,
    NeptuneConfig,
    Place,
    Resume,
    Snapshot,
    Suspend,
    get_policy,
)
from .sources import Saved
from .stats import Rate, Window
from .tasks import Task, TaskTable

log = logging.getLogger("neptune.driver")

HANDSHAKE_TIMEOUT = 5.0
OFFSETS_SAVE_INTERVAL = 0.05


@dataclass
class ExecutorConn:
    id: str
    writer: asyncio.StreamWriter
    running: str | None = None
    suspended: list[str] = field(default_factory=list)
    memory: int = 0
    memory_limit: int = 0
    partitions: frozenset[tuple[str, int]] = frozenset()
    ready: bool = False
    ringer: Ringer | None = None  # the executor's doorbell, when it runs on this host
    sent_bytes: int = 0  # after the welcome: where the executor's stream offsets start
    leaving: bool = False  # it said `bye`: a planned exit, not a loss

    def send(self, message: dict[str, Any], express: bool = False) -> None:
        """Send; `express` also copies it into the executor's doorbell slot, if we ring one."""
        rung = False
        if express and self.ringer is not None:
            # the copy rings before the frame is even encoded: the executor needs only the copy
            rung = self.ringer.express(message, self.sent_bytes)
        frame = protocol.encode(message)
        self.writer.write(frame)
        self.sent_bytes += len(frame)
        if self.ringer is not None and not rung:
            self.ringer.ring()

    def attach_bell(self, offer: Any) -> None:
        """Ring the doorbell the executor offered, if we can open it (same host)."""
        if isinstance(offer, dict):
            self.ringer = Ringer.attach(offer.get("path"), offer.get("token"))
        if self.ringer is not None:
            self.send({"t": "bell"})


@dataclass
class JobStats:
    latency: Window = field(default_factory=Window)
    rate: Rate = field(default_factory=Rate)
    events: int = 0
    results: int = 0
    records: int = 0
    slo_met: int = 0
    slo_total: int = 0
    suspensions: int = 0
    failures: int = 0
    tasks_finished: int = 0
    state: str = "running"
    error: str | None = None
    epoch: int = 0


@dataclass
class _Epoch:
    number: int
    started: float
    results: dict[int, Any] = field(default_factory=dict)


class _SourceOutput:
    def __init__(self, driver: Driver, job: StreamJob) -> None:
        self.driver = driver
        self.job = job

    def emit(self, value: Any, token: Any) -> None:
        self.driver.on_events(self.job, [(value, token)])

    def emit_all(self, events: list[tuple[Any, Any]]) -> None:
        self.driver.on_events(self.job, events)

    def malformed(self, reason: str) -> None:
        metrics.INGEST_REJECTED.labels(self.job.name, "malformed").inc()
        self.driver.rejected += 1
        log.warning("job %s: skipped malformed event: %s", self.job.name, reason)


class Driver:
    def __init__(self, app: App, secret: str, *, policy: str = "neptune",
                 neptune_config: NeptuneConfig | None = None,
                 priorities_file: str | None = None,
                 state_dir: str | os.PathLike[str] | None = None,
                 warm_us: int = hotpath.DEFAULT_WARM_US) -> None:
        """Raises durable.StateDirError if `state_dir` or what is in it cannot be used."""
        self.app = app
        self.secret = secret
        self.policy_name = policy
        self.warm_us = warm_us
        self.rehearsal: hotpath.Rehearsal | None = None
        self.policy = get_policy(policy, neptune_config)
        self.preempts = POLICIES[policy].preempts
        self.priorities_file = priorities_file
        self.priorities: dict[str, int] = {}
        self.executors: dict[str, ExecutorConn] = {}
        self.table = TaskTable()
        self.stats = {name: JobStats() for name in app.jobs}
        self.offsets = {job.name: OffsetTracker() for job in app.stream_jobs()}
        self.states: dict[str, tuple[int, Any]] = {}
        self.epochs: dict[str, _Epoch] = {}
        self.microbatches: dict[str, list[tuple[Any, int, float]]] = {}
        # preempting tasks: send-to-start (valid on one host only: it compares two processes'
        # monotonic clocks) and arrival-to-start (on the executor's clock alone)
        self.preempt_latency = Window(seconds=3600.0, limit=100000)
        self.preempt_local = Window(seconds=3600.0, limit=100000)
        self.wasted_seconds = 0.0
        self.rejected = 0
        self.auth_failures = 0
        self.executors_lost = 0
        self.reruns = 0
        self.started = time.monotonic()
        self.stopping = False
        self.sources_started = False
        self.config_problems: list[str] = []  # resource settings that could not be applied
        self._ids = itertools.count()
        self._names = itertools.count()
        self._background: set[asyncio.Task[None]] = set()
        for job in app.batch_jobs():
            if job.publishes:
                self.states[job.publishes] = (0, job.initial_state)
        # The last committed token of every stream job. With a state directory they are saved
        # (see _save_offsets) and every source continues after its job's.
        self.state_dir = open_state_dir(state_dir) if state_dir is not None else None
        self._store = OffsetStore(self.state_dir) if self.state_dir is not None else None
        saved = self._store.load() if self._store is not None else {}
        self.committed: dict[str, Any] = {j.name: self._saved_token(j, saved.get(j.name))
                                          for j in app.stream_jobs()}
        self.resumed_from = dict(self.committed)
        self._saver: asyncio.Task[None] | None = None
        if self.state_dir is not None:
            for stream in app.stream_jobs():
                stream.source.restore(Saved(stream.name, self.committed[stream.name],
                                             self.state_dir))

    @staticmethod
    def _saved_token(job: StreamJob, saved: tuple[str, Any] | None) -> Any:
        if saved is None:
            return None
        kind, token = saved
        if kind != job.source.kind:
            log.warning("job %s: its source was %s and is %s now: it starts from the beginning",
                        job.name, kind, job.source.kind)
            return None
        return token

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._accept, host, port)
        bound: int = self.server.sockets[0].getsockname()[1]
        self._load_priorities()
        for batch in self.app.batch_jobs():
            self._start_epoch(batch, 0)
        if self.priorities_file:
            self._spawn(self._reload_priorities_loop())
        if self._store is not None:
            self._saver = asyncio.ensure_future(self._save_offsets(self._store))
        if self.warm_us:
            self.rehearsal = hotpath.Rehearsal()
            self._spawn(self._keep_warm(self.rehearsal))
        return bound

    def _start_sources(self) -> None:
        """Start the stream sources once an executor can take their tasks: events generated
        before that would only measure how long executors take to start."""
        self.sources_started = True
        for stream in self.app.stream_jobs():
            if stream.trigger.interval is not None:
                self.microbatches[stream.name] = []
                self._spawn(self._microbatch_loop(stream))
            self._spawn(stream.source.run(_SourceOutput(self, stream)))

    async def stop(self) -> None:
        self.stopping = True
        # Executors are not told to stop: a driver stops when its pod is replaced, and they
        # reconnect to the next one (their own SIGTERM stops them). Exiting would restart their
        # containers, with Kubernetes' growing back-off.
        for conn in list(self.executors.values()):
            with contextlib.suppress(Exception):
                conn.writer.close()
        for task in list(self._background):
            task.cancel()
        if self.rehearsal is not None:
            self.rehearsal.close()
        self.server.close()
        if self._saver is not None:
            await self._saver
        for job in self.app.stream_jobs():
            if job.sink is not None:
                job.sink.close()

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

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def _save_offsets(self, store: OffsetStore) -> None:
        """Save the committed tokens when they changed, at most every OFFSETS_SAVE_INTERVAL
        (being a little behind only means replaying more after a crash), and once more at a
        clean stop. Off the event loop: the save's fsync may take milliseconds."""
        saved = dict(self.committed)
        while True:
            stopping = self.stopping
            if self.committed != saved:
                saved = dict(self.committed)
                entries = {job.name: (job.source.kind, saved[job.name])
                           for job in self.app.stream_jobs()}
                try:
                    await asyncio.to_thread(store.save, entries)
                except (OSError, TypeError, ValueError) as exc:
                    log.error("cannot save the committed offsets to %s: %s", store.path, exc)
            if stopping:
                return
            await asyncio.sleep(OFFSETS_SAVE_INTERVAL)

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
        conn = await self._authenticate(reader, writer)
        if conn is None:
            writer.close()
            return
        self.executors[conn.id] = conn
        metrics.EXECUTORS.set(len(self.executors))
        log.info("executor %s registered", conn.id)
        buffer = protocol.FrameBuffer()
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                for message in buffer.feed(data):
                    self._on_message(conn, message)
        except (ConnectionError, protocol.ProtocolError) as exc:
            if not (self.stopping or conn.leaving):
                log.warning("executor %s: %s", conn.id, exc)
        except Exception:  # a bug of ours: say so, and re-run the executor's tasks elsewhere
            log.exception("executor %s: dropped after an internal error", conn.id)
        finally:
            self._lost(conn)
            writer.close()

    async def _read_one(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        header = await reader.readexactly(protocol.HEADER.size)
        (length,) = protocol.HEADER.unpack(header)
        if length > protocol.PREAUTH_MAX_FRAME:
            raise protocol.ProtocolError(f"pre-auth frame of {length} bytes")
        return protocol.decode_body(await reader.readexactly(length))

    async def _authenticate(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> ExecutorConn | None:
        def reject(reason: str) -> None:
            self.auth_failures += 1
            metrics.AUTH_FAILURES.labels(reason).inc()
            peer = writer.get_extra_info("peername")
            log.warning("dropped executor connection from %s: %s", peer, reason)

        try:
            hello = await asyncio.wait_for(self._read_one(reader), HANDSHAKE_TIMEOUT)
            if hello.get("t") != "hello" or hello.get("v") != protocol.VERSION:
                reject("bad_hello")
                return None
            if hello.get("app") != self.app.name or not isinstance(hello.get("nonce"), bytes):
                reject("wrong_app")
                return None
            nonce = protocol.new_nonce()
            name = str(hello.get("executor", "executor"))[:100]
            writer.write(protocol.encode({
                "t": "challenge", "v": protocol.VERSION, "nonce": nonce,
                "mac": protocol.driver_mac(self.secret, hello["nonce"], nonce)}))
            auth = await asyncio.wait_for(self._read_one(reader), HANDSHAKE_TIMEOUT)
            if auth.get("t") == "abort":
                reject("secret_mismatch")
                return None
            expected = protocol.executor_mac(self.secret, nonce, hello["nonce"], name)
            if auth.get("t") != "auth" or not protocol.verify(expected, auth.get("mac")):
                reject("bad_hmac")
                return None
        except TimeoutError:
            reject("timeout")
            return None
        except (asyncio.IncompleteReadError, ConnectionError):
            reject("aborted")
            return None
        except protocol.ProtocolError:
            reject("protocol")
            return None
        executor_id = name if name not in self.executors else f"{name}-{next(self._names)}"
        conn = ExecutorConn(executor_id, writer)
        writer.write(protocol.encode({
            "t": "welcome", "executor_id": executor_id, "preempts": self.preempts,
            "states": {k: list(v) for k, v in self.states.items()}}))
        return conn

    def _lost(self, conn: ExecutorConn) -> None:
        ringer, conn.ringer = conn.ringer, None
        if ringer is not None:
            ringer.close()
        if self.executors.pop(conn.id, None) is None or self.stopping:
            return
        metrics.EXECUTORS.set(len(self.executors))
        orphans = [t for t in self.table.tasks.values()
                   if t.executor == conn.id and t.state in ("running", "suspended", "killed")]
        if conn.leaving:
            log.info("executor %s left: re-running %d task(s)", conn.id, len(orphans))
        elif orphans:
            self.executors_lost += 1
            metrics.EXECUTORS_LOST.inc()
            log.warning("executor %s lost: re-running %d task(s)", conn.id, len(orphans))
        for task in orphans:
            self.reruns += 1
            self._requeue(task)
        self.schedule()

    # -- messages from executors ------------------------------------------------------------
    def _on_message(self, conn: ExecutorConn, message: dict[str, Any]) -> None:
        kind = message["t"]
        now = time.monotonic()
        if kind == "heartbeat":
            conn.memory = int(message.get("memory", 0))
            conn.memory_limit = int(message.get("memory_limit", 0))
            conn.partitions = frozenset((str(j), int(p)) for j, p in message.get("partitions", []))
            return
        if kind == "bye":
            conn.leaving = True
            return
        if kind == "ready":
            conn.ready = True
            conn.attach_bell(message.get("bell"))
            conn.memory_limit = int(message.get("memory_limit", 0))
            if not self.sources_started:
                self._start_sources()
            self.schedule()
            return
        task = self.table.get(message.get("id", ""))
        if task is None or task.executor != conn.id:
            return  # a task we already re-ran elsewhere, or finished
        if kind == "started":
            # ready -> sent on our clock, plus received -> started on the executor's clock:
            # no comparison across machines' clocks, only the one-way network time is left out
            waited = message.get("waited_ns", 0) / 1e9
            metrics.QUEUE_DELAY.labels(task.job, task.kind).observe(
                max(0.0, task.sent_at - task.ready_at) + waited)
            if task.preempting:
                self.preempt_local.add(now, waited)
                self.preempt_latency.add(now, message["ns"] / 1e9 - task.sent_at)
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
            task.suspensions += 1
            self.stats[task.job].suspensions += 1
            metrics.SUSPENSIONS.labels(task.job).inc()
        elif kind == "finished":
            self._finished(conn, task, message, now)
        elif kind == "failed":
            self._failed(conn, task, str(message.get("error", "unknown error")))
        elif kind == "killed":
            ran = float(message.get("ran_s", 0.0))
            self.wasted_seconds += ran
            metrics.WASTED.inc(ran)
            self._requeue(task)
            self.schedule()

    def _release(self, conn: ExecutorConn, task: Task) -> None:
        if conn.running == task.id:
            conn.running = None
        if task.id in conn.suspended:
            conn.suspended.remove(task.id)

    def _finished(self, conn: ExecutorConn, task: Task, message: dict[str, Any],
                  now: float) -> None:
        self._release(conn, task)
        self.table.move(task, "finished")
        self.table.forget(task)
        stats = self.stats[task.job]
        stats.tasks_finished += 1
        job = self.app.job(task.job)
        if isinstance(job, StreamJob):
            self._stream_done(job, task, message.get("result") or [], now)
        else:
            records = int(message.get("records", 0))
            stats.records += records
            stats.rate.add(now, records)
            metrics.BATCH_RECORDS.labels(job.name).inc(records)
            self._batch_done(job, task, message.get("result"))
        self._update_gauges()
        self.schedule()

    def _stream_done(self, job: StreamJob, task: Task, outputs: list[Any], now: float) -> None:
        stats = self.stats[job.name]
        for arrived in task.event_times:
            latency = now - arrived
            stats.latency.add(now, latency)
            metrics.STREAM_LATENCY.labels(job.name).observe(latency)
            stats.slo_total += 1
            if latency <= job.slo:
                stats.slo_met += 1
            else:
                metrics.SLO_VIOLATIONS.labels(job.name).inc()
        stats.results += len(outputs)
        stats.records += len(task.event_times)
        stats.rate.add(now, len(task.event_times))
        if job.sink is not None and outputs:
            try:
                job.sink.write(job.name, outputs)
            except Exception as exc:
                log.error("job %s: sink failed: %s", job.name, exc)
        commit = self.offsets[job.name].done(task.seqs)
        if commit is not None:
            job.source.commit(commit)
            self.committed[job.name] = commit

    def _failed(self, conn: ExecutorConn, task: Task, error: str) -> None:
        self._release(conn, task)
        self.table.move(task, "failed")
        stats = self.stats[task.job]
        stats.failures += 1
        metrics.TASK_FAILURES.labels(task.job).inc()
        job = self.app.job(task.job)
        if task.attempt < job.max_retries:
            log.warning("task %s failed (attempt %d), retrying: %s", task.id, task.attempt + 1,
                        error.splitlines()[0])
            task.attempt += 1
            self._requeue(task)
        else:
            log.error("job %s failed: task %s raised %d times: %s", job.name, task.id,
                      task.attempt + 1, error)
            stats.state = "failed"
            stats.error = error
            self.table.forget(task)
            for other in self.table.queued():
                if other.job == job.name:
                    self.table.forget(other)
        self._update_gauges()
        self.schedule()

    def _requeue(self, task: Task) -> None:
        conn = self.executors.get(task.executor or "")
        if conn is not None:
            self._release(conn, task)
        self.table.move(task, "queued")
        task.executor = None
        task.preempting = False

    # -- task generation --------------------------------------------------------------------
    def _new_task(self, job: StreamJob | BatchJob, **fields: Any) -> Task:
        task = Task(id=f"{job.name}-{next(self._ids)}", job=job.name, kind=job.kind,
                    priority=self.priority_of(job), ready_at=time.monotonic(), **fields)
        self.table.add(task)
        if task.kind == "stream" and self.preempts == "suspend":
            self._forewarn(task.priority)
        return task

    def _forewarn(self, priority: int) -> None:
        """Before the policy runs (~100-200 us here), tell the same-host executors whose task
        the new one may suspend: they warm their preemption path meanwhile (doorbell.py)."""
        tasks = self.table.tasks
        for conn in self.executors.values():
            running = tasks.get(conn.running) if conn.running is not None else None
            if conn.ringer is not None and running is not None and running.priority < priority:
                conn.ringer.forewarn()

    def on_events(self, job: StreamJob, events: list[tuple[Any, Any]]) -> None:
        """Events from a source, in order; one scheduling pass for all of them."""
        stats = self.stats[job.name]
        if stats.state == "failed" or not events:
            return
        now = time.monotonic()
        stats.events += len(events)
        metrics.EVENTS_INGESTED.labels(job.name).inc(len(events))
        tracker = self.offsets[job.name]
        for value, token in events:
            seq = tracker.track(token)
            if job.trigger.interval is None:
                self._new_task(job, records=[value], seqs=[seq], event_times=[now])
            else:
                self.microbatches[job.name].append((value, seq, now))
        if job.trigger.interval is None:
            self.schedule()

    async def _microbatch_loop(self, job: StreamJob) -> None:
        assert job.trigger.interval is not None
        while True:
            await asyncio.sleep(job.trigger.interval)
            batch = self.microbatches[job.name]
            if batch and self.stats[job.name].state != "failed":
                self.microbatches[job.name] = []
                self._new_task(job, records=[v for v, _, _ in batch],
                               seqs=[s for _, s, _ in batch], event_times=[t for _, _, t in batch])
                self.schedule()

    def _start_epoch(self, job: BatchJob, number: int) -> None:
        if self.stats[job.name].state == "failed":
            return
        if job.max_epochs is not None and number >= job.max_epochs:
            self.stats[job.name].state = "done"
            return
        self.epochs[job.name] = _Epoch(number, time.monotonic())
        self.stats[job.name].epoch = number
        for partition in range(job.partitions):
            self._new_task(job, partition=partition, epoch=number)
        self.schedule()

    def _batch_done(self, job: BatchJob, task: Task, result: Any) -> None:
        epoch = self.epochs.get(job.name)
        if epoch is None or epoch.number != task.epoch:
            return
        epoch.results[task.partition] = result
        if len(epoch.results) < job.partitions:
            return
        if job.combine is not None:
            previous = self.states.get(job.publishes or "", (0, None))[1]
            try:
                value = job.combine([epoch.results[p] for p in range(job.partitions)], previous)
            except Exception as exc:
                self.stats[job.name].state = "failed"
                self.stats[job.name].error = f"combine raised {type(exc).__name__}: {exc}"
                log.error("job %s: %s", job.name, self.stats[job.name].error)
                return
            if job.publishes:
                self.publish(job.publishes, value)
        if job.schedule is None:
            self._start_epoch(job, epoch.number + 1)
        else:
            delay = max(0.0, epoch.started + job.schedule - time.monotonic())
            asyncio.get_running_loop().call_later(delay, self._start_epoch, job, epoch.number + 1)

    def publish(self, name: str, value: Any) -> None:
        version = self.states.get(name, (0, None))[0] + 1
        self.states[name] = (version, value)
        metrics.STATE_VERSION.labels(name).set(version)
        message = {"t": "state", "name": name, "version": version, "value": value}
        for conn in self.executors.values():
            conn.send(message)

    # -- scheduling -------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        tasks = self.table.tasks
        views = tuple(
            ExecutorView(
                conn.id,
                tasks[conn.running].view() if conn.running in tasks else None,
                tuple(tasks[s].view() for s in conn.suspended if s in tasks),
                conn.memory, conn.memory_limit, conn.partitions,
            )
            for conn in self.executors.values() if conn.ready
        )
        head = self.table.queue_head(max(8, 2 * len(views)))
        return Snapshot(time.monotonic(), views, tuple(t.view() for t in head))

    def schedule(self) -> None:
        if not self.executors:
            return
        snapshot = self.snapshot()
        if not snapshot.queue and not any(e.suspended for e in snapshot.executors):
            return
        self.apply(self.policy(snapshot))

    def apply(self, decisions: list[Decision]) -> None:
        victims: dict[str, tuple[str, str]] = {}  # executor -> (task, action)
        now = time.monotonic()
        for decision in decisions:
            conn = self.executors[decision.executor]
            task = self.table.tasks[decision.task]
            if isinstance(decision, Suspend | Kill):
                action = "suspend" if isinstance(decision, Suspend) else "kill"
                victims[conn.id] = (task.id, action)
                metrics.PREEMPTIONS.labels(self.policy_name, action).inc()
                if conn.running == task.id:
                    conn.running = None
                if action == "suspend":
                    self.table.move(task, "suspended")
                    conn.suspended.append(task.id)
                    task.suspended(now)
                else:
                    self.table.move(task, "killed")
            elif isinstance(decision, Resume):
                self.table.move(task, "running")
                conn.suspended.remove(task.id)
                conn.running = task.id
                task.resumed(now)
                conn.send({"t": "resume", "id": task.id})
            elif isinstance(decision, Place):
                self.table.move(task, "running")
                task.executor = conn.id
                task.started(now)
                conn.running = task.id
                message: dict[str, Any] = {
                    "t": "run", "id": task.id, "job": task.job, "kind": task.kind,
                    "priority": task.priority, "partition": task.partition,
                    "epoch": task.epoch, "attempt": task.attempt}
                if task.records is not None:
                    message["records"] = task.records
                victim = victims.pop(conn.id, None)
                task.preempting = victim is not None
                if victim is not None:
                    message["victim"], message["action"] = victim
                task.sent_at = time.monotonic()
                conn.send(message, express=task.preempting)
        self._update_gauges()

    def _update_gauges(self) -> None:
        for (state, kind), count in self.table.counts.items():
            metrics.TASKS.labels(state, kind).set(count)

    def reset_stats(self) -> None:
        """Forget the live windows (benchmarks call this after their warm-up)."""
        for stats in self.stats.values():
            stats.latency.clear()
            stats.rate.clear()
            stats.records = stats.events = stats.results = 0
            stats.slo_met = stats.slo_total = stats.suspensions = 0
            stats.tasks_finished = stats.failures = 0
        self.preempt_latency.clear()
        self.preempt_local.clear()
        self.wasted_seconds = 0.0
        self.started = time.monotonic()
