"""The simulator: exact figures in simple cases, event ordering, determinism, exactness of its
queue shortcut, and the policies' characteristic behaviour."""

from __future__ import annotations

import heapq
from typing import Any

import pytest

from neptune_bench.sim.engine import Simulation, simulate, summarise
from neptune_bench.sim.model import MIB, AppSpec, Costs, Scenario
from neptune_runtime.policies import POLICIES

COSTS = Costs(dispatch_s=150e-6, suspend_s=100e-6, report_s=100e-6, kill_s=100e-6)


def one(policy: str = "neptune", executors: int = 1, rate: float = 20.0, partitions: int = 4,
        seed: int = 1, duration: float = 20.0, **app: Any) -> Scenario:
    spec = AppSpec("a", stream_rate=rate, stream_task_s=1e-3, batch_partitions=partitions,
                   batch_task_s=0.1, **app)
    return Scenario("t", executors, (spec,), duration_s=duration, warmup_s=1.0, costs=COSTS,
                    seed=seed)


def run(scenario: Scenario, policy: str) -> dict[str, Any]:
    out = simulate(scenario, POLICIES[policy].decide)
    out.pop("timing")  # wall-clock: the only part that is not a function of the inputs
    return out


def test_stream_alone_latency_is_dispatch_plus_work_plus_report() -> None:
    out = run(one(partitions=0, rate=1.0), "fifo")  # sparse: no event waits for another
    expected = (150e-6 + 1e-3 + 100e-6) * 1e3
    assert out["stream_p50_ms"] == pytest.approx(expected)
    assert out["stream_max_ms"] == pytest.approx(expected)
    assert out["suspensions"] == 0


def test_same_seed_same_result_other_seed_other_result() -> None:
    for policy in POLICIES:
        assert run(one(seed=5), policy) == run(one(seed=5), policy)
    assert run(one(seed=5), "fair") != run(one(seed=6), "fair")


def test_events_at_one_instant_run_in_insertion_order() -> None:
    sim = Simulation(one(partitions=0, rate=0.0), POLICIES["fifo"].decide)
    for label in ("first", "second", "third"):
        sim.push(1.0, "mark", label)
    sim.push(0.5, "mark", "earlier")
    order = [heapq.heappop(sim.heap)[3] for _ in range(4)]
    assert order == ["earlier", "first", "second", "third"]


def test_policies_behave_as_designed_at_one_executor() -> None:
    fifo, fair, kill, neptune = (run(one(), p) for p in ("fifo", "fair", "kill", "neptune"))
    # fair waits for the running batch task (<= 100 ms); fifo also behind queued ones
    assert fifo["stream_p50_ms"] > fair["stream_p50_ms"] > 10 * neptune["stream_p50_ms"]
    assert fair["stream_p99_ms"] <= 100 + 1
    assert neptune["stream_p50_ms"] == pytest.approx((100e-6 + 1e-3 + 100e-6) * 1e3)
    assert neptune["suspensions"] > 0 and neptune["kills"] == 0
    assert neptune["wasted_task_seconds"] == 0
    assert kill["kills"] > 0 and kill["wasted_task_seconds"] > 1.0
    assert kill["batch_throughput_rel"] < 0.6 < 0.95 < neptune["batch_throughput_rel"]
    assert fifo["suspensions"] == fair["suspensions"] == 0


def test_memory_held_by_suspended_tasks() -> None:
    out = run(one(batch_task_memory=64 * MIB), "neptune")
    assert out["suspended_memory_max_mib"] == 64.0  # one suspended batch task at a time
    # held roughly while the stream tasks run: ~20/s x ~1.2 ms of each second
    assert 0.5 < out["suspended_memory_avg_mib"] < 3.0
    assert out["max_suspended_on_one_executor"] == 1


def test_every_event_is_accounted_for() -> None:
    scenario = one(executors=2, rate=200.0, partitions=4)
    stats = Simulation(scenario, POLICIES["neptune"].decide).run()
    out = summarise(stats, scenario)
    assert out["stream_events"] == len([a for a, _ in stats.latencies
                                        if 1.0 <= a <= 21.0])
    assert stats.resumes == stats.suspensions or stats.resumes == stats.suspensions - 1


def _result(scenario: Scenario, policy: str, truncate: bool) -> dict[str, Any]:
    sim = Simulation(scenario, POLICIES[policy].decide)
    sim.truncate_queue = truncate
    return summarise(sim.run(), scenario)


@pytest.mark.parametrize("policy", list(POLICIES))
def test_leaving_unplaceable_tasks_out_changes_no_decision(policy: str) -> None:
    # many queued batch tasks and bursts of stream tasks: the shortcut is in play all the time
    scenario = one(executors=3, rate=150.0, partitions=12, duration=8.0, batch_jitter=0.5)
    short, full = _result(scenario, policy, True), _result(scenario, policy, False)
    # the shortcut skips calls that could decide nothing: only the call count may differ
    assert short.pop("policy_calls") <= full.pop("policy_calls")
    assert short == full
    assert short["stream_events"] > 500


def test_batch_alone_baseline_is_the_same_scenario_without_stream() -> None:
    scenario = one()
    alone = scenario.without_stream()
    assert alone.apps[0].stream_rate == 0.0
    assert alone.apps[0].batch_task_s == scenario.apps[0].batch_task_s
    assert alone.executors == scenario.executors
