"""A discrete-event simulator that drives the runtime's own policy functions.

The simulated driver does what `Driver.schedule()` and `Driver.apply()` do: after every event it
builds a `Snapshot`, calls the policy, and applies the decisions (a Suspend or Kill followed by
the Place that uses the freed slot; a Resume on the executor that holds the task). Executors are
one slot each; a task's work advances only while it runs; a suspended task keeps its memory on its
executor; a killed task loses its progress and is queued again. Everything random comes from
seeded generators and ties in the event queue break by insertion order, so a run is a pure
function of its scenario and policy.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from neptune_runtime.policies import (
    AttemptClock,
    ExecutorView,
    Kill,
    Kind,
    Place,
    Policy,
    Resume,
    Snapshot,
    Suspend,
    TaskView,
)
from neptune_runtime.stats import percentile

from .model import Scenario

MIB = 1 << 20


@dataclass(eq=False)
class SimTask(AttemptClock):
    id: str
    app: int
    job: str
    kind: Kind
    priority: int
    ready_at: float
    work_s: float
    memory: int
    partition: int = -1
    arrival: float = 0.0  # stream: the event's arrival
    done_s: float = 0.0  # work done before the current run slice
    run_start: float = 0.0  # when the current slice's work began
    token: int = 0  # bumped on preemption: a scheduled finish with an older token is stale
    suspensions: int = 0
    executor: int = -1
    _view: TaskView | None = None

    def view(self) -> TaskView:
        if self._view is None:
            self._view = TaskView(self.id, self.job, self.kind, self.priority, self.ready_at,
                                  self.partition, self.suspensions, self.resumed_at,
                                  self.started_at, self.suspended_s)
        return self._view

    def changed(self) -> None:
        self._view = None


@dataclass(eq=False)
class SimExecutor:
    index: int
    id: str
    base_memory: int
    memory_limit: int
    cache_size: int
    running: SimTask | None = None
    suspended: list[SimTask] = field(default_factory=list)
    partitions: deque[tuple[str, int]] = field(default_factory=deque)
    _view: ExecutorView | None = None

    def view(self) -> ExecutorView:
        if self._view is None:
            memory = self.base_memory + sum(t.memory for t in self.suspended)
            if self.running is not None:
                memory += self.running.memory
            self._view = ExecutorView(
                self.id, None if self.running is None else self.running.view(),
                tuple(t.view() for t in self.suspended), memory, self.memory_limit,
                frozenset(self.partitions))
        return self._view

    def changed(self) -> None:
        self._view = None

    def cache(self, key: tuple[str, int]) -> None:
        if key in self.partitions:
            return
        self.partitions.append(key)
        if len(self.partitions) > self.cache_size:
            self.partitions.popleft()


@dataclass
class Stats:
    latencies: list[tuple[float, float]] = field(default_factory=list)  # arrival, latency
    batch_work_s: float = 0.0  # nominal work of batch tasks finished in the window
    batch_tasks: int = 0
    suspensions: int = 0
    kills: int = 0
    resumes: int = 0
    wasted_s: float = 0.0
    suspended_memory_area: float = 0.0  # byte-seconds of memory held by suspended tasks
    suspended_memory_max: int = 0
    max_suspended_on_one: int = 0
    policy_calls: int = 0
    policy_wall_s: float = 0.0
    policy_wall_max_s: float = 0.0
    events: int = 0


class Simulation:
    def __init__(self, scenario: Scenario, policy: Policy) -> None:
        self.sc = scenario
        self.policy = policy
        self.costs = scenario.costs
        self.now = 0.0
        self.end = scenario.warmup_s + scenario.duration_s
        self.heap: list[tuple[float, int, str, Any]] = []
        self.seq = itertools.count()
        self.ids = itertools.count()
        self.executors = [
            SimExecutor(i, f"e{i:04d}", scenario.executor_base_memory,
                        scenario.executor_memory_limit, scenario.partitions_cached)
            for i in range(scenario.executors)]
        self.by_id = {ex.id: ex for ex in self.executors}
        self.tasks: dict[str, SimTask] = {}
        self.queue: dict[str, SimTask] = {}  # ready tasks, insertion ordered
        self.suspended_count = 0
        self.suspended_memory = 0
        self.last_mark = scenario.warmup_s
        self.remaining: list[int] = [0] * len(scenario.apps)  # batch tasks left in the epoch
        self.arrival_rng = [random.Random(scenario.seed * 7919 + i) for i in
                            range(len(scenario.apps))]
        self.length_rng = random.Random(scenario.seed * 104729 + 1)
        self.stream_rng = random.Random(scenario.seed * 104729 + 2)
        self.stats = Stats()
        self.idle = scenario.executors
        self.running_priorities: Counter[int] = Counter()
        self.truncate_queue = True

    def _set_running(self, ex: SimExecutor, task: SimTask | None) -> None:
        if ex.running is not None:
            self.running_priorities[ex.running.priority] -= 1
        if task is not None:
            self.running_priorities[task.priority] += 1
        self.idle += (task is None) - (ex.running is None)
        ex.running = task
        ex.changed()

    # -- events ------------------------------------------------------------------------------
    def push(self, at: float, kind: str, payload: Any) -> None:
        heapq.heappush(self.heap, (at, next(self.seq), kind, payload))

    def _next_arrival(self, app: int) -> None:
        spec = self.sc.apps[app]
        if spec.stream_rate > 0:
            self.push(self.now + self.arrival_rng[app].expovariate(spec.stream_rate),
                      "arrival", app)

    def _new_task(self, app: int, kind: Kind, work_s: float, partition: int = -1) -> SimTask:
        spec = self.sc.apps[app]
        task = SimTask(
            id=f"{spec.name}-{kind}-{next(self.ids)}", app=app, job=f"{spec.name}/{kind}",
            kind=kind, priority=spec.stream_priority if kind == "stream" else spec.batch_priority,
            ready_at=self.now, work_s=work_s, partition=partition, arrival=self.now,
            memory=spec.stream_task_memory if kind == "stream" else spec.batch_task_memory)
        self.tasks[task.id] = task
        self.queue[task.id] = task
        return task

    def _start_epoch(self, app: int) -> None:
        spec = self.sc.apps[app]
        self.remaining[app] = spec.batch_partitions
        for partition in range(spec.batch_partitions):
            length = spec.batch_task_s
            if spec.batch_jitter:
                length *= 1 + self.length_rng.uniform(-spec.batch_jitter, spec.batch_jitter)
            self._new_task(app, "batch", length, partition)

    def _in_window(self, t: float) -> bool:
        return self.sc.warmup_s <= t <= self.end

    def _mark_memory(self) -> None:
        """Integrate the memory held by suspended tasks up to now (measured window only)."""
        if self.now > self.last_mark:
            self.stats.suspended_memory_area += self.suspended_memory * (self.now - self.last_mark)
            self.last_mark = self.now

    def _finish(self, task: SimTask, token: int) -> None:
        if task.token != token or task.id not in self.tasks:
            return  # preempted since this finish was scheduled
        ex = self.executors[task.executor]
        self._set_running(ex, None)
        del self.tasks[task.id]
        spec = self.sc.apps[task.app]
        if task.kind == "stream":
            self.stats.latencies.append((task.arrival, self.now - task.arrival))
            return
        ex.cache((task.job, task.partition))
        if self._in_window(self.now):
            self.stats.batch_work_s += spec.batch_task_s
            self.stats.batch_tasks += 1
        self.remaining[task.app] -= 1
        if self.remaining[task.app] == 0:
            self._start_epoch(task.app)

    # -- the driver --------------------------------------------------------------------------
    def _placeable(self) -> list[SimTask] | None:
        """The queued tasks that a policy could place now, or None when nothing can happen.

        Every policy considers queued tasks in priority order (fifo: arrival order), and whether
        a task can take an executor depends only on its priority: an idle executor, or (kill,
        neptune) one running a lower-priority task. So of the tasks of priority p at most
        idle + (executors running below p) can be placed, and they are the first ones of that
        priority; under fifo, the first `idle` by arrival. Leaving the others out of the
        snapshot changes no decision (a test checks this) and keeps the policies'
        O(queue x executors) scans short at scale."""
        if not self.queue:
            return [] if self.suspended_count and self.idle else None
        by_priority: dict[int, list[SimTask]] = {}
        for task in self.queue.values():
            by_priority.setdefault(task.priority, []).append(task)
        keep: dict[str, SimTask] = {}
        for priority, tasks in by_priority.items():
            room = self.idle + sum(n for p, n in self.running_priorities.items() if p < priority)
            if not self.truncate_queue or len(tasks) <= room:
                keep.update((t.id, t) for t in tasks)
            elif room:
                keep.update((t.id, t) for t in heapq.nsmallest(
                    room, tasks, key=lambda t: t.ready_at))
        if self.idle and self.truncate_queue:
            keep.update((t.id, t) for t in heapq.nsmallest(
                self.idle, self.queue.values(), key=lambda t: t.ready_at))
        if not keep:
            return None
        return [t for t in self.queue.values() if t.id in keep]  # arrival order, as the driver

    def schedule(self) -> None:
        if not self.queue and not self.suspended_count:
            return  # what the driver does too: nothing to place, nothing to resume
        placeable = self._placeable()
        if placeable is None:
            return  # no policy can decide anything: no idle executor, nothing to preempt
        snapshot = Snapshot(self.now, tuple(ex.view() for ex in self.executors),
                            tuple(t.view() for t in placeable))
        began = time.perf_counter()
        decisions = self.policy(snapshot)
        spent = time.perf_counter() - began
        self.stats.policy_calls += 1
        self.stats.policy_wall_s += spent
        self.stats.policy_wall_max_s = max(self.stats.policy_wall_max_s, spent)
        self.apply(decisions)

    def _start(self, ex: SimExecutor, task: SimTask, delay: float) -> None:
        self._set_running(ex, task)
        task.executor = ex.index
        task.run_start = self.now + delay
        task.token += 1
        task.changed()
        left = max(0.0, task.work_s - task.done_s)
        self.push(task.run_start + left + self.costs.report_s, "finish", (task, task.token))

    def _stop(self, task: SimTask, at: float) -> None:
        """The task's work stops at `at` (when the order reaches its next yield point)."""
        task.done_s = min(task.work_s, task.done_s + max(0.0, at - task.run_start))
        task.token += 1

    def apply(self, decisions: list[Any]) -> None:
        victims: dict[int, str] = {}
        costs = self.costs
        for decision in decisions:
            ex = self.by_id[decision.executor]
            task = self.tasks[decision.task]
            if isinstance(decision, Suspend):
                self._stop(task, self.now + costs.suspend_s)
                self._set_running(ex, None)
                ex.suspended.append(task)
                ex.changed()
                task.suspensions += 1
                task.suspended(self.now)
                task.changed()
                self._mark_memory()
                self.suspended_count += 1
                self.suspended_memory += task.memory
                self.stats.suspended_memory_max = max(self.stats.suspended_memory_max,
                                                      self.suspended_memory)
                self.stats.max_suspended_on_one = max(self.stats.max_suspended_on_one,
                                                      len(ex.suspended))
                self.stats.suspensions += 1
                victims[ex.index] = "suspend"
            elif isinstance(decision, Kill):
                self._stop(task, self.now + costs.kill_s)
                if self._in_window(self.now):
                    self.stats.wasted_s += task.done_s
                    self.stats.kills += 1
                task.done_s = 0.0
                if task in ex.suspended:
                    ex.suspended.remove(task)
                    self._mark_memory()
                    self.suspended_count -= 1
                    self.suspended_memory -= task.memory
                self._set_running(ex, None)
                task.changed()
                self.queue[task.id] = task
                victims[ex.index] = "kill"
            elif isinstance(decision, Resume):
                ex.suspended.remove(task)
                self._mark_memory()
                self.suspended_count -= 1
                self.suspended_memory -= task.memory
                self.stats.resumes += 1
                task.resumed(self.now)
                self._start(ex, task, costs.dispatch_s)
            elif isinstance(decision, Place):
                del self.queue[task.id]
                action = victims.pop(ex.index, None)
                delay = {"suspend": costs.suspend_s, "kill": costs.kill_s}.get(
                    action or "", costs.dispatch_s)
                task.started(self.now)
                self._start(ex, task, delay)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> Stats:
        for app, spec in enumerate(self.sc.apps):
            self._next_arrival(app)
            if spec.batch_partitions:
                self._start_epoch(app)
        self.schedule()
        while self.heap and self.heap[0][0] <= self.end:
            at, _, kind, payload = heapq.heappop(self.heap)
            self.now = at
            self.stats.events += 1
            if kind == "arrival":
                spec = self.sc.apps[payload]
                length = spec.stream_task_s
                if spec.stream_jitter_s:
                    length += self.stream_rng.expovariate(1 / spec.stream_jitter_s)
                self._new_task(payload, "stream", length)
                self._next_arrival(payload)
            else:
                self._finish(*payload)
            # events at the same instant are decided on together, as the driver does with one
            # message read
            if not self.heap or self.heap[0][0] > at:
                self.schedule()
        self.now = self.end
        self._mark_memory()
        # events that arrived in the window and are still waiting count as this late
        for task in self.tasks.values():
            if task.kind == "stream":
                self.stats.latencies.append((task.arrival, self.end - task.arrival))
        return self.stats


