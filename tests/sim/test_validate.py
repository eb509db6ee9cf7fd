"""The validation's calibration and comparison math, and the decision benchmark's snapshot."""

from __future__ import annotations

import pytest

from neptune_runtime.sim.decision_bench import snapshot
from neptune_runtime.sim.validate import calibrate, compare, error, partitions


def test_calibration_subtracts_the_messages_from_the_alone_figures() -> None:
    costs, stream_s, batch_s = calibrate(
        {"stream_p50_ms": 1.5}, {"batch_records_per_s": 2000.0},
        {"send_to_start_us": {"p50": 300.0}}, batch_records=200,
        dispatch_s=150e-6, report_s=100e-6)
    assert costs.suspend_s == pytest.approx(300e-6)
    assert stream_s == pytest.approx(1.25e-3)
    assert batch_s == pytest.approx(0.1 - 250e-6)


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
