"""The executor: one process, one slot, every task in its own greenlet.

The hub (the main greenlet) handles the driver's messages and decides what runs. A task runs
until it finishes or, at a yield point, finds that the driver sent something (see yieldpoint.py
for why yield points poll) and switches to the hub. If the driver asked for a preemption, the
task's greenlet is kept as suspended (its memory and progress stay) and the stream task starts;
a later `resume` switches back into it. A preempting `run` that came through the doorbell's
express slot is handled in the preempted task's own greenlet, which starts the stream task
itself (`_on_signal`): one greenlet switch instead of two, and none of the batch task's stack is
copied, since the new greenlet's stack begins below it.

If the driver goes away (killed, its pod replaced), the executor drops its tasks, which the
driver re-runs or, restarted, never knew, and connects again.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import greenlet

from . import _yieldcore, metrics, protocol, yieldpoint
from .app import App, BatchJob, TaskContext
from .doorbell import SEEN_AT, SIZE, Bell, Ringer
from .hotpath import CANNED_RUN

# the task that hotpath.CANNED_RUN preempts, running on a rehearsal executor
CANNED_VICTIM: dict[str, Any] = {"id": CANNED_RUN["victim"], "job": "warm", "kind": "batch",
                                 "priority": 0}

log = logging.getLogger("neptune.executor")

HEARTBEAT_SECONDS = 1.0
RECEIVE_BYTES = 1 << 16
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESTAMP_CMSG_SPACE = socket.CMSG_SPACE(16)


def _arrival_ns(ancdata: list[tuple[int, int, bytes]]) -> int:
    """The kernel's receive time of the bytes just read, on the monotonic clock."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanos = struct.unpack("qq", data[:16])
            realtime = int(seconds) * 1_000_000_000 + int(nanos)
            return realtime - (time.time_ns() - time.monotonic_ns())
    return time.monotonic_ns()


def _receive(sock: socket.socket, size: int) -> tuple[bytes, int]:
    """Read up to `size` bytes, with their arrival time; BlockingIOError if nothing is there."""
    data, ancdata, _, _ = sock.recvmsg(size, TIMESTAMP_CMSG_SPACE)
    return data, _arrival_ns(ancdata)


class ExecutorError(Exception):
    """The executor cannot start or reach its driver."""


class DriverLost(ExecutorError):
    """The connection to the driver broke."""


@dataclass(slots=True)  # slots: cheaper to make and to read, cold, on the preemption path
class _Task:
    id: str
    job: str
    kind: str
    partition: int
    epoch: int
    attempt: int
    priority: int
    records: list[Any] | None
    glet: greenlet.greenlet | None = None
    started_ns: int = 0
    received_ns: int = 0
    consumed: int = 0
    outcome: tuple[str, Any] | None = None  # set by the task's greenlet as it ends
    preempting: bool = False  # started from the greenlet of the task it preempted


class _Counted:
    """Counts records of an unsized input; only used when the input has no len()."""

    def __init__(self, it: Iterator[Any]) -> None:
        self.it = it
        self.count = 0

    def __iter__(self) -> Iterator[Any]:
        for record in self.it:
            self.count += 1
            yield record


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * int(os.sysconf("SC_PAGE_SIZE"))



def _cgroup_memory_limit() -> int:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as handle:
                value = handle.read().strip()
        except OSError:
            continue
        if value.isdigit() and int(value) < 1 << 60:
            return int(value)
    return 0


