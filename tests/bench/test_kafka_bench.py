"""The pure parts of the Kafka and window benchmarks (neptune_bench.kafka_bench, window_bench,
kafka_peers): the per-event work, the figures, the targets. No broker needed."""

from __future__ import annotations

from typing import Any

import pytest

from neptune_bench import kafka_peers as kp
from neptune_bench.kafka_bench import markdown, summarize, targets
from neptune_bench.window_bench import closing_events, expected_windows, window_total


def test_aggregate_keeps_a_running_count_and_sum_per_key() -> None:
    state = None
    outputs = []
    for i, v in enumerate([5, 7, 1]):
        state, out = kp.aggregate(state, {"id": i, "key": "a", "v": v, "ts": 1.0})
        outputs.append(out)
    assert state == [3, 13]
    assert [o["n"] for o in outputs] == [1, 2, 3]
    assert [o["sum"] for o in outputs] == [5, 12, 13]
    assert outputs[-1] == {"id": 2, "key": "a", "n": 3, "sum": 13, "ts": 1.0}


def test_events_cycle_their_keys_and_carry_the_producer_time() -> None:
    assert kp.event(1003, keys=1000, now_ms=7.0) == {"id": 1003, "key": "k000003", "v": 3,
                                                    "ts": 7.0}
    assert kp.window_event(25)["ts"] == 25 // kp.EVENTS_PER_MS


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert kp.percentile(values, 50) == 50
    assert kp.percentile(values, 99) == 99
    assert kp.percentile([3.0], 99) == 3.0
    assert kp.percentile([], 50) is None


def test_latencies_take_each_events_first_output_inside_the_window() -> None:
    outputs = [({"id": 1, "ts": 1000.0}, 1004), ({"id": 2, "ts": 1010.0}, 1030),
               ({"id": 1, "ts": 1000.0}, 1500),  # a duplicate: the first output counts
               ({"id": 3, "ts": 5000.0}, 5001)]  # produced after the window
    figures = kp.latencies(outputs, 900.0, 2000.0, sent=[(1, 1000.0), (2, 1010.0),
                                                          (4, 1020.0)])
    assert figures["events"] == 2
    assert figures["p50_ms"] == 4.0
    assert figures["max_ms"] == 20.0
    assert figures["duplicates"] == 1
    assert figures["missing"] == 1  # event 4 never came out


def test_drain_rate_ignores_the_start_and_the_tail() -> None:
    # a slow start (10 outputs over 10 s), then 1000 outputs per second for 100 s
    stamps = [i * 1000.0 for i in range(10)] + [10_000 + i for i in range(100_000)]
    rate = kp.drain_rate(stamps)
    assert rate["rate"] == pytest.approx(1000.0, rel=0.01)
    assert kp.drain_rate([1.0] * 5)["rate"] is None


def test_window_rate_counts_the_events_whose_windows_closed() -> None:
    # a window of 1000 ms closes every 0.5 s of wall time: 10k events per 0.5 s
    outputs = [((w + 1) * kp.WINDOW_MS, 1_000_000 + w * 500.0) for w in range(100)]
    rate = kp.window_rate(outputs)
    events_per_window = kp.WINDOW_MS * kp.EVENTS_PER_MS
    assert rate["rate"] == pytest.approx(events_per_window / 0.5)


def test_batch_rate_counts_tasks_that_ended_inside() -> None:
    log = [(0.5, 100), (1.5, 100), (2.5, 100), (3.5, 100)]
    assert kp.batch_rate(log, 1.0, 3.0) == 100.0
    assert kp.batch_rate(log, 3.0, 3.0) is None


def test_cpu_between_scales_the_samples_to_the_interval() -> None:
    samples = [(0.0, 0.0), (1000.0, 0.5), (2000.0, 1.0), (3000.0, 1.5)]
    assert kp.cpu_between(samples, 1000.0, 3000.0) == pytest.approx(1.0)
    assert kp.cpu_between(samples, 2500.0, 2600.0) is None  # no two samples inside


