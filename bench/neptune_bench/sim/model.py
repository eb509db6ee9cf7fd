"""What the simulator simulates: applications, costs of the runtime's mechanisms, scenarios.

Times are seconds. The costs default to what the real runtime measures on one host (see
bench/results): a message from the driver to an executor and the task starting, a preemption
(the order reaching the running task's next yield point), a finished report reaching the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from neptune_runtime.app import BATCH_PRIORITY, STREAM_PRIORITY

MIB = 1 << 20


@dataclass(frozen=True)
class Costs:
    dispatch_s: float = 150e-6  # a place or resume decision to the task running
    suspend_s: float = 100e-6  # a preempting place decision to the stream task running
    report_s: float = 100e-6  # a task's end to the driver deciding again
    kill_s: float = 100e-6  # a kill decision to the slot being free


@dataclass(frozen=True)
class AppSpec:
    """One application: a stream job (Poisson events, one task per event) and a batch job
    (epochs of `batch_partitions` tasks; the next epoch starts when all of them finished)."""

    name: str
    stream_rate: float = 20.0
    stream_task_s: float = 1e-3
    stream_jitter_s: float = 0.0  # mean of an exponential extra per stream task: a machine's tail
    batch_partitions: int = 4
    batch_task_s: float = 0.1
    batch_task_memory: int = 64 * MIB  # held by a batch task, also while it is suspended
    stream_task_memory: int = 1 * MIB
    batch_jitter: float = 0.0  # batch task length uniform in (1 +- jitter) * batch_task_s
    stream_priority: int = STREAM_PRIORITY
    batch_priority: int = BATCH_PRIORITY


@dataclass(frozen=True)
class Scenario:
    name: str
    executors: int
    apps: tuple[AppSpec, ...]
    duration_s: float = 20.0
    warmup_s: float = 2.0
    costs: Costs = field(default_factory=Costs)
    executor_memory_limit: int = 4096 * MIB
    executor_base_memory: int = 256 * MIB
    partitions_cached: int = 8  # (job, partition) states an executor keeps for locality
    seed: int = 1

    def without_stream(self) -> Scenario:
        """The same scenario with no stream events: the batch-alone baseline."""
        apps = tuple(AppSpec(**{**a.__dict__, "stream_rate": 0.0}) for a in self.apps)
        return Scenario(**{**self.__dict__, "apps": apps, "name": self.name + " (batch alone)"})
