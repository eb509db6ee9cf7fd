"""Targets and Markdown of the quick benchmark, and the full suite's aggregation."""

from __future__ import annotations

from typing import Any

from neptune_bench.report import check_targets, markdown
from neptune_bench.suite_report import aggregate, run_rows
from neptune_bench.suite_report import markdown as suite_markdown


def _policy(p99: float, rel: float = 0.95) -> dict[str, Any]:
    return {"stream_p50_ms": p99 / 2, "stream_p99_ms": p99, "batch_throughput_rel": rel,
            "wasted_task_seconds": 0.5, "suspensions": 3}


def _quick(peers: dict[str, Any]) -> dict[str, Any]:
    return {
        "policies": {"fifo": _policy(500), "fair": _policy(200), "kill": _policy(2, 0.3),
                     "neptune": _policy(2.0)},
        "stream_alone": {"stream_p50_ms": 1.0, "stream_p99_ms": 1.5},
        "suspension_latency_us": {"p50": 50.0, "p99": 90.0, "max": 120.0},
        "suspension_arrival_to_start_us": {"p50": 20.0, "p99": 40.0, "max": 60.0},
        "yield_overhead_rel": 0.99, "yield_overhead_spread": {"min": 0.98, "max": 1.0},
        "config": {"batch_records_per_task": 10000, "stream_records_per_task": 100},
        "scenarios": {}, "peers": peers,
    }


def _peer(p99: float) -> dict[str, Any]:
    return {"failed": False, "stream_p50_ms": p99 / 2, "stream_p99_ms": p99,
            "batch_throughput_rel": 0.9, "records_verified": True, "stream_unfinished": 0,
            "records": {"batch_tasks": 1, "batch_records": 10000, "stream_events": 1,
                        "stream_records": 100}}


def test_peer_targets_pass_and_fail() -> None:
    result = _quick({"spark_fair": _peer(100.0), "dask_priority": _peer(10.0),
                     "os_priority": _peer(1.2)})
    targets = check_targets(result)
    assert targets["spark_fair stream p99 >= 10x neptune's"]["ok"] is True
    assert targets["dask_priority stream p99 >= 10x neptune's"]["ok"] is False
    assert targets["neptune stream p99 <= 2x os_priority's"]["ok"] is True
    result["peers"]["os_priority"] = _peer(0.5)
    assert check_targets(result)["neptune stream p99 <= 2x os_priority's"]["ok"] is False


def test_failed_peer_fails_its_target_and_shows_in_the_table() -> None:
    result = _quick({"os_priority": {"failed": True, "error": "no | SCHED_IDLE",
                                     "stream_p99_ms": None}})
    result["targets"] = check_targets(result)
    assert result["targets"]["neptune stream p99 <= 2x os_priority's"]["ok"] is False
    table = markdown(result)
    assert "| os_priority | FAILED: no / SCHED_IDLE |" in table
    assert "machine's floor" not in table  # not measured: no line
    result["signal_floor_us"] = {"tcp": {"p50": 21.6, "p99": 52.0, "max": 80.0},
                                 "shm": {"p50": 4.0, "p99": 23.0, "max": 60.0}}
    assert "tcp p50 22 us, p99 52 us; shm p50 4 us, p99 23 us." in markdown(result)
    assert "Batch records on the executor's core" not in markdown(result)
    result["record_times_us"] = {"p50": 9.0, "p99": 24.0, "p999": 53.5, "max": 358.0,
                                 "over_30us_per_s": 641.0}
    assert ("Batch records on the executor's core with no runtime: p50 9 us, p99 24 us, p99.9 "
            "54 us, max 358 us (641 a second over 30 us)") in markdown(result)
    assert "polling settings not recorded" in table
    result["config"]["polling_us"] = {"poll_us": 100}
    result["config"]["warm_us"] = 1000
    assert ("doorbell checked at every yield point, socket polled every 100 us of task time (8 "
            "times less often with a doorbell); the driver rehearsed its send every 1000 us"
            ) in markdown(result)


def _run(neptune_p99: float, spark: dict[str, Any]) -> dict[str, Any]:
    scenario = {"stream_p50_ms": 1.0, "stream_p99_ms": neptune_p99, "batch_records_per_s": 90.0,
                "send_to_start_us": {"p50": 40 * neptune_p99, "p99": 80 * neptune_p99}}
    return {"runtime": {"batch_alone": {"batch_records_per_s": 100.0},
                        "stream_alone": {"stream_p50_ms": 1.0, "stream_p99_ms": 1.0},
                        "neptune": scenario},
            "peers": {"spark_fair": spark}}


def test_run_rows_and_aggregate_over_repetitions() -> None:
    rows = run_rows(_run(2.0, _peer(300.0)))
    assert rows["neptune"]["batch_throughput_rel"] == 0.9
    assert rows["spark_fair"]["stream_p99_ms"] == 300.0
    runs = [_run(2.0, _peer(300.0)), _run(4.0, {"failed": True, "error": "boom"}),
            _run(3.0, _peer(100.0))]
    agg = aggregate(runs)
    assert agg["neptune"]["stream_p99_ms"] == {"median": 3.0, "min": 2.0, "max": 4.0, "n": 3}
    assert agg["spark_fair"]["stream_p99_ms"]["n"] == 2
    assert agg["spark_fair"]["errors"] == ["boom"]


def test_suite_markdown_has_point_tables_and_sweeps() -> None:
    points = []
    for batch_ms, rate in ((10.0, 20.0), (100.0, 20.0), (100.0, 50.0)):
        runs = [_run(2.0, _peer(300.0)), _run(3.0, _peer(300.0)), _run(4.0, _peer(300.0))]
        points.append({"point": {"batch_ms": batch_ms, "rate": rate, "stream_ms": 1.0},
                       "aggregate": aggregate(runs), "runs": runs})
    result = {"config": {"executor_cpu": 1, "driver_cpu": 0, "loops_per_record": 60,
                         "stream_ms": 1.0, "repetitions": 1, "headline_rate": 20.0,
                         "headline_batch_ms": 100.0},
              "machine": {"loadavg_at_end": [0.1, 0.2, 0.3]}, "points": points,
              "skipped": ["batch 1000 ms, 20/s, repetition 1"]}
    text = suite_markdown(result)
    assert "## batch 100 ms, 20/s" in text
    assert "Stream p99 (ms) against batch task length" in text
    assert "| 10 ms | 100 ms |" in text
    assert "Skipped for the time budget: batch 1000 ms" in text
    assert "| batch 100 ms, 50/s | 120 [80-160] | 240 [160-320] |" in text