def test_window_bench_expected_windows_and_the_closing_events() -> None:
    events = 2 * kp.WINDOW_MS * kp.EVENTS_PER_MS  # exactly two windows per key
    assert expected_windows(events) == 2 * kp.WINDOW_KEYS
    closing = closing_events(events)
    assert len({e["key"] for e in closing}) == kp.WINDOW_KEYS
    assert min(e["ts"] for e in closing) >= events // kp.EVENTS_PER_MS + kp.WINDOW_MS
    assert window_total({"count": 7}) == 7 and window_total({"value": 3}) == 3


def _round(ours: dict[str, float], quix: dict[str, float], spark_p99: float) -> dict[str, Any]:
    return {
        "drain": {"neptune": {"events_per_s": ours["rate"], "events_per_cpu_s": ours["rate"]},
                  "quix": {"events_per_s": quix["rate"], "events_per_cpu_s": quix["rate"]},
                  "spark": {"failed": True, "error": "boom"}},
        "with_batch": {"neptune": {"p99_ms": ours["p99"], "batch_records_per_s": 90.0},
                       "quix": {"p99_ms": quix["p99"], "batch_records_per_s": 50.0},
                       "spark": {"p99_ms": spark_p99}},
        "batch_alone": {"neptune": {"batch_records_per_s": 100.0},
                        "process": {"batch_records_per_s": 100.0}},
    }


def test_summary_and_targets_on_medians() -> None:
    rounds = [_round({"rate": 100.0, "p99": 10.0}, {"rate": 80.0, "p99": 30.0}, 500.0),
              _round({"rate": 120.0, "p99": 50.0}, {"rate": 90.0, "p99": 20.0}, 400.0),
              _round({"rate": 110.0, "p99": 20.0}, {"rate": 200.0, "p99": 25.0}, 450.0)]
    summary = summarize(rounds, ["neptune", "quix", "spark"])
    assert summary["neptune"]["drain_events_per_s"]["median"] == 110.0
    assert summary["neptune"]["batch_rel"]["median"] == pytest.approx(0.9)
    assert summary["quix"]["batch_rel"]["median"] == pytest.approx(0.5)
    assert summary["spark"]["drain_events_per_s"]["median"] is None  # failed: not counted
    assert summary["spark"]["errors"] == ["boom"] * 3
    checks = targets(summary, None)
    assert checks["stream-only throughput >= 1.0x Quix's (events/s, one executor core)"]["ok"]
    assert checks["with batch: stream p99 <= 1/10 of Spark's"]["bound"] == 45.0
    assert checks["with batch: stream p99 <= 1/10 of Spark's"]["ok"]  # 20 <= 45
    assert checks["with batch: stream p99 <= Quix's"]["ok"]  # 20 <= 25
    rounds[2]["with_batch"]["neptune"]["p99_ms"] = 60.0
    worse = targets(summarize(rounds, ["neptune", "quix", "spark"]), None)
    assert not worse["with batch: stream p99 <= Quix's"]["ok"]  # 50 > 25


@pytest.mark.parametrize("guarantee, said", [("at-least-once", "**at least once**"),
                                             ("exactly-once", "**exactly once**")])
def test_the_report_names_the_guarantee_that_was_run(guarantee: str, said: str) -> None:
    rounds = [_round({"rate": 100.0, "p99": 10.0}, {"rate": 80.0, "p99": 30.0}, 500.0)]
    summary = summarize(rounds, ["neptune", "quix"])
    result = {"config": {"rounds": 1, "backlog": 1000, "rate": 200.0, "warmup": 1.0,
                         "measure": 2.0, "checkpoint_keys": 0, "guarantee": guarantee},
              "rounds": rounds, "uptime_start": "-", "uptime_end": "-", "elapsed_s": 60.0,
              "machine": {"cpus": 2}, "cpus": {"driver": 0, "executor": 1},
              "batch_records_per_task": 10_000, "summary": summary,
              "targets": targets(summary, None)}
    report = markdown(result)
    assert said in report
    assert f"--guarantee {guarantee}" in report
