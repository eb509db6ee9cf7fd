"""Cluster-scale scenarios: the paper's 75 executors and 1000 executors, several applications.

Every application pairs a latency-critical stream job with a batch job, as in the paper; batch
tasks are longer at scale (seconds, as cluster batch tasks are) and vary in length, so epochs
overlap and the cluster stays saturated with batch work that stream tasks must preempt.
"""

from __future__ import annotations

from typing import Any

from neptune_runtime.policies import POLICIES

from .engine import Simulation, simulate, summarise
from .model import MIB, AppSpec, Scenario


def paper75(seed: int = 1) -> Scenario:
    apps = tuple(
        AppSpec(f"app{i}", stream_rate=150.0, stream_task_s=2e-3, batch_partitions=60,
                batch_task_s=0.5, batch_jitter=0.3, batch_task_memory=(128 + 64 * i) * MIB)
        for i in range(3))
    return Scenario("paper: 75 executors, 3 applications", 75, apps, duration_s=30.0,
                    warmup_s=3.0, seed=seed)


def large1000(seed: int = 1) -> Scenario:
    apps = tuple(
        AppSpec(f"app{i}", stream_rate=100.0 + 25 * i, stream_task_s=(1 + i % 3) * 1e-3,
                batch_partitions=300, batch_task_s=2.0, batch_jitter=0.4,
                batch_task_memory=(256 + 128 * (i % 4)) * MIB)
        for i in range(8))
    return Scenario("1000 executors, 8 applications", 1000, apps, duration_s=12.0,
                    warmup_s=4.0, seed=seed)


SCENARIOS = {"paper75": paper75, "large1000": large1000}


def run_scenario(scenario: Scenario, log: Any = None) -> dict[str, Any]:
    """Every policy on one scenario; batch-alone baseline once (no stream: no preemption, so
    every policy places batch tasks alike)."""
    alone = summarise(Simulation(scenario.without_stream(), POLICIES["fifo"].decide).run(),
                      scenario)
    out: dict[str, Any] = {"scenario": scenario.name, "executors": scenario.executors,
                           "applications": len(scenario.apps),
                           "simulated_s": scenario.duration_s, "policies": {}}
    for name, info in POLICIES.items():
        if log is not None:
            print(f"  {scenario.name}: {name} ...", file=log, flush=True)
        row = simulate(scenario, info.decide, baseline=alone["batch_work_per_s"])
        out["policies"][name] = row
    return out
