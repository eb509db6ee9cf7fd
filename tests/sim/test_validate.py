"""The validation's calibration and comparison math, and the decision benchmark's snapshot."""

from __future__ import annotations

import math

import pytest

from neptune_bench.sim.decision_bench import snapshot
from neptune_bench.sim.engine import simulate
from neptune_bench.sim.model import AppSpec, Costs, Scenario
from neptune_bench.sim.validate import calibrate, compare, error, partitions, service_time
from neptune_runtime.policies import fifo


def test_calibration_subtracts_the_messages_from_the_alone_figures() -> None:
    costs, batch_s = calibrate(
        {"batch_records_per_s": 2000.0}, {"send_to_start_us": {"p50": 300.0}},
        batch_records=200, dispatch_s=150e-6, report_s=100e-6)
    assert costs.suspend_s == pytest.approx(300e-6)
    assert batch_s == pytest.approx(0.1 - 250e-6)


def test_service_time_reproduces_the_stream_alone_percentiles() -> None:
    costs = Costs(dispatch_s=150e-6, report_s=100e-6)
    base, mean = service_time({"stream_p50_ms": 2.0, "stream_p99_ms": 4.0}, costs)
    overhead = costs.dispatch_s + costs.report_s
    assert base + overhead + mean * math.log(2) == pytest.approx(2e-3)
    assert base + overhead + mean * math.log(100) == pytest.approx(4e-3)
    # and the simulator, fed with them at a rate too low to queue, measures them back
    app = AppSpec("a", stream_rate=5.0, stream_task_s=base, stream_jitter_s=mean,
                  batch_partitions=0)
    sim = simulate(Scenario("alone", 1, (app,), duration_s=2000, costs=costs), fifo)
    assert sim["stream_p50_ms"] == pytest.approx(2.0, rel=0.05)
    assert sim["stream_p99_ms"] == pytest.approx(4.0, rel=0.1)


def test_compare_flags_errors_above_twenty_percent() -> None:
    out = compare({"stream_p50_ms": 10.0, "stream_p99_ms": 20.0, "batch_throughput_rel": None},
                  {"stream_p50_ms": 11.9, "stream_p99_ms": 25.0, "batch_throughput_rel": 0.9})
    assert out["stream_p50_ms"]["ok"] is True
    assert out["stream_p99_ms"]["ok"] is False
    assert out["stream_p99_ms"]["error"] == pytest.approx(0.25)
    assert out["batch_throughput_rel"]["ok"] is False  # nothing measured: not a pass
    assert error(1.0, 0.0) is None
    assert partitions(1) == 4 and partitions(4) == 8


def test_decision_snapshot_is_what_it_says() -> None:
    snap = snapshot(50, stream=2, batch=7)
    assert len(snap.executors) == 50
    assert all(ex.running is not None for ex in snap.executors)
    assert [t.kind for t in snap.queue] == ["stream"] * 2 + ["batch"] * 7
    assert snapshot(50, 2, 7) == snap  # seeded
