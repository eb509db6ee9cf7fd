"""The greenlet runner: every task in a greenlet of its own, switched to by the hub.

A task runs until it finishes or, at a yield point, finds that the driver sent something and
switches to the hub (or, for a preemption that came through the express slot, straight into
the preempting task: express.py). Task greenlets are reused: a new one's first switch costs
~90 us cold (its interpreter frame stack is mapped and faulted in). `spare` is for the hub's
next task, `standby` for the next preemption (see docs/architecture.md for why two).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable, Iterator
from typing import Any

import greenlet

from .. import protocol, yieldpoint
from ..app import BatchJob, StreamJob, TaskContext
from ..keyed import CHUNK, PartitionState, StateError
from ..shuffle import ShuffleOutput
from .metrics import TASK_DURATION
from .state import ExecutorState
from .task import TaskRecord

# How long a slot that has just run a stream task waits, before it resumes a suspended one,
# for the next stream task the driver said it held (its turnaround is ~0.1-1 ms here).
HOLD_SECONDS = 0.01
# A keyed task that changed more keys than this ships them from the hub after its body, a packed
# map at a time between other tasks: packing and merging 1M changes held the slot for ~0.5 s.
SHIP_KEYS = CHUNK


class _Counted:
    """Counts records of an unsized input; only used when the input has no len()."""

    def __init__(self, it: Iterator[Any]) -> None:
        self.it = it
        self.count = 0

    def __iter__(self) -> Iterator[Any]:
        for record in self.it:
            self.count += 1
            yield record


class Runner(ExecutorState):
    def _launch(self, task: TaskRecord, preempting: bool = False) -> None:
        """Switch into a new task's greenlet, from the hub or from the task it preempts."""
        if preempting:
            glet, self.standby = self.standby, None
        else:
            glet, self.spare = self.spare, None
        task.glet = glet or greenlet.greenlet(self._worker, parent=self.hub)
        task.preempting = preempting
        self._switching_in(task)
        task.glet.switch(task)

    def _switching_in(self, task: TaskRecord | None) -> None:
        """Restart the yield point's clock, and give the gaps measured since the last switch
        to the task that ran meanwhile."""
        gap, ran = yieldpoint.task_switched_in(), self.switched_into
        if ran is not None and gap > ran.max_gap_ns:
            ran.max_gap_ns = gap
        self.switched_into = task

    def _step(self, task: TaskRecord) -> None:
        if task.glet is None:
            self._launch(task)
        else:
            self._switching_in(task)
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
            self._switching_in(None)  # what it measured since it was switched in is its own
            if ran.kind == "stream" and ran.more:
                # The driver holds more stream tasks: one will come here as soon as it hears
                # that this one finished. Resuming the suspended task now would make that one
                # wait for its next yield point (a whole record, 25 ms for a coarse one).
                self.hold_until = time.monotonic() + HOLD_SECONDS
            self._finish(ran, *ran.outcome)

    def _finish(self, task: TaskRecord, status: str, value: Any) -> None:
        if status == "ok" and task.shipments is not None:
            # The slot is free for other tasks meanwhile; the driver keeps the task's lane
            # (and its outputs) until the `finished` that follows the last change.
            self.link.post({"t": "shipping", "id": task.id})
            self.shipping.append((task, value))
            self.flush()
            return
        elapsed = (time.monotonic_ns() - task.started_ns) / 1e9
        TASK_DURATION.labels(task.job, task.kind).observe(elapsed)
        if status == "ok":
            if isinstance(value, ShuffleOutput):  # kept here until the driver fetches it
                value = {"shuffle": self.shuffle.put(
                    (task.job, task.epoch, task.stage, task.partition), value)}
            message = {"t": "finished", "id": task.id, "result": value,
                       "records": task.consumed, "elapsed": elapsed, "gap_ns": task.max_gap_ns}
            if task.changes is not None:
                message["changes"] = task.changes
            try:
                body = protocol.pack(message)
            except (TypeError, ValueError) as exc:  # msgpack cannot encode the result
                status, value = "error", f"result of job {task.job} is not serialisable: {exc}"
            else:
                self.link.post(body)
                self.flush()
                return
        self.link.post({"t": "failed", "id": task.id, "error": value})
        self.flush()

    def _ship(self) -> None:
        """One step of the first shipping task: a packed change sent, or a map merged; after
        the last, its `finished`."""
        task, value = self.shipping[0]
        assert task.shipments is not None
        status = "ok"
        try:
            change = next(task.shipments, False)
        except StateError as exc:  # nothing was merged: its re-run starts from the same state
            change, status, value = False, "error", f"StateError: {exc}"
        if change is False:
            self.shipping.popleft()
            task.shipments = None
            self._finish(task, status, value)
        elif change is not None:
            self.link.post({"t": "changes", "id": task.id, "changes": [change]})
            self.flush()

    def _worker(self, given: TaskRecord | greenlet.greenlet) -> None:
        """A task greenlet: runs the tasks it is given, parked in a switch between; given a
        greenlet (a rehearsal), it switches straight back to it."""
        while True:
            if isinstance(given, TaskRecord):
                self._body(given)
                given = self.hub.switch()
            else:
                given = given.switch()

    def _body(self, task: TaskRecord) -> None:
        """Runs inside the task's greenlet; its first line is when the task starts."""
        task.started_ns = time.monotonic_ns()
        started: dict[str, Any] = {"t": "started", "id": task.id, "ns": task.started_ns,
                                   "waited_ns": task.started_ns - task.received_ns}
        if task.noticed_ns:
            started["noticed_ns"] = max(0, task.noticed_ns - task.received_ns)
            started["span_ns"] = task.noticed_span_ns
        self.link.post(started)
        task.outcome = self._run_task(task)

    def _run_task(self, task: TaskRecord) -> tuple[str, Any]:
        try:
            job = self.app.job(task.job)
            keyed = None
            if isinstance(job, StreamJob) and job.keyed:
                lane = self.keyed.get((task.job, task.partition))
                if lane is None:  # the lane's first task: the driver had no state to restore
                    lane = self.keyed[(task.job, task.partition)] = PartitionState()
                keyed = lane.begin()
            ctx = TaskContext(task.id, task.job, task.partition, task.epoch, task.attempt,
                              self.states, self.published, keyed, task.stage)
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
            if keyed is not None and keyed.size > SHIP_KEYS:
                task.shipments = keyed.shipments()  # the hub ships them, its slot freed
            elif keyed is not None:
                # checked before anything is kept: a value that cannot be stored fails the
                # task, and none of its writes stay (its re-run starts from the same state)
                task.changes = keyed.changes()
                keyed.commit()
            return "ok", value
        except Exception as exc:
            detail = "".join(traceback.format_exception(exc)[-6:])
            return "error", f"{type(exc).__name__}: {exc}\n{detail}"

    def _maybe_yielding(self, records: Iterable[Any]) -> Iterator[Any]:
        return yieldpoint.yielding(records) if self.yield_points else iter(records)

    def _inputs(self, task: TaskRecord, job: Any) -> Any:
        if not isinstance(job, BatchJob):
            return task.records or []
        read = job.plan()[task.stage].read
        if read is None:  # a stage over shuffled records: they came with the task
            return task.records or []
        key = (job.name, task.stage, task.partition)
        if job.cache_partitions:
            if key not in self.cache:  # reading is task work too: suspendable
                self.cache[key] = list(self._maybe_yielding(read(task.partition, task.epoch)))
            return self.cache[key]
        return read(task.partition, task.epoch)
