"""The tail of preemptions kept for /status (stats.py's Slowest and preemption_split)."""

from __future__ import annotations

from neptune_runtime.stats import Slowest, preemption_split


def test_slowest_keeps_the_n_largest_slowest_first_until_cleared() -> None:
    slowest = Slowest(3)
    for key in (5.0, 1.0, 9.0, 7.0, 2.0, 9.0):
        slowest.add(key, {"key": key})
    assert [item["key"] for item in slowest.items()] == [9.0, 9.0, 7.0]
    slowest.clear()
    assert slowest.items() == []


def test_equal_keys_never_compare_their_items() -> None:
    slowest = Slowest(2)
    for _ in range(4):
        slowest.add(1.0, {"unorderable": object()})
    assert len(slowest.items()) == 2


def test_a_preemption_split_is_in_microseconds_and_none_where_no_yield_point_noticed() -> None:
    assert preemption_split(0.000250, 0.000200, 150_000, 1_200_000, "e-0") == {
        "send_to_start_us": 250.0, "arrival_to_start_us": 200.0,
        "arrival_to_notice_us": 150.0, "notice_span_us": 1200.0, "executor": "e-0"}
    hub = preemption_split(0.001, 0.0005, None, None, "e-1")
    assert hub["arrival_to_notice_us"] is None and hub["notice_span_us"] is None
