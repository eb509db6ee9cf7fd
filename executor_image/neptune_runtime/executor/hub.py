"""The hub's state machine: what the driver's messages do to the slot.

One task runs (`current`), others wait (`ready`, in order) or are suspended (`suspended`, their
greenlets keep their memory and progress). A preempting `run` takes its victim out of wherever
it is (running, or resumed but not started yet) and runs first. Nothing here touches a socket
(the outgoing messages are posted to the link) or switches greenlets (the runner does; only a
kill ends one), so tests drive this with plain messages (tests/runtime/test_hub.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import greenlet

from .. import protocol
from ..keyed import PartitionState, are_changes
from .state import ExecutorState
from .task import TaskRecord, from_run

log = logging.getLogger("neptune.executor")


def _restore(state: PartitionState, changes: Any) -> None:
    """Apply a keyed lane's state as the driver sends it: packed changes (keyed.py), the
    store's, then those since its last commit."""
    if not are_changes(changes):
        raise protocol.ProtocolError("restore: changes must be [[name, packed map], ...]")
    try:
        state.restore(changes)
    except ValueError as exc:
        raise protocol.ProtocolError(f"restore: {exc}") from None


class Hub(ExecutorState):
    def _handle(self, message: dict[str, Any]) -> None:
        """Act on one message from the driver (ProtocolError if it is not a valid one)."""
        kind = protocol.check(message, protocol.FROM_DRIVER)["t"]
        if kind == "run":
            self._on_run(message)
        elif kind == "resume":
            self.hold_until = 0.0
            task = self.suspended.pop(message["id"], None)
            if task is not None:
                self.ready.appendleft(task)
        elif kind == "kill":
            self._kill(message["id"])
        elif kind == "state":
            self.states[message["name"]] = (message["version"], message["value"])
        elif kind == "fetch":
            key = (message["job"], message["epoch"], message["stage"], message["partition"])
            self.link.send({"t": "shuffle", "job": key[0], "epoch": key[1], "stage": key[2],
                            "partition": key[3], "buckets": self.shuffle.take(key)})
        elif kind == "restore":
            lane = (message["job"], message["partition"])
            if not message.get("add") or lane not in self.keyed:
                self.keyed[lane] = PartitionState()
            _restore(self.keyed[lane], message["changes"])
        elif kind == "forewarn":  # a preempting `run` may follow (executor/core.py rehearses)
            pass
        elif kind == "bell":  # the driver rings our doorbell from now on
            if self.bell is not None:
                self.bell.unlink()
                self.bell_attached = True
                self._install_yield_points()
        else:
            raise protocol.ProtocolError(f"{kind!r} is not expected after the welcome")

    def _take(self, express: tuple[int, int, dict[str, Any]]) -> None:
        """Handle the express slot's message; its frame is dropped when the socket brings it."""
        self.link.frames.skip_at, self.arrived_ns, message = express  # one host: one clock
        self._handle(message)

    def _on_run(self, message: dict[str, Any]) -> None:
        if message["kind"] not in ("stream", "batch"):
            raise protocol.ProtocolError(f"run: kind {message['kind']!r}")
        task = from_run(message, self.arrived_ns)
        self.hold_until = 0.0  # what a hold waited for has come
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
        via = "hub" if greenlet.getcurrent() is self.hub else \
            "express" if self.bell_attached else "socket"
        self.link.post({"t": "suspended", "id": victim.id, "ns": done - requested_ns,
                        "via": via})

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
        self.link.post({"t": "killed", "id": task.id, "ran_s": ran})

    def _start(self, task: TaskRecord) -> None:
        if task.glet is not None:
            self.link.post({"t": "resumed", "id": task.id})
        self.current = task
