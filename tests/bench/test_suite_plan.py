"""The full suite's plan: which points it sweeps and how long it measures each."""

from __future__ import annotations

from neptune_bench.suite import (
    BATCH_LENGTHS,
    HEADLINE_BATCH_MS,
    HEADLINE_RATE,
    points,
    windows,
)
from neptune_bench.work import records_for


def test_points_cover_both_sweeps_once() -> None:
    plan = points()
    assert len(plan) == len(set(plan))
    assert {p.batch_ms for p in plan if p.rate == HEADLINE_RATE} == set(BATCH_LENGTHS)
    rates = sorted(p.rate for p in plan if p.batch_ms == HEADLINE_BATCH_MS)
    assert rates[0] == 10.0 and rates[-1] == 200.0 and HEADLINE_RATE in rates


def test_windows_hold_a_dozen_long_batch_tasks() -> None:
    warmup, measure = windows(plan_point := points()[-1])
    assert warmup >= 2.0 and measure >= 6.0
    long = next(p for p in points() if p.batch_ms == 1000.0)
    assert windows(long)[1] >= 12 * long.batch_ms / 1000
    assert plan_point.env(77)["BENCH_LOOPS"] == "77"


def test_records_per_task_follow_the_task_length() -> None:
    assert records_for(100.0) == 10000
    assert records_for(1.0) == 100
    assert records_for(100.0, record_us=500.0) == 200
    assert records_for(0.0001) == 1
