"""The hypervisor's steal, read from /proc/stat and taken out of a window (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from neptune_bench import steal
from neptune_bench.kafka_bench import _left_to_us
from neptune_bench.suite_report import steal_line

STAT = """cpu  2820016 5472 341798 12335404 13588 0 60784 355616 0 0
cpu0 1282730 3125 180978 6278302 8866 0 37568 191483 0 0
cpu1 1537286 2347 160820 6057101 4722 0 23216 164132 0 0
intr 1 2 3
"""


def test_steal_is_the_eighth_figure_of_the_cpu_s_own_line() -> None:
    assert steal.parse_steal(STAT, 1, 100) == pytest.approx(1641.32)
    assert steal.parse_steal(STAT, 0, 100) == pytest.approx(1914.83)


def test_a_cpu_that_is_not_there_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="cpu7"):
        steal.parse_steal(STAT, 7, 100)


def test_the_window_left_to_us_is_the_window_minus_what_was_stolen() -> None:
    assert steal.available(10.0, 100.0, 102.5) == pytest.approx(7.5)
    assert steal.available(10.0, None, 102.5) == 10.0  # unknown: the wall clock
    assert steal.available(10.0, 100.0, 99.0) == 10.0  # a counter that went back counts 0
    assert steal.available(10.0, 0.0, 9.0) == 5.0  # never below half the window


def test_this_machine_s_proc_stat_gives_a_figure_for_a_real_cpu() -> None:
    assert steal.steal_seconds(0) is not None
    assert steal.steal_seconds(None) is None


def test_the_report_line_names_each_run_s_stolen_share() -> None:
    rows: dict[str, dict[str, Any]] = {
        "batch alone": {"steal_pct": 6.0}, "fair": {"steal_pct": 26.7},
        "os_priority": {"steal_pct": None}}
    line = steal_line(rows)[0]
    assert "batch alone 6.0%; fair 26.7%." in line and "os_priority" not in line
    assert steal_line({"os_priority": {}}) == []


def test_a_kafka_batch_rate_is_scaled_to_the_time_left_and_keeps_the_wall_clock_one() -> None:
    figures = _left_to_us(800.0, 10.0, 8.0)
    assert figures == {"batch_records_per_s": 1000.0, "batch_records_per_wall_s": 800.0,
                       "work_core_steal_fraction": 0.2}
    assert _left_to_us(None, 10.0, 10.0)["batch_records_per_s"] is None
