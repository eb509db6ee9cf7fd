"""The driver's batch side: epochs of stage tasks, shuffles between stages, `combine`, and
published shared state.

A batch job has one stage (a task per partition over `read`) or several (the dataset API's,
app.Stage): source stages start with the epoch; a stage that reads shuffle outputs starts once
every task of its input stages finished and their outputs were fetched from the executors that
hold them (shuffle.py). An output lost with its executor before it was fetched is computed again
from lineage: its task runs again. The last stage's results are combined and published.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import metrics
from ..app import BatchJob, Stage
from ..tasks import Task
from .figures import JobStats

log = logging.getLogger("neptune.driver")
SAMPLE = 1000  # keys sampled to split a ranged stage's input


class TaskHost(Protocol):
    def new_task(self, job: BatchJob, **fields: Any) -> Task: ...

    def schedule(self) -> None: ...

    def send_to(self, executor: str, message: dict[str, Any]) -> bool: ...


@dataclass
class Epoch:
    number: int
    started: float
    results: dict[int, Any] = field(default_factory=dict)  # the last stage's, per partition
    done: dict[int, set[int]] = field(default_factory=dict)  # stage -> finished partitions
    held: dict[tuple[int, int], str] = field(default_factory=dict)  # unfetched output -> where
    fetched: dict[int, dict[int, list[list[Any]]]] = field(default_factory=dict)
    begun: set[int] = field(default_factory=set)  # stages whose tasks were made


def consumers(plan: tuple[Stage, ...], stage: int) -> list[int]:
    return [s for s, spec in enumerate(plan) if stage in spec.inputs]


def gather(plan: tuple[Stage, ...], stage: int,
           fetched: dict[int, dict[int, list[list[Any]]]]) -> list[list[Any]]:
    """The records of each task of `stage` from its inputs' fetched outputs (pure): bucket b
    of every output goes to task b; a ranged stage's records ([key, value]) are split into
    sorted key ranges instead, from a sample of the keys."""
    spec = plan[stage]
    tasks: list[list[Any]] = [[] for _ in range(spec.partitions)]
    every = [records for i in spec.inputs for output in fetched[i].values()
             for _, records in output]
    if spec.ranged:
        flat = [record for records in every for record in records]
        keys = sorted(record[0] for record in flat[::max(1, len(flat) // SAMPLE)])
        bounds = [keys[len(keys) * (b + 1) // spec.partitions]
                  for b in range(spec.partitions - 1)] if keys else []
        for record in flat:
            tasks[bisect.bisect_right(bounds, record[0])].append(record)
        return tasks
    for i in spec.inputs:
        for output in fetched[i].values():
            for bucket, records in output:
                tasks[bucket % spec.partitions] += records
    return tasks


class Batches:
    def __init__(self, host: TaskHost, jobs: list[BatchJob], stats: dict[str, JobStats],
                 broadcast: Callable[[dict[str, Any]], None]) -> None:
        self.host = host
        self.jobs = {job.name: job for job in jobs}
        self.stats = stats
        self.broadcast = broadcast
        self.epochs: dict[str, Epoch] = {}
        # name -> (version, value); version 0 is the initial state, never sent as an update
        self.states: dict[str, tuple[int, Any]] = {
            job.publishes: (0, job.initial_state) for job in jobs if job.publishes}

    def start(self) -> None:
        for job in self.jobs.values():
            self.start_epoch(job, 0)

    def start_epoch(self, job: BatchJob, number: int) -> None:
        stats = self.stats[job.name]
        if stats.state == "failed":
            return
        if job.max_epochs is not None and number >= job.max_epochs:
            stats.state = "done"
            return
        epoch = self.epochs[job.name] = Epoch(number, time.monotonic())
        stats.epoch = number
        for stage, spec in enumerate(job.plan()):
            if not spec.inputs:
                self._begin(job, epoch, stage, [None] * spec.partitions)
        self.host.schedule()

    def _begin(self, job: BatchJob, epoch: Epoch, stage: int, records: list[Any]) -> None:
        epoch.begun.add(stage)
        epoch.done[stage] = set()
        for partition, given in enumerate(records):
            self.host.new_task(job, partition=partition, epoch=epoch.number, stage=stage,
                               records=given)

    def finished(self, task: Task, result: Any, records: int, executor: str,
                 now: float) -> None:
        job = self.jobs[task.job]
        stats = self.stats[job.name]
        stats.records += records
        stats.rate.add(now, records)
        metrics.BATCH_RECORDS.labels(job.name).inc(records)
        stage = str(task.stage)
        metrics.STAGE_TASKS.labels(job.name, stage).inc()
        metrics.STAGE_RECORDS.labels(job.name, stage).inc(records)
        metrics.STAGE_TASK_SECONDS.labels(job.name, stage).observe(max(0.0, now - task.started_at))
        epoch = self.epochs.get(job.name)
        if epoch is None or epoch.number != task.epoch:
            return
        plan = job.plan()
        epoch.done[task.stage].add(task.partition)
        if consumers(plan, task.stage):
            epoch.held[(task.stage, task.partition)] = executor
            if len(epoch.done[task.stage]) == plan[task.stage].partitions:
                self._fetch(job, epoch, task.stage)
            return
        epoch.results[task.partition] = result
        if len(epoch.results) == plan[task.stage].partitions:
            self._complete(job, epoch)

    def _fetch(self, job: BatchJob, epoch: Epoch, stage: int) -> None:
        for (s, partition), executor in list(epoch.held.items()):
            if s == stage and not self.host.send_to(executor, {
                    "t": "fetch", "job": job.name, "epoch": epoch.number, "stage": stage,
                    "partition": partition}):
                self._again(job, epoch, stage, partition)

    def shuffled(self, job_name: str, epoch_number: int, stage: int, partition: int,
                 buckets: list[list[Any]] | None) -> None:
        """An output fetched (None: its executor no longer has it)."""
        job = self.jobs.get(job_name)
        epoch = self.epochs.get(job_name)
        if job is None or epoch is None or epoch.number != epoch_number \
                or (stage, partition) not in epoch.held:
            return
        if buckets is None:
            self._again(job, epoch, stage, partition)
            return
        del epoch.held[(stage, partition)]
        epoch.fetched.setdefault(stage, {})[partition] = buckets
        plan = job.plan()
        for consumer in consumers(plan, stage):
            spec = plan[consumer]
            ready = all(len(epoch.fetched.get(i, {})) == plan[i].partitions
                        for i in spec.inputs)
            if ready and consumer not in epoch.begun:
                self._begin(job, epoch, consumer, gather(plan, consumer, epoch.fetched))
                for i in spec.inputs:
                    if all(c in epoch.begun for c in consumers(plan, i)):
                        epoch.fetched.pop(i, None)  # handed on: the driver keeps no copy
        self.host.schedule()

    def _again(self, job: BatchJob, epoch: Epoch, stage: int, partition: int) -> None:
        """Compute a lost output again: its task runs again."""
        epoch.held.pop((stage, partition), None)
        epoch.done[stage].discard(partition)
        log.warning("job %s: the output of stage %d partition %d was lost with its executor: "
                    "computing it again", job.name, stage, partition)
        self.host.new_task(job, partition=partition, epoch=epoch.number, stage=stage)

    def lost(self, executor: str) -> None:
        """An executor is gone: what it held, and no one fetched yet, is computed again."""
        for name, epoch in self.epochs.items():
            for (stage, partition), holder in list(epoch.held.items()):
                if holder == executor:
                    self._again(self.jobs[name], epoch, stage, partition)

    def _complete(self, job: BatchJob, epoch: Epoch) -> None:
        stats = self.stats[job.name]
        last = len(job.plan()) - 1
        if job.combine is not None:
            previous = self.states.get(job.publishes or "", (0, None))[1]
            try:
                value = job.combine([epoch.results[p] for p in range(job.plan()[last].partitions)],
                                    previous)
            except Exception as exc:
                stats.fail(f"combine raised {type(exc).__name__}: {exc}")
                log.error("job %s: %s", job.name, stats.error)
                return
            if job.publishes:
                self.publish(job.publishes, value)
        if job.schedule is None:
            self.start_epoch(job, epoch.number + 1)
        else:
            delay = max(0.0, epoch.started + job.schedule - time.monotonic())
            asyncio.get_running_loop().call_later(delay, self.start_epoch, job, epoch.number + 1)

    def publish(self, name: str, value: Any) -> None:
        version = self.states.get(name, (0, None))[0] + 1
        self.states[name] = (version, value)
        metrics.STATE_VERSION.labels(name).set(version)
        self.broadcast({"t": "state", "name": name, "version": version, "value": value})