class Executor:
    def __init__(self, app: App, app_ref: str, driver: tuple[str, int], secret: str, name: str,
                 *, yield_points: bool = True, connect_timeout: float = 30.0,
                 polling: yieldpoint.Settings = yieldpoint.DEFAULTS) -> None:
        self.app = app
        self.app_ref = app_ref
        self.driver = driver
        self.secret = secret
        self.name = name
        self.yield_points = yield_points
        self.connect_timeout = connect_timeout
        self.states: dict[str, tuple[int, Any]] = {}
        self.cache: dict[tuple[str, int], list[Any]] = {}
        self.current: _Task | None = None
        self.suspended: dict[str, _Task] = {}
        self.ready: deque[_Task] = deque()
        self.stopping = False
        self.exit_reason = "stopped"
        self.frames = protocol.FrameBuffer()
        self.memory_limit = _cgroup_memory_limit()
        self._last_heartbeat = 0.0
        self.resumes_locally = False
        self.outbox: list[dict[str, Any] | bytes] = []  # messages, or frames encoded already
        self.suspension_samples: list[float] = []
        self.arrived_ns = 0
        self.polling = polling
        self.bell: Bell | None = None
        self.bell_attached = False
        # the express slot's message, taken by a task's greenlet and left for the hub
        self.express: tuple[int, int, dict[str, Any]] | None = None
        # Task greenlets parked for reuse (a new one's first switch costs ~90 us cold: its
        # interpreter frame stack is mapped and faulted in): `spare` for the hub's next task,
        # `standby` for the next preemption. The forewarned rehearsal starts `standby` from the
        # running task's yield point, so its stack lies below that task's and the preempting
        # switch copies none of it; a task the hub starts never takes it.
        self.spare: greenlet.greenlet | None = None
        self.standby: greenlet.greenlet | None = None
        self.canned = mmap.mmap(-1, SIZE)  # a preempting `run` in an express slot, to rehearse
        Ringer(self.canned).express(CANNED_RUN, 0)
        self.rehearsal: Executor | None = None

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> None:
        deadline = time.monotonic() + self.connect_timeout
        delay = 0.05
        while True:
            sock: socket.socket | None = None
            self.frames = protocol.FrameBuffer()  # nothing of an earlier attempt carries over
            try:
                sock = self.sock = socket.create_connection(self.driver, timeout=5.0)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._handshake()
                break
            # Not up yet, or a killed driver's socket reset us: even after connecting, since a
            # dying driver's listening socket may accept before it closes.
            except (OSError, DriverLost) as exc:
                if sock is not None:
                    sock.close()
                if self.stopping or time.monotonic() > deadline:
                    raise ExecutorError(
                        f"cannot reach driver at {self.driver[0]}:{self.driver[1]}: {exc}"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        self.sock.settimeout(None)

    def _recv_message(self) -> dict[str, Any]:
        """The next handshake message; what came with it stays buffered for `_serve`."""
        data = b""
        while True:
            for message in self.frames.feed(data):
                return message
            data = self.sock.recv(1 << 16)
            if not data:
                raise ExecutorError("driver closed the connection during the handshake "
                                    "(wrong secret or app name?)")

    def _handshake(self) -> None:
        nonce = protocol.new_nonce()
        self.send({"t": "hello", "v": protocol.VERSION, "app": self.app.name,
                   "executor": self.name, "nonce": nonce})
        challenge = self._recv_message()
        if challenge.get("t") != "challenge":
            raise ExecutorError(f"driver refused: {challenge.get('error', challenge.get('t'))}")
        expected = protocol.driver_mac(self.secret, nonce, challenge["nonce"])
        if not protocol.verify(expected, challenge.get("mac")):
            self.send({"t": "abort", "reason": "secret_mismatch"})  # tell the operator why
            raise ExecutorError("driver failed authentication (its secret differs from ours)")
        self.send({"t": "auth", "mac": protocol.executor_mac(
            self.secret, challenge["nonce"], nonce, self.name)})
        welcome = self._recv_message()
        if welcome.get("t") != "welcome":
            raise ExecutorError("driver rejected this executor's authentication")
        self.id = welcome["executor_id"]
        self.frames.consumed = 0  # the driver counts stream offsets from after the welcome
        # Under a suspending policy the executor resumes its own suspended tasks as soon as its
        # slot frees, without waiting a round trip for the driver's `resume`.
        self.resumes_locally = welcome.get("preempts") == "suspend"
        for name, (version, value) in welcome.get("states", {}).items():
            self.states[name] = (version, value)

    def send(self, message: dict[str, Any]) -> None:
        """Send now, with whatever was posted before it."""
        self.post(message)
        self.flush()

    def post(self, message: dict[str, Any]) -> None:
        """Queue a message that may wait: between a preemption request and the preempting task
        starting, a send would cost a cross-CPU wake-up of the driver (~100 us here), and even
        encoding is worth deferring."""
        self.outbox.append(message)

    def flush(self) -> None:
        for seconds in self.suspension_samples:
            metrics.SUSPENSION_LATENCY.observe(seconds)
        self.suspension_samples.clear()
        if self.outbox:
            data = b"".join(m if isinstance(m, bytes) else protocol.encode(m)
                            for m in self.outbox)
            self.outbox.clear()
            self._sendall(data)

    def _sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view):]
            except BlockingIOError:
                select.select([], [self.sock], [], 1.0)
            except OSError as exc:
                raise DriverLost(f"lost the driver connection: {exc}") from None

    # -- main loop --------------------------------------------------------------------------
    def run(self, metrics_port: int | None = None) -> int:
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port)
        self.hub = greenlet.getcurrent()
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        try:
            while True:
                try:
                    self._serve()
                    return 0
                except DriverLost as exc:
                    log.warning("%s: connecting again", exc)
                    self._forget_tasks()
                    self.connect()
        except (ExecutorError, protocol.ProtocolError, OSError) as exc:
            if self.stopping:
                return 0
            self.exit_reason = str(exc)
            log.error("%s", exc)
            return 2
        finally:
            self.sock.close()
            self._drop_bell()

    def _install_yield_points(self) -> None:
        """Socket polls, and the doorbell checks once the driver rings it (the socket is still
        polled now and then: the tail of a large message, which the driver's event loop wrote
        after the ring, rings nothing)."""
        bell = self.bell.mapping if self.bell is not None and self.bell_attached else None
        yieldpoint.install(self._on_signal, fd=self.sock.fileno(),
                           interval_us=self.polling.poll_us, bell=bell,
                           on_forewarn=self._rehearse)

    def _drop_bell(self) -> None:
        yieldpoint.install(None)  # let go of the mapping before closing it
        if self.bell is not None:
            self.bell.close()
        self.bell, self.bell_attached = None, False

    def _serve(self) -> None:
        """Run the driver's tasks on the connection we have, until told to stop."""
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.poller = select.poll()
        self.poller.register(self.sock, select.POLLIN)
        self._drop_bell()
        self._install_yield_points()
        ready: dict[str, Any] = {"t": "ready", "memory_limit": self.memory_limit,
                                 "pid": os.getpid()}
        try:
            self.bell = Bell()
            ready["bell"] = {"path": self.bell.path, "token": self.bell.token}
        except OSError as exc:  # no shared memory here: the driver is polled for, as across hosts
            log.debug("no doorbell: %s", exc)
        self.send(ready)
        for message in self.frames.feed(b""):  # sent with the welcome, read with it
            self._handle(message)
        while not self.stopping:
            self._drain()
            if (self.current is None and not self.ready and self.suspended
                    and self.resumes_locally):
                first = next(iter(self.suspended))  # suspended first, resumed first
                self.ready.append(self.suspended.pop(first))
            if self.current is None and self.ready:
                self._start(self.ready.popleft())
            if self.standby is None:
                self.standby = greenlet.greenlet(self._worker, parent=self.hub)
            if self.current is not None:
                self._step(self.current)
            else:
                self._heartbeat()
                self.flush()
                self.poller.poll(HEARTBEAT_SECONDS * 1000)
        # A planned exit (a scale-down, Ctrl-C): the driver re-runs our tasks without calling
        # it a loss. Best effort: the driver may be gone already.
        with contextlib.suppress(DriverLost):
            self.send({"t": "bye"})
            self._linger()

    def _linger(self, seconds: float = 1.0) -> None:
        """After `bye`: end our side and read what the driver still sends until it closes. A
        socket closed with bytes unread (a frame taken from the express slot, a message sent
        since the last drain) resets the connection, and the reset can destroy the `bye` before
        the driver reads it: a planned exit would count as a loss."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0 \
                    and select.select([self.sock], [], [], left)[0]:
                if not self.sock.recv(RECEIVE_BYTES):
                    return  # the driver closed its side

    def _forget_tasks(self) -> None:
        """After losing the driver: end every task and drop what was meant for that driver."""
        tasks = [*self.ready, *self.suspended.values()]
        if self.current is not None:
            tasks.append(self.current)
        for task in tasks:
            if task.glet is not None and not task.glet.dead:
                task.glet.throw(greenlet.GreenletExit)
        self.current = None
        self.ready.clear()
        self.suspended.clear()
        self.outbox.clear()
        self.express = None
        self._last_heartbeat = 0.0  # the new connection hears our memory and partitions soon
        self.sock.close()

    def _on_signal(self) -> None:
        """Called by a yield point, in the running task's greenlet, when the driver sent
        something or we were told to stop. A preempting `run` of this very task in the express
        slot is handled here, and the stream task starts from here; anything else is the hub's."""
        task = self.current
        express = None if task is None or self.stopping else self._express()
        if express is not None and task is not None:
            message = express[2]
            if message["t"] == "run" and message.get("victim") == task.id \
                    and message.get("action") == "suspend":
                self._take(express)
                started = self.current
                if started is not None and started.glet is None:
                    self._launch(started, preempting=True)  # returns when this one resumes
                    return
            else:
                self.express = express
        self.hub.switch()

    def _rehearse(self) -> None:
        """Forewarned (the driver has a stream task that may preempt this one, and will decide
        in ~100-200 us): run the preemption path's code on a canned message meanwhile, so that
        it is warm when the real one comes (cold, it runs 5-10x slower). Itself cold, this takes
        ~100 us, so it stops as soon as the real message rings."""
        bell = self.bell
        if bell is None:
            return
        self.canned[SEEN_AT:SEEN_AT + 8] = bytes(8)  # take it again
        taken = _yieldcore.take_express(self.canned)
        if taken is None or bell.rung():
            return
        rehearsal = self.rehearsal or self._rehearsal()  # an executor that runs nothing
        rehearsal._take(taken)  # the hub's handling of it: the victim goes to `suspended`
        rehearsal.current = rehearsal.suspended.pop(CANNED_VICTIM["id"])  # as it was
        rehearsal.outbox.clear()
        rehearsal.suspension_samples.clear()
        if self.standby is not None and not bell.rung():
            self.standby.switch(greenlet.getcurrent())

    def _rehearsal(self) -> Executor:
        """An executor of the same app that never connects: its state is the rehearsal's."""
        self.rehearsal = Executor(self.app, self.app_ref, self.driver, self.secret,
                                  f"{self.name}-rehearsal")
        self.rehearsal.current = self._new_task(CANNED_VICTIM)
        return self.rehearsal

    def _on_term(self, signum: int, frame: Any) -> None:
        # Never switch greenlets here: set the flag; the next yield point sees it.
        self.stopping = True
        yieldpoint.request()

    def _drain(self) -> None:
        """Read and handle everything the driver sent so far (or, if it rang with a preempting
        `run` in the express slot and we have handled every frame before it, just that: what
        came after it is read at the next drain)."""
        if self.bell is not None:
            self.bell.clear()  # before reading: a message sent after the read rings again
            express, self.express = self.express or self._express(), None
            if express is not None:
                self._take(express)
                return
        while True:
            try:
                data, self.arrived_ns = _receive(self.sock, RECEIVE_BYTES)
            except BlockingIOError:
                return
            except OSError as exc:  # a killed driver's kernel may reset the connection
                raise DriverLost(f"lost the driver connection: {exc}") from None
            if not data:
                if self.stopping:
                    return
                raise DriverLost("lost the driver connection")
            for message in self.frames.feed(data):
                self._handle(message)
            if len(data) < RECEIVE_BYTES:  # all there was: no system call to find nothing
                return

    def _express(self) -> tuple[int, int, dict[str, Any]] | None:
        """The express slot's message, if it is new and every frame before it was handled."""
        express = self.bell.take_express() if self.bell is not None else None
        return express if express is not None and express[0] == self.frames.consumed else None

    def _take(self, express: tuple[int, int, dict[str, Any]]) -> None:
        """Handle the express slot's message; its frame is dropped when the socket brings it."""
        self.frames.skip_at, self.arrived_ns, message = express  # one host: one clock
        self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind == "run":
            self._on_run(message)
        elif kind == "resume":
            task = self.suspended.pop(message["id"], None)
            if task is not None:
                self.ready.appendleft(task)
        elif kind == "kill":
            self._kill(message["id"])
        elif kind == "state":
            self.states[message["name"]] = (message["version"], message["value"])
        elif kind == "bell":  # the driver rings our doorbell from now on
            if self.bell is not None:
                self.bell.unlink()
                self.bell_attached = True
                self._install_yield_points()
        else:
            log.warning("ignoring unknown message type %r", kind)

    def _new_task(self, message: dict[str, Any]) -> _Task:
        return _Task(id=message["id"], job=message["job"], kind=message["kind"],
                     partition=message.get("partition", -1), epoch=message.get("epoch", 0),
                     attempt=message.get("attempt", 0), priority=message.get("priority", 0),
                     records=message.get("records"), received_ns=self.arrived_ns)

    def _on_run(self, message: dict[str, Any]) -> None:
        task = self._new_task(message)
        victim = message.get("victim")
        current = self.current
        if victim is None and self.resumes_locally and current is not None \
                and current.priority < task.priority:
            # The driver placed this on a slot it thought free while we resumed a task of our
            # own: the policy's rule applies here too, the higher priority runs.
            victim = current.id
        if victim is None:
            self.ready.append(task)
            return
        # The victim may be running, or resumed but not started yet (a resume and this run can
        # arrive in one drain): either way it yields its slot to `task` now.
        requested = self.arrived_ns
        if message.get("action") == "kill":
            self._kill(victim)
        else:
            self._suspend(victim, requested)
        if self.current is None:
            self._start(task)
        else:
            self.ready.appendleft(task)  # the victim had already finished: run next

    def _suspend(self, task_id: str, requested_ns: int) -> None:
        victim = self.current
        if victim is not None and victim.id == task_id:
            self.current = None
        else:
            victim = next((t for t in self.ready if t.id == task_id), None)
            if victim is None:
                return
            self.ready.remove(victim)
        self.suspended[victim.id] = victim
        done = time.monotonic_ns()
        self.suspension_samples.append((done - requested_ns) / 1e9)
        self.post({"t": "suspended", "id": victim.id, "ns": done - requested_ns})

    def _kill(self, task_id: str) -> None:
        task = self.suspended.pop(task_id, None)
        if task is None and self.current is not None and self.current.id == task_id:
            task, self.current = self.current, None
        if task is None:
            task = next((t for t in self.ready if t.id == task_id), None)
            if task is not None:
                self.ready.remove(task)
        if task is None:
            return
        if task.glet is not None and not task.glet.dead:
            task.glet.throw(greenlet.GreenletExit)
        ran = (time.monotonic_ns() - task.started_ns) / 1e9 if task.started_ns else 0.0
        self.post({"t": "killed", "id": task.id, "ran_s": ran})

    def _start(self, task: _Task) -> None:
        if task.glet is not None:
            self.post({"t": "resumed", "id": task.id})
        self.current = task

    def _launch(self, task: _Task, preempting: bool = False) -> None:
        """Switch into a new task's greenlet, from the hub or from the task it preempts."""
        if preempting:
            glet, self.standby = self.standby, None
        else:
            glet, self.spare = self.spare, None
        task.glet = glet or greenlet.greenlet(self._worker, parent=self.hub)
        task.preempting = preempting
        yieldpoint.task_switched_in()
        task.glet.switch(task)

    def _step(self, task: _Task) -> None:
        if task.glet is None:
            self._launch(task)
        else:
            yieldpoint.task_switched_in()
            task.glet.switch()
        # Back in the hub: the task yielded or ended, or the stream task it started (from its
        # own greenlet, preempted) did. Either way `current` is the task that ran last.
        ran = self.current
        if ran is not None and ran.outcome is not None:
            self.current = None
            if ran.preempting:  # parked, for the next task of its kind
                self.standby = self.standby or ran.glet
            else:
                self.spare = self.spare or ran.glet
            self._finish(ran, *ran.outcome)

    def _finish(self, task: _Task, status: str, value: Any) -> None:
        elapsed = (time.monotonic_ns() - task.started_ns) / 1e9
        metrics.TASK_DURATION.labels(task.job, task.kind).observe(elapsed)
        self._heartbeat()
        if status == "ok":
            try:
                frame = protocol.encode({"t": "finished", "id": task.id, "result": value,
                                         "records": task.consumed, "elapsed": elapsed})
            except TypeError as exc:  # msgpack cannot encode the result
                status, value = "error", f"result of job {task.job} is not serialisable: {exc}"
            else:
                self.outbox.append(frame)
                self.flush()
                return
        self.send({"t": "failed", "id": task.id, "error": value})

    def _worker(self, given: _Task | greenlet.greenlet) -> None:
        """A task greenlet: runs the tasks it is given, parked in a switch between; given a
        greenlet (a rehearsal), it switches straight back to it."""
        while True:
            if isinstance(given, _Task):
                self._body(given)
                given = self.hub.switch()
            else:
                given = given.switch()

    def _body(self, task: _Task) -> None:
        """Runs inside the task's greenlet; its first line is when the task starts."""
        task.started_ns = time.monotonic_ns()
        self.post({"t": "started", "id": task.id, "ns": task.started_ns,
                   "waited_ns": task.started_ns - task.received_ns})
        task.outcome = self._run_task(task)

    def _run_task(self, task: _Task) -> tuple[str, Any]:
        try:
            job = self.app.job(task.job)
            ctx = TaskContext(task.id, task.job, task.partition, task.epoch, task.attempt,
                              self.states)
            records = self._inputs(task, job)
            counter = None if hasattr(records, "__len__") else _Counted(iter(records))
            source: Any = records if counter is None else counter
            task.consumed = len(records) if counter is None else 0
            stream = self._maybe_yielding(source)
            result = job.task(ctx, stream)
            if isinstance(job, BatchJob):
                value: Any = result
            else:
                value = [] if result is None else list(result)
            if counter is not None:
                task.consumed = counter.count
            return "ok", value
        except Exception as exc:
            detail = "".join(traceback.format_exception(exc)[-6:])
            return "error", f"{type(exc).__name__}: {exc}\n{detail}"

    def _maybe_yielding(self, records: Iterable[Any]) -> Iterator[Any]:
        return yieldpoint.yielding(records) if self.yield_points else iter(records)

    def _inputs(self, task: _Task, job: Any) -> Any:
        if not isinstance(job, BatchJob):
            return task.records or []
        key = (job.name, task.partition)
        if job.cache_partitions:
            if key not in self.cache:  # reading is task work too: suspendable
                self.cache[key] = list(self._maybe_yielding(job.read(task.partition, task.epoch)))
            return self.cache[key]
        return job.read(task.partition, task.epoch)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat < HEARTBEAT_SECONDS:
            return
        self._last_heartbeat = now
        rss = _rss_bytes()
        metrics.EXECUTOR_MEMORY.set(rss)
        metrics.EXECUTOR_SUSPENDED.set(len(self.suspended))
        self.post({"t": "heartbeat", "memory": rss, "memory_limit": self.memory_limit,
                   "partitions": [[j, p] for j, p in self.cache]})


def run_executor(app: App, app_ref: str, driver: tuple[str, int], secret: str, name: str,
                 *, yield_points: bool = True, metrics_port: int | None = None,
                 connect_timeout: float = 30.0,
                 polling: yieldpoint.Settings = yieldpoint.DEFAULTS) -> int:
    executor = Executor(app, app_ref, driver, secret, name, yield_points=yield_points,
                        connect_timeout=connect_timeout, polling=polling)
    try:
        executor.connect()
    except (ExecutorError, protocol.ProtocolError, OSError) as exc:
        print(f"neptunectl executor: {exc}", file=sys.stderr)
        return 2
    return executor.run(metrics_port)
