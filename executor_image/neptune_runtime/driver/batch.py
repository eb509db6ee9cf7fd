"""The driver's batch side: epochs of partition tasks, `combine`, and published shared state."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import metrics
from ..app import BatchJob
from ..tasks import Task
from .figures import JobStats

log = logging.getLogger("neptune.driver")


class TaskHost(Protocol):
    def new_task(self, job: BatchJob, **fields: Any) -> Task: ...

    def schedule(self) -> None: ...


@dataclass
class Epoch:
    number: int
    started: float
    results: dict[int, Any] = field(default_factory=dict)


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
        self.epochs[job.name] = Epoch(number, time.monotonic())
        stats.epoch = number
        for partition in range(job.partitions):
            self.host.new_task(job, partition=partition, epoch=number)
        self.host.schedule()

    def finished(self, task: Task, result: Any, records: int, now: float) -> None:
        job = self.jobs[task.job]
        stats = self.stats[job.name]
        stats.records += records
        stats.rate.add(now, records)
        metrics.BATCH_RECORDS.labels(job.name).inc(records)
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
