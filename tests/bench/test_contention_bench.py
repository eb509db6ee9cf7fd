from __future__ import annotations

from typing import Any

from neptune_bench import contention_bench as cb


def test_the_rounds_alternate_which_side_goes_first() -> None:
    assert cb.plan(3) == [True, False, False, True, True, False]
    assert cb.plan(0) == []


def test_each_side_is_summarized_over_its_own_rounds_and_failed_rounds_are_left_out() -> None:
    rows: list[dict[str, Any]] = [
        {"cpu_by_rank": True, "stream_p99_ms": 8.0, "slo_attainment": 0.99,
         "low_batch_records_per_s": 50.0},
        {"cpu_by_rank": False, "stream_p99_ms": 40.0, "slo_attainment": 0.80,
         "low_batch_records_per_s": 100.0},
        {"cpu_by_rank": True, "stream_p99_ms": 12.0, "slo_attainment": 0.97,
         "low_batch_records_per_s": 70.0},
        {"cpu_by_rank": False, "error": "AssertionError: x", "stream_p99_ms": 1.0},
    ]
    out = cb.summarize(rows)
    on, off = out["sides"]["on"], out["sides"]["off"]
    assert on["stream_p99_ms"] == {"median": 10.0, "min": 8.0, "max": 12.0, "n": 2}
    assert off["stream_p99_ms"]["n"] == 1 and off["stream_p99_ms"]["median"] == 40.0
    assert out["on_over_off"]["stream_p99_ms"] == 0.25
    assert out["on_over_off"]["low_batch_records_per_s"] == 0.6
    assert on["stream_p50_ms"]["median"] is None and out["on_over_off"]["stream_p50_ms"] is None
