"""The application API: an `App` declares stream jobs and batch jobs.

Task code never crosses the network: the driver and every executor import the same module and
look jobs up by name. Functions that run where:
- stream `task(ctx, records)` and batch `task(ctx, records)` and batch `read(partition, epoch)`
  run on executors, inside suspendable task greenlets;
- batch `combine(results, previous)`, sources and sinks run on the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from .durations import parse_duration
from .keyed import KeyedState, StateError, TaskState

if TYPE_CHECKING:
    from .dataflow import Stream
    from .dataflow.stream import OnBad
    from .datasets import Dataset
from .sinks import Sink
from .sources import Source

Kind = Literal["stream", "batch"]
OnError = Literal["dead_letter", "fail"]
STREAM_PRIORITY = 10
BATCH_PRIORITY = 0

log = logging.getLogger("neptune.app")
_warned: set[str] = set()  # shared state names a task asked for that no job publishes


class TaskContext:
    """What a task sees of the runtime: its identity and the published shared state."""

    def __init__(
        self,
        task_id: str,
        job: str,
        partition: int,
        epoch: int,
        attempt: int,
        states: dict[str, tuple[int, Any]],
        published: frozenset[str] = frozenset(),
        keyed: TaskState | None = None,
        stage: int = 0,
    ) -> None:
        self.task_id = task_id
        self.job = job
        self.partition = partition
        self.epoch = epoch
        self.attempt = attempt
        self._states = states
        self._published = published
        self._keyed = keyed
        self.stage = stage  # of a multi-stage batch job (the dataset API's)

    def keyed_state(self, name: str) -> KeyedState:
        """The keyed state `name` of this task's partition: a dict of key -> value, restored
        wherever the partition runs next and checkpointed with the offsets (keyed.py). Only
        in a job declared with `keyed=True`."""
        if self._keyed is None:
            raise StateError(f"job {self.job}: ctx.keyed_state({name!r}) needs a keyed job: "
                             f"declare it with app.stream_job(..., keyed=True)")
        return self._keyed.view(name)

    def state(self, name: str, default: Any = None) -> Any:
        """The latest published value of shared state `name` (as this executor last heard it)."""
        entry = self._states.get(name)
        if entry is None and name not in self._published and name not in _warned:
            _warned.add(name)  # once per name and process: this runs per task
            log.warning("job %s: ctx.state(%r): no job of this app publishes %r (published: "
                        "%s); the default is returned", self.job, name, name,
                        ", ".join(sorted(self._published)) or "none")
        return default if entry is None else entry[1]

    def state_version(self, name: str) -> int:
        """The version of shared state `name` as this executor last heard it (0: initial)."""
        entry = self._states.get(name)
        return 0 if entry is None else entry[0]


StreamFn = Callable[[TaskContext, Iterator[Any]], Iterable[Any] | None]
BatchFn = Callable[[TaskContext, Iterator[Any]], Any]
ReadFn = Callable[[int, int], Iterable[Any]]
CombineFn = Callable[[list[Any], Any], Any]


@dataclass(frozen=True)
class Trigger:
    """Per event (`interval` None) or a micro-batch every `interval` seconds."""

    interval: float | None = None

    @staticmethod
    def parse(value: str | Trigger | None) -> Trigger:
        """A trigger from None or 'per_event' (per event) or a duration ('100ms': micro-batches)."""
        if value is None or isinstance(value, Trigger):
            return value or Trigger()
        if value in ("per_event", "per-event", "event"):
            return Trigger()
        return Trigger(parse_duration(value, what="trigger"))


@dataclass
class StreamJob:
    name: str
    source: Source
    task: StreamFn
    slo: float
    trigger: Trigger = field(default_factory=Trigger)
    sink: Sink | None = None
    priority: int = STREAM_PRIORITY
    max_retries: int = 3
    # After max_retries, a record that still fails goes to `dead_letter` (default: a JSON-lines
    # file in the driver's state directory) and the job goes on; "fail" fails the job instead.
    on_error: OnError = "dead_letter"
    dead_letter: Sink | None = None
    # Its tasks use ctx.keyed_state(): each source partition runs one task at a time, on the
    # executor that holds that partition's state (docs/architecture.md, "Keyed state").
    keyed: bool = False
    # Its task function takes any number of records (the dataflow API's are): a keyed lane
    # then gives a task all the events that wait, not one.
    batchable: bool = False
    kind: Kind = "stream"


@dataclass(frozen=True)
class Stage:
    """One stage of a multi-stage batch job (the dataset API compiles to these): a source stage
    `read`s its partitions; another reads the shuffle outputs of its `inputs` (shuffle.py), and
    with `ranged` the driver splits them into sorted key ranges, for sort_by."""

    partitions: int
    read: ReadFn | None = None
    inputs: tuple[int, ...] = ()
    ranged: bool = False


@dataclass
class BatchJob:
    name: str
    read: ReadFn
    task: BatchFn
    partitions: int
    combine: CombineFn | None = None
    publishes: str | None = None
    initial_state: Any = None
    schedule: float | None = None  # None: continuous (next epoch as soon as one ends)
    priority: int = BATCH_PRIORITY
    max_retries: int = 3
    cache_partitions: bool = True
    max_epochs: int | None = None
    # several stages (the dataset API); empty: one stage of `partitions` tasks over `read`
    stages: tuple[Stage, ...] = ()
    kind: Kind = "batch"

    def plan(self) -> tuple[Stage, ...]:
        """Its stages: the dataset API's, or one stage of `partitions` tasks over `read`."""
        return self.stages or (Stage(self.partitions, self.read),)


