"""The express path: a preempting `run` taken at the yield point, in the running task's greenlet.

On one host the driver rings the executor's doorbell and copies a preempting `run` into its
express slot (doorbell.py). The yield point calls `_on_signal` in the running task's greenlet;
a `run` that preempts this very task is handled there and the stream task starts from there:
one greenlet switch instead of two, and none of the batch task's stack is copied, since the new
greenlet's stack begins below it. Anything else goes to the hub. When the driver forewarns (it
has a stream task that may preempt this one), `_rehearse` runs the same path on a canned
message meanwhile, so that it is warm when the real one comes.

Where the driver cannot ring (another host, another pod), the task's greenlet reads the socket
itself (`_from_socket`): forewarnings and a preempting `run` of this task take the same path;
anything else is left to the hub, in `inbox`, in order.
"""

from __future__ import annotations

import time
from typing import Any

import greenlet

from .. import _bellwatch, _yieldcore, protocol, yieldpoint
from ..doorbell import SEEN_AT
from ..hotpath import CANNED_RUN
from .link import RECEIVE_BYTES, DriverLost
from .state import ExecutorState
from .task import from_run

# the task that hotpath.CANNED_RUN preempts, running on a rehearsal executor
CANNED_VICTIM: dict[str, Any] = {"t": "run", "id": CANNED_RUN["victim"], "job": "warm",
                                 "kind": "batch", "priority": 0, "partition": 0, "epoch": 0,
                                 "attempt": 0}


class Express(ExecutorState):
    def _install_yield_points(self) -> None:
        """Doorbell checks at every record, socket polls now and then (the tail of a large
        message, which the driver's event loop wrote after the ring, rings nothing). Until the
        driver rings the doorbell (on another host, never), our own watcher thread rings it
        when the driver's bytes arrive (_bellwatch.c)."""
        fd, bell = self.link.sock.fileno(), self.bell
        watch = bell is not None and not self.bell_attached and self.polling.watch
        mapping = bell.mapping if bell is not None and (self.bell_attached or watch) else None
        _bellwatch.stop()
        yieldpoint.install(self._on_signal, fd=fd, interval_us=self.polling.poll_us,
                           bell=mapping, on_forewarn=self._rehearse,
                           sparse_polls=self.bell_attached)
        if watch and mapping is not None:
            _bellwatch.start(fd, mapping)

    def _drop_bell(self) -> None:
        _bellwatch.stop()  # before the mapping goes: the thread writes into it
        yieldpoint.install(None)  # let go of the mapping before closing it
        if self.bell is not None:
            self.bell.close()
        self.bell, self.bell_attached = None, False

    def _express(self) -> tuple[int, int, dict[str, Any]] | None:
        """The express slot's message, if it is new and every frame before it was handled."""
        express = self.bell.take_express() if self.bell is not None else None
        return express if express is not None and express[0] == self.link.frames.consumed \
            else None

    def _on_signal(self) -> None:
        """Called by a yield point, in the running task's greenlet, when the driver sent
        something or we were told to stop. A preempting `run` of this very task, in the express
        slot or (no ringing driver) on the socket, is handled here, and the stream task starts
        from here; anything else is the hub's."""
        self.noticed_ns, self.noticed_span_ns = time.monotonic_ns(), _yieldcore.fired_span()
        task = self.current
        express = None if task is None or self.stopping else self._express()
        if express is not None and task is not None:
            message = express[2]
            if message["t"] == "run" and message.get("victim") == task.id \
                    and message.get("action") == "suspend":
                try:
                    self._take(express)
                except protocol.ProtocolError as exc:  # the hub drops the connection
                    self.failure = exc
                else:
                    if self._preempt_here():
                        return
            else:
                self.express = express
        elif task is not None and not self.stopping and not self.bell_attached \
                and self._from_socket(task.id):
            return
        self.hub.switch()

    def _from_socket(self, task_id: str) -> bool:
        """Read what the driver sent, in the running task's greenlet (the driver cannot ring
        our doorbell). Forewarnings alone: rehearse, and go on. Forewarnings, then a `run`
        that suspends this task: start it from here, and return when this task is resumed.
        True in both cases; else (other messages, a partial read, an error) False, with what
        was read in `inbox` (or the error in `failure`) for the hub."""
        if self.bell is not None:
            self.bell.clear()  # before reading: what comes after the read rings again
        try:
            data, arrived_ns = self.link.receive()
        except BlockingIOError:
            return False
        except DriverLost as exc:
            self.failure = exc
            return False
        if not data:
            self.failure = DriverLost("lost the driver connection")
            return False
        try:
            messages = list(self.link.frames.feed(data))
        except protocol.ProtocolError as exc:
            self.failure = exc
            return False
        self.arrived_ns = arrived_ns
        *first, last = messages or [{"t": "forewarn"}]
        preempting = last["t"] == "run" and last.get("victim") == task_id \
            and last.get("action") == "suspend"
        if len(data) == RECEIVE_BYTES or any(m["t"] != "forewarn" for m in first) \
                or not (preempting or last["t"] == "forewarn"):
            self.inbox += messages
            return False
        try:
            for message in messages:
                self._handle(message)
        except protocol.ProtocolError as exc:
            self.failure = exc
            return False
        if not preempting:
            if messages:
                self._rehearse()
            return True
        return self._preempt_here()

    def _preempt_here(self) -> bool:
        """Start the task that a `run` just made current, from the task it suspended; return
        when that one is resumed (True), or False if there is no such task to start."""
        started = self.current
        if started is None or started.glet is not None:
            return False
        started.noticed_ns, started.noticed_span_ns = self.noticed_ns, self.noticed_span_ns
        self._launch(started, preempting=True)
        return True

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
        rehearsal.link.outbox.clear()
        rehearsal.suspension_samples.clear()
        if self.standby is not None and not bell.rung():
            self.standby.switch(greenlet.getcurrent())

    def _rehearsal(self) -> ExecutorState:
        """An executor of the same app that never connects: its state is the rehearsal's."""
        from .core import Executor  # core builds on this module

        rehearsal = Executor(self.app, self.app_ref, self.link.driver, self.link.secret,
                             f"{self.link.name}-rehearsal")
        rehearsal.current = from_run(CANNED_VICTIM, 0)
        rehearsal.hub = self.hub  # its handling asks which greenlet it runs in
        self.rehearsal = rehearsal
        return rehearsal
