"""The executor: one process, one slot, every task in its own greenlet.

The hub (the main greenlet) reads the driver's messages and decides what runs (hub.py); tasks
run in greenlets (runner.py) and yield at every record (yieldpoint.py), where a preemption that
came through the doorbell's express slot is taken at once (express.py). The connection, its
handshake and its heartbeats are link.py's.

If the driver goes away (killed, its pod replaced) or sends something invalid, the executor
drops its tasks, which the driver re-runs or, restarted, never knew, and connects again.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import select
import signal
import sys
import time
from collections import deque
from typing import Any

import greenlet

from .. import protocol, yieldpoint
from ..app import App
from ..doorbell import SIZE, Bell, Ringer
from ..hotpath import CANNED_RUN
from ..shuffle import ShuffleStore
from . import metrics
from .express import Express
from .hub import Hub
from .link import HEARTBEAT_SECONDS, RECEIVE_BYTES, DriverLost, ExecutorError, Link
from .runner import Runner

log = logging.getLogger("neptune.executor")


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


class Executor(Hub, Runner, Express):
    def __init__(self, app: App, app_ref: str, driver: tuple[str, int], secret: str, name: str,
                 *, yield_points: bool = True, connect_timeout: float = 30.0,
                 polling: yieldpoint.Settings = yieldpoint.DEFAULTS) -> None:
        self.app = app
        self.app_ref = app_ref
        self.published = app.published()
        self.link = Link(driver, app.name, name, secret)
        self.yield_points = yield_points
        self.connect_timeout = connect_timeout
        self.id = name
        self.states = {}
        self.cache = {}
        self.keyed = {}
        self.shuffle = ShuffleStore()
        self.current = None
        self.suspended = {}
        self.ready = deque()
        self.shipping = deque()
        self.stopping = False
        self.exit_reason = "stopped"
        self.memory_limit = _cgroup_memory_limit()
        self.resumes_locally = False
        self.suspension_samples = []
        self.arrived_ns = 0
        self.noticed_ns = 0
        self.noticed_span_ns = 0
        self.polling = polling
        self.bell = None
        self.bell_attached = False
        self.express = None
        self.failure = None
        self.inbox = []
        # Parked task greenlets (runner.py): `spare` for the hub's next task, `standby` for the
        # next preemption. The forewarned rehearsal starts `standby` from the running task's
        # yield point, so its stack lies below that task's and the preempting switch copies
        # none of it; a task the hub starts never takes it.
        self.spare = None
        self.standby = None
        self.canned = mmap.mmap(-1, SIZE)  # a preempting `run` in an express slot, to rehearse
        Ringer(self.canned).express(CANNED_RUN, 0)
        self.rehearsal = None
        self.switched_into = None
        self.hold_until = 0.0
        self.hub = greenlet.getcurrent()  # `run` makes it the greenlet that runs it

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> None:
        welcome = self.link.connect(self.connect_timeout, lambda: self.stopping)
        self.id = welcome.executor_id
        # Under a suspending policy the executor resumes its own suspended tasks as soon as its
        # slot frees, without waiting a round trip for the driver's `resume`.
        self.resumes_locally = welcome.preempts == "suspend"
        self.states.update(welcome.states)

    def flush(self) -> None:
        for seconds in self.suspension_samples:
            metrics.SUSPENSION_LATENCY.observe(seconds)
        self.suspension_samples.clear()
        self.link.flush()

    def heartbeat(self) -> dict[str, Any]:
        """The heartbeat message (made on the heartbeat thread)."""
        rss = _rss_bytes()
        metrics.EXECUTOR_MEMORY.set(rss)
        metrics.EXECUTOR_SUSPENDED.set(len(self.suspended))
        return {"t": "heartbeat", "memory": rss, "memory_limit": self.memory_limit,
                "partitions": [[j, p] for j, _, p in list(self.cache)]}

    # -- main loop --------------------------------------------------------------------------
    def run(self, metrics_port: int | None = None) -> int:
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port)
        self.hub = greenlet.getcurrent()
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        self.link.heartbeats(self.heartbeat)
        try:
            while True:
                try:
                    self._serve()
                    return 0
                except DriverLost as exc:
                    log.warning("%s: connecting again", exc)
                    self._forget_tasks()
                    self.connect()
        except (ExecutorError, OSError) as exc:
            if self.stopping:
                return 0
            self.exit_reason = str(exc)
            log.error("%s", exc)
            return 2
        finally:
            self.link.close()
            self._drop_bell()

    def _serve(self) -> None:
        """Run the driver's tasks on the connection we have, until told to stop."""
        self.link.serving()
        self.poller = select.poll()
        self.poller.register(self.link.sock, select.POLLIN)
        self._drop_bell()
        ready: dict[str, Any] = {"t": "ready", "memory_limit": self.memory_limit,
                                 "pid": os.getpid(), "forewarn": True}
        try:
            self.bell = Bell()
            ready["bell"] = {"path": self.bell.path, "token": self.bell.token}
        except OSError as exc:  # no shared memory here: the socket is polled for
            log.debug("no doorbell: %s", exc)
        self._install_yield_points()
        self.link.send(ready)
        self._feed(b"")  # what was sent with the welcome, read with it
        while not self.stopping:
            self._drain()
            if self.shipping and not self._stream_first():
                self._ship()  # a step of a few milliseconds, then the driver is heard again
                continue
            if (self.current is None and not self.ready and self.suspended
                    and self.resumes_locally):
                held = self.hold_until - time.monotonic()
                if held > 0:  # the driver's next stream task is on its way (runner.py)
                    self.flush()
                    self.poller.poll(held * 1000)
                    continue
                self.hold_until = 0.0
                first = next(iter(self.suspended))  # suspended first, resumed first
                self.ready.append(self.suspended.pop(first))
            if self.current is None and self.ready:
                self._start(self.ready.popleft())
            if self.standby is None:
                self.standby = greenlet.greenlet(self._worker, parent=self.hub)
            if self.current is not None:
                self._step(self.current)
            else:
                self.flush()
                self.poller.poll(HEARTBEAT_SECONDS * 1000)
        # A planned exit (a scale-down, Ctrl-C): the driver re-runs our tasks without calling
        # it a loss. Best effort: the driver may be gone already.
        with contextlib.suppress(DriverLost):
            self.flush()
            self.link.send({"t": "bye"})
            self.link.linger()

    def _stream_first(self) -> bool:
        """Whether a stream task runs before the next shipping step (a batch task waits for
        the shipping, as it waits for the stream task that is shipping)."""
        task = self.current or (self.ready[0] if self.ready else None)
        return task is not None and task.kind == "stream"

    def _feed(self, data: bytes) -> None:
        """Handle the messages in `data`; an invalid one drops the connection (counted)."""
        try:
            self._handle_all(list(self.link.frames.feed(data)))
        except protocol.ProtocolError as exc:
            raise self._invalid(exc) from None

    def _handle_all(self, messages: list[dict[str, Any]]) -> None:
        last = len(messages) - 1
        for index, message in enumerate(messages):
            self._handle(message)
            if message["t"] == "forewarn" and index == last:
                self._rehearse()  # what it warns of is not here yet: rehearse meanwhile

    @staticmethod
    def _invalid(exc: Exception) -> DriverLost:
        metrics.WIRE_ERRORS.inc()
        return DriverLost(f"dropping the driver connection: {exc}")

    def _drain(self) -> None:
        """Read and handle everything the driver sent so far (or, if it rang with a preempting
        `run` in the express slot and we have handled every frame before it, just that: what
        came after it is read at the next drain)."""
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure if isinstance(failure, DriverLost) else self._invalid(failure)
        if self.inbox:  # read in a task's greenlet (express.py): before anything newer
            inbox, self.inbox = self.inbox, []
            try:
                self._handle_all(inbox)
            except protocol.ProtocolError as exc:
                raise self._invalid(exc) from None
        if self.bell is not None:
            self.bell.clear()  # before reading: a message sent after the read rings again
            express, self.express = self.express or self._express(), None
            if express is not None:
                try:
                    self._take(express)
                except protocol.ProtocolError as exc:
                    raise self._invalid(exc) from None
                return
        while True:
            try:
                data, self.arrived_ns = self.link.receive()
            except BlockingIOError:
                return
            if not data:
                if self.stopping:
                    return
                raise DriverLost("lost the driver connection")
            self._feed(data)
            if len(data) < RECEIVE_BYTES:
                return  # all there was: no system call to find nothing

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
        self.shipping.clear()
        self.suspended.clear()
        self.express = None
        self.failure = None
        self.inbox.clear()
        self.switched_into = None
        self.hold_until = 0.0
        self.keyed.clear()  # the next driver restores what it gives us
        self.shuffle.clear()  # and never heard of these outputs
        self.suspension_samples.clear()
        self.link.close()

    def _on_term(self, signum: int, frame: Any) -> None:
        # Never switch greenlets here: set the flag; the next yield point sees it.
        self.stopping = True
        yieldpoint.request()


def run_executor(app: App, app_ref: str, driver: tuple[str, int], secret: str, name: str,
                 *, yield_points: bool = True, metrics_port: int | None = None,
                 connect_timeout: float = 30.0,
                 polling: yieldpoint.Settings = yieldpoint.DEFAULTS) -> int:
    executor = Executor(app, app_ref, driver, secret, name, yield_points=yield_points,
                        connect_timeout=connect_timeout, polling=polling)
    try:
        executor.connect()
    except (ExecutorError, OSError) as exc:
        print(f"neptunectl executor: {exc}", file=sys.stderr)
        return 2
    return executor.run(metrics_port)