Job = StreamJob | BatchJob


class App:
    """A unified stream/batch application. Expose one as `app` in your module."""

    def __init__(self, name: str) -> None:
        if not name or not name.replace("-", "").isalnum() or name != name.lower():
            raise ValueError(f"app name {name!r}: use lower-case letters, digits and '-'")
        self.name = name
        self.jobs: dict[str, Job] = {}

    def _add(self, job: Job) -> None:
        if job.name in self.jobs:
            raise ValueError(f"app {self.name}: duplicate job name {job.name!r}")
        self.jobs[job.name] = job

    def stream_job(
        self,
        name: str,
        *,
        source: Source,
        task: StreamFn,
        slo: str | float,
        trigger: str | Trigger | None = None,
        sink: Sink | None = None,
        priority: int = STREAM_PRIORITY,
        max_retries: int = 3,
        on_error: OnError = "dead_letter",
        dead_letter: Sink | None = None,
        keyed: bool = False,
        batchable: bool = False,
    ) -> StreamJob:
        """Declare a stream job: `task(ctx, records)` over the events of `source`, per event or per
        `trigger` micro-batch, within `slo`; outputs to `sink`. See docs/architecture.md for
        `on_error`, `dead_letter` and `keyed`."""
        if on_error not in get_args(OnError):
            raise ValueError(f"job {name}: on_error must be 'dead_letter' or 'fail', "
                             f"got {on_error!r}")
        if max_retries < 0:
            raise ValueError(f"job {name}: max_retries must be at least 0, got {max_retries}")
        job = StreamJob(
            name=name,
            source=source,
            task=task,
            slo=parse_duration(slo, what=f"job {name}: slo"),
            trigger=Trigger.parse(trigger),
            sink=sink,
            priority=priority,
            max_retries=max_retries,
            on_error=on_error,
            dead_letter=dead_letter,
            keyed=keyed,
            batchable=batchable,
        )
        self._add(job)
        return job

    def batch_job(
        self,
        name: str,
        *,
        read: ReadFn,
        task: BatchFn,
        partitions: int,
        combine: CombineFn | None = None,
        publishes: str | None = None,
        initial_state: Any = None,
        schedule: str | float | None = None,
        priority: int = BATCH_PRIORITY,
        max_retries: int = 3,
        cache_partitions: bool = True,
        max_epochs: int | None = None,
    ) -> BatchJob:
        """Declare a batch job: `task(ctx, records)` over each of `partitions` partitions read by
        `read(partition, epoch)`, then `combine(results, previous)` on the driver, published as
        shared state `publishes`; epochs run continuously or every `schedule`."""
        if partitions < 1:
            raise ValueError(f"job {name}: partitions must be at least 1, got {partitions}")
        if publishes is not None and combine is None:
            raise ValueError(f"job {name}: publishes={publishes!r} needs a combine function")
        job = BatchJob(
            name=name,
            read=read,
            task=task,
            partitions=partitions,
            combine=combine,
            publishes=publishes,
            initial_state=initial_state,
            schedule=None if schedule is None or schedule == "continuous" else parse_duration(
                schedule, what=f"job {name}: schedule"
            ),
            priority=priority,
            max_retries=max_retries,
            cache_partitions=cache_partitions,
            max_epochs=max_epochs,
        )
        self._add(job)
        return job

    def job(self, name: str) -> Job:
        """The job named `name` (KeyError naming the app's jobs if none)."""
        try:
            return self.jobs[name]
        except KeyError:
            raise KeyError(f"app {self.name} has no job {name!r}") from None

    def stream_jobs(self) -> Sequence[StreamJob]:
        """The stream jobs, in declaration order."""
        return [j for j in self.jobs.values() if isinstance(j, StreamJob)]

    def batch_jobs(self) -> Sequence[BatchJob]:
        """The batch jobs, in declaration order."""
        return [j for j in self.jobs.values() if isinstance(j, BatchJob)]

    def dataset(self, name: str, *, read: ReadFn, partitions: int) -> Dataset:
        """A dataset read `partitions` ways by `read(partition, epoch)`, whose operators
        compile to a multi-stage batch job named `name` (datasets.py)."""
        from .datasets import Dataset

        return Dataset(self, name, read=read, partitions=partitions)

    def stream(
        self,
        name: str,
        source: Source,
        *,
        slo: str | float,
        trigger: str | Trigger | None = None,
        on_bad: OnBad = "fail",
        priority: int = STREAM_PRIORITY,
        max_retries: int = 3,
        on_error: OnError = "dead_letter",
        dead_letter: Sink | None = None,
    ) -> Stream:
        """A stream of the events of `source`, whose operators (`map`, `filter`, `key_by`,
        `window`, ..., `to`) compile to one stream job named `name` (dataflow/stream.py).
        `on_bad="skip"` counts and skips the records an operator cannot handle, instead of
        failing their task; the other arguments are `stream_job`'s."""
        from .dataflow import Stream

        return Stream.declare(self, name, source, slo=slo, trigger=trigger, on_bad=on_bad,
                              priority=priority, max_retries=max_retries, on_error=on_error,
                              dead_letter=dead_letter)

    def published(self) -> frozenset[str]:
        """The names of the shared state that this app's jobs publish."""
        return frozenset(j.publishes for j in self.batch_jobs() if j.publishes)
