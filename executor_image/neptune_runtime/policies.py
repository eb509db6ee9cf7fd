"""Scheduling policies: pure functions from a snapshot to decisions.

The same functions drive the runtime's driver and the discrete-event simulator. A snapshot
lists every executor (one slot each: one running task or none, plus suspended tasks that stay in
its memory) and the ready tasks in arrival order. A policy returns decisions; the caller applies
them. Suspend and Kill decisions for an executor precede the Place that uses the freed slot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

Kind = Literal["stream", "batch"]


@dataclass(frozen=True, slots=True)
class TaskView:
    id: str
    job: str
    kind: Kind
    priority: int
    ready_at: float
    partition: int = -1
    suspensions: int = 0
    resumed_at: float = 0.0  # last time it started or resumed
    started_at: float = 0.0  # first start of this attempt
    suspended_s: float = 0.0  # time spent suspended in this attempt, up to its last resume
    pinned: str | None = None  # the only executor it may run on (it holds the task's state)


@dataclass(kw_only=True)
class AttemptClock:
    """The times of a task's current attempt that the starvation guard reads, kept the same
    way by the driver's tasks and the simulator's."""

    resumed_at: float = 0.0
    started_at: float = 0.0
    suspended_at: float = 0.0
    suspended_s: float = 0.0

    def started(self, now: float) -> None:
        """A new attempt (the first run, or a re-run after a kill or a lost executor)."""
        self.started_at = self.resumed_at = now
        self.suspended_s = 0.0

    def suspended(self, now: float) -> None:
        self.suspended_at = now

    def resumed(self, now: float) -> None:
        self.suspended_s += now - self.suspended_at
        self.resumed_at = now


@dataclass(frozen=True, slots=True)
class ExecutorView:
    id: str
    running: TaskView | None = None
    suspended: tuple[TaskView, ...] = ()
    memory_used: int = 0
    memory_limit: int = 0  # 0: unknown
    partitions: frozenset[tuple[str, int]] = frozenset()

    @property
    def memory_pressure(self) -> float:
        return self.memory_used / self.memory_limit if self.memory_limit else 0.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    now: float
    executors: tuple[ExecutorView, ...]
    queue: tuple[TaskView, ...]  # ready tasks, arrival order


@dataclass(frozen=True, slots=True)
class Place:
    task: str
    executor: str


@dataclass(frozen=True, slots=True)
class Suspend:
    task: str
    executor: str


@dataclass(frozen=True, slots=True)
class Resume:
    task: str
    executor: str


@dataclass(frozen=True, slots=True)
class Kill:
    task: str
    executor: str


Decision = Place | Suspend | Resume | Kill
Policy = Callable[[Snapshot], list[Decision]]


@dataclass(frozen=True)
class NeptuneConfig:
    """Knobs of the LMA policy.

    Starvation guard: a task that has spent more than `starving_share` of its time since it
    started suspended is protected from preemption for `guard_seconds` after each resume. A share
    rather than a count of suspensions: a long batch task suspended often but briefly (stream
    tasks of a millisecond) is not starving, and protecting it would hold stream tasks back for
    the whole window. An executor above `memory_high` pressure, or holding `max_suspended`
    suspended tasks, is not asked to suspend more.
    """

    starving_share: float = 0.5
    guard_seconds: float = 0.5
    max_suspended: int = 4
    memory_high: float = 0.9


def _by_priority(tasks: Iterable[TaskView]) -> list[TaskView]:
    return sorted(tasks, key=lambda t: (-t.priority, t.ready_at))


def _resume_idle(executors: Sequence[ExecutorView], busy: set[str]) -> list[Decision]:
    """Resume, on every idle executor, its best suspended task (no migration)."""
    decisions: list[Decision] = []
    for ex in executors:
        if ex.id not in busy and ex.running is None and ex.suspended:
            best = _by_priority(ex.suspended)[0]
            decisions.append(Resume(best.id, ex.id))
            busy.add(ex.id)
    return decisions


def _fill_idle(order: Sequence[TaskView], executors: Sequence[ExecutorView]) -> list[Decision]:
    busy = {ex.id for ex in executors if ex.running is not None}
    decisions = _resume_idle(executors, busy)
    idle = [ex for ex in executors if ex.id not in busy]
    for task in order:
        if not idle:
            break
        ex = idle[0] if task.pinned is None else next(
            (e for e in idle if e.id == task.pinned), None)
        if ex is not None:
            idle.remove(ex)
            decisions.append(Place(task.id, ex.id))
    return decisions


def fifo(snapshot: Snapshot) -> list[Decision]:
    """Arrival order, no preemption."""
    return _fill_idle(sorted(snapshot.queue, key=lambda t: t.ready_at), snapshot.executors)


def fair(snapshot: Snapshot) -> list[Decision]:
    """Priority order, no preemption: a stream task waits for a running batch task to end."""
    return _fill_idle(_by_priority(snapshot.queue), snapshot.executors)


def kill(snapshot: Snapshot) -> list[Decision]:
    """Priority order; a task that finds no idle slot kills a lower-priority one (work lost)."""
    decisions = fair(snapshot)
    placed = {d.task for d in decisions if isinstance(d, Place)}
    taken = {d.executor for d in decisions}
    victims = sorted(
        (ex for ex in snapshot.executors if ex.running is not None and ex.id not in taken),
        # least priority first, then the most recently started: it has the least work to lose
        key=lambda ex: (ex.running.priority, -ex.running.resumed_at),  # type: ignore[union-attr]
    )
    for task in _by_priority(t for t in snapshot.queue if t.id not in placed):
        if not victims or victims[0].running.priority >= task.priority:  # type: ignore[union-attr]
            break
        ex = victims[0] if task.pinned is None else next(
            (v for v in victims if v.id == task.pinned), None)
        if ex is None or ex.running.priority >= task.priority:  # type: ignore[union-attr]
            continue
        victims.remove(ex)
        decisions += [Kill(ex.running.id, ex.id), Place(task.id, ex.id)]  # type: ignore[union-attr]
    return decisions


def _protected(task: TaskView, now: float, config: NeptuneConfig) -> bool:
    return (now - task.resumed_at < config.guard_seconds
            and task.suspended_s > config.starving_share * (now - task.started_at))


DEFAULT_NEPTUNE = NeptuneConfig()


def _local(ex: ExecutorView, task: TaskView) -> bool:
    return (task.job, task.partition) in ex.partitions


def _victims(snapshot: Snapshot,
             config: NeptuneConfig) -> tuple[list[ExecutorView], int | None]:
    """Executors whose running task may be suspended, best first apart from locality (fewest
    suspended tasks, least memory pressure, lowest priority, then executor order), and the
    lowest priority among their running tasks."""
    now, guard, high = snapshot.now, config.guard_seconds, config.memory_high
    keyed = []
    lowest: int | None = None
    # A plain loop over plain tuples, sorted in C: this is the cost of a 1000-executor call.
    for i, ex in enumerate(snapshot.executors):
        task = ex.running
        held = len(ex.suspended)
        if task is None or held >= config.max_suspended:
            continue
        pressure = ex.memory_used / ex.memory_limit if ex.memory_limit else 0.0
        if pressure >= high:
            continue
        # the guard's cheap half first: most tasks resumed longer ago than its window
        if now - task.resumed_at < guard and _protected(task, now, config):
            continue
        priority = task.priority
        keyed.append((held, pressure, priority, i, ex))
        if lowest is None or priority < lowest:
            lowest = priority
    keyed.sort()  # the index keeps equal keys in executor order and `ex` out of comparisons
    return [k[4] for k in keyed], lowest


def _usable(victim: ExecutorView, task: TaskView, busy: set[str]) -> bool:
    return (victim.id not in busy
            and victim.running.priority < task.priority)  # type: ignore[union-attr]


def _prefer_local(victims: list[ExecutorView], start: int, task: TaskView,
                  busy: set[str]) -> ExecutorView:
    """The first usable victim from `start`, or a usable one holding the task's partition
    among those with as few suspended tasks (locality outranks memory pressure)."""
    first = victims[start]
    fewest = len(first.suspended)
    wanted = (task.job, task.partition)
    for ex in victims[start:]:
        if len(ex.suspended) != fewest:
            break
        if wanted in ex.partitions and _usable(ex, task, busy):
            return ex
    return first


def neptune(snapshot: Snapshot, config: NeptuneConfig = DEFAULT_NEPTUNE) -> list[Decision]:
    """Locality- and memory-aware (LMA) scheduling with suspension instead of killing.

    For each ready task, highest priority first (a task pinned to an executor, which holds its
    partition's keyed state, considers that executor alone):
    1. an idle executor, preferring one that holds the task's partition state, then fewer
       suspended tasks and less memory pressure. An idle executor whose suspended tasks have at
       least the task's priority is kept for resuming them;
    2. else suspend a lower-priority running task that the starvation guard does not protect, on
       the executor with room for one more suspended task, fewest suspended, locality, least
       memory pressure;
    3. else the task waits.
    Finally every still-idle executor resumes its best suspended task.
    """
    decisions: list[Decision] = []
    busy: set[str] = set()
    executors = snapshot.executors
    # What does not depend on the task, computed once per call (1000-executor snapshots).
    free = [(ex, max((s.priority for s in ex.suspended), default=None)) for ex in executors
            if ex.running is None]
    victims: list[ExecutorView] | None = None  # sorted on first need
    start = 0  # victims before it are busy or too high a priority for every later task
    lowest: int | None = None  # the lowest priority among victims, once they are known

    for task in _by_priority(snapshot.queue):
        idle = [ex for ex, top in free
                if ex.id not in busy and (top is None or top < task.priority)
                and (task.pinned is None or ex.id == task.pinned)]
        if idle:
            best = min(idle, key=lambda ex: (not _local(ex, task), len(ex.suspended),
                                             ex.memory_pressure))
            decisions.append(Place(task.id, best.id))
            busy.add(best.id)
            continue
        if victims is None:
            victims, lowest = _victims(snapshot, config)
        if task.pinned is not None:
            # Only its own executor will do. What it found says nothing of later tasks, so
            # neither the break below nor the scan's start applies to it.
            own = next((v for v in victims if v.id == task.pinned), None)
            if own is not None and _usable(own, task, busy):
                decisions += [Suspend(own.running.id, own.id),  # type: ignore[union-attr]
                              Place(task.id, own.id)]
                busy.add(own.id)
            continue
        if lowest is None or task.priority <= lowest:
            break  # no victim of lower priority, for this task or any later one
        # Tasks come in falling priority and `busy` only grows, so a victim skipped here is
        # skipped for good: the scan start only moves forward.
        while start < len(victims) and not _usable(victims[start], task, busy):
            start += 1
        if start == len(victims):
            break  # nothing after this task can be placed either
        best = _prefer_local(victims, start, task, busy)
        decisions += [Suspend(best.running.id, best.id),  # type: ignore[union-attr]
                      Place(task.id, best.id)]
        busy.add(best.id)
    busy |= {ex.id for ex in executors if ex.running is not None}
    return decisions + _resume_idle(executors, busy)


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    decide: Policy
    preempts: Literal["none", "kill", "suspend"]
    doc: str = field(default="")


POLICIES: dict[str, PolicyInfo] = {
    "fifo": PolicyInfo("fifo", fifo, "none", "arrival order, no preemption"),
    "fair": PolicyInfo("fair", fair, "none", "priority order, no preemption"),
    "kill": PolicyInfo("kill", kill, "kill", "priority order, preempt by killing"),
    "neptune": PolicyInfo("neptune", neptune, "suspend", "LMA, preempt by suspending"),
}


def get_policy(name: str, config: NeptuneConfig | None = None) -> Policy:
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}: choose one of {', '.join(POLICIES)}")
    if name == "neptune" and config is not None:
        return partial(neptune, config=config)
    return POLICIES[name].decide