def summarise(stats: Stats, scenario: Scenario) -> dict[str, Any]:
    window = [lat for arrival, lat in stats.latencies
              if scenario.warmup_s <= arrival <= scenario.warmup_s + scenario.duration_s]
    window.sort()
    return {
        "stream_p50_ms": percentile(window, 50) * 1e3 if window else None,
        "stream_p99_ms": percentile(window, 99) * 1e3 if window else None,
        "stream_max_ms": window[-1] * 1e3 if window else None,
        "stream_events": len(window),
        "batch_work_per_s": stats.batch_work_s / scenario.duration_s,
        "batch_tasks": stats.batch_tasks,
        "suspensions": stats.suspensions,
        "resumes": stats.resumes,
        "kills": stats.kills,
        "wasted_task_seconds": stats.wasted_s,
        "suspended_memory_avg_mib": stats.suspended_memory_area / scenario.duration_s / MIB,
        "suspended_memory_max_mib": stats.suspended_memory_max / MIB,
        "max_suspended_on_one_executor": stats.max_suspended_on_one,
        "policy_calls": stats.policy_calls,
        "events": stats.events,
    }


def timing(stats: Stats) -> dict[str, float]:
    """Wall-clock figures of the policy calls (vary from run to run, unlike the rest)."""
    calls = max(1, stats.policy_calls)
    return {"policy_mean_us": stats.policy_wall_s / calls * 1e6,
            "policy_max_us": stats.policy_wall_max_s * 1e6}


def simulate(scenario: Scenario, policy: Policy, baseline: float | None = None) -> dict[str, Any]:
    """One scenario under one policy. Batch throughput is relative to `baseline` (batch work per
    second without stream events), simulated here under the same policy if not given."""
    began = time.perf_counter()
    stats = Simulation(scenario, policy).run()
    if baseline is None:
        alone = Simulation(scenario.without_stream(), policy).run()
        baseline = alone.batch_work_s / scenario.duration_s
    out = summarise(stats, scenario)
    out["batch_throughput_rel"] = out["batch_work_per_s"] / baseline if baseline else None
    out["timing"] = timing(stats) | {"wall_s": time.perf_counter() - began}
    return out
