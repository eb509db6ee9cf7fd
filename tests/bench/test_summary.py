"""The benchmark's summary math: windows, percentiles, spreads, histogram CDFs, peer figures."""

from __future__ import annotations

import itertools

import pytest

from neptune_bench.peers.common import PeerConfig, poisson_arrivals, read_batch_log
from neptune_bench.summary import (
    bucket_cdf,
    empirical_cdf,
    histogram_buckets,
    peer_figures,
    phase_summary,
    ratio,
    spread,
)


def test_phase_summary_counts_only_the_window() -> None:
    stream = [(0.5, 0.6, 100),  # before the window
              (1.0, 1.010, 100), (2.0, 2.020, 100), (3.0, 3.030, 100),
              (9.0, 9.5, 100)]  # after
    batch = [(0.9, 10), (1.5, 10), (2.5, 10), (4.0, 10), (4.5, 7)]
    out = phase_summary(stream, batch, t0=1.0, t1=4.0, ended=6.0)
    assert out["stream_events"] == 3
    assert out["stream_p50_ms"] == pytest.approx(20.0)
    assert out["stream_p99_ms"] == pytest.approx(30.0)
    assert out["stream_max_ms"] == pytest.approx(30.0)
    assert out["batch_tasks"] == 3  # 1.5, 2.5 and 4.0 (the bounds are inside)
    assert out["batch_records_per_s"] == pytest.approx(30 / 3.0)
    assert out["batch_records_per_task"] == [10]
    assert out["stream_records_per_task"] == [100]


def test_unfinished_events_count_as_late_not_missing() -> None:
    stream = [(1.0, 1.001, 5), (1.5, None, 0)]
    out = phase_summary(stream, [], t0=1.0, t1=2.0, ended=4.0)
    assert out["stream_unfinished"] == 1
    assert out["stream_events"] == 2
    assert out["stream_max_ms"] == pytest.approx(2500.0)  # 4.0 - 1.5
    assert out["stream_records"] == 5


def test_phase_summary_without_stream_and_bad_window() -> None:
    out = phase_summary([], [(1.5, 3)], t0=1.0, t1=2.0, ended=2.0)
    assert out["stream_p99_ms"] is None
    assert out["batch_records"] == 3
    with pytest.raises(ValueError):
        phase_summary([], [], t0=2.0, t1=2.0, ended=2.0)


def test_spread_ignores_missing_values() -> None:
    assert spread([3.0, None, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert spread([None]) == {"median": None, "min": None, "max": None, "n": 0}
    assert ratio(2.0, 4.0) == 0.5
    assert ratio(2.0, 0.0) is None
    assert ratio(None, 1.0) is None


EXPOSITION = """# HELP neptune_stream_latency_seconds x
neptune_stream_latency_seconds_bucket{job="stream",le="0.001"} %d
neptune_stream_latency_seconds_bucket{job="stream",le="0.01"} %d
neptune_stream_latency_seconds_bucket{job="stream",le="+Inf"} %d
neptune_stream_latency_seconds_bucket{job="other",le="0.001"} 99
neptune_stream_latency_seconds_count{job="stream"} %d
"""


def test_histogram_difference_gives_the_windows_cdf() -> None:
    before = histogram_buckets(EXPOSITION % (10, 10, 10, 10), "neptune_stream_latency_seconds",
                               'job="stream"')
    after = histogram_buckets(EXPOSITION % (40, 100, 110, 110), "neptune_stream_latency_seconds",
                              'job="stream"')
    assert after == [(0.001, 40.0), (0.01, 100.0), (float("inf"), 110.0)]
    cdf = bucket_cdf(before, after)
    assert [bound for bound, _ in cdf] == [1.0, 10.0]
    assert [fraction for _, fraction in cdf] == pytest.approx([0.3, 0.9])
    assert bucket_cdf(after, after) == []


def test_empirical_cdf_ends_at_one() -> None:
    values = [float(v) for v in range(1, 1001)]
    cdf = empirical_cdf(values, points=10)
    assert cdf[0] == (1.0, 0.001)
    assert cdf[-1] == (1000.0, 1.0)
    assert len(cdf) <= 12
    assert empirical_cdf([]) == []


def _raw(per_task: int) -> dict[str, object]:
    phase = {"stream_p50_ms": 5.0, "stream_p99_ms": 50.0, "stream_max_ms": 60.0,
             "stream_unfinished": 0, "stream_events": 10, "stream_records": 1000,
             "stream_records_per_task": [100], "batch_tasks": 4, "batch_records": 4 * per_task,
             "batch_records_per_task": [per_task], "batch_records_per_s": 80.0}
    alone = dict(phase, batch_records_per_s=100.0, stream_records_per_task=[])
    return {"info": {}, "phases": {"batch": alone, "both": phase}}


def test_peer_figures_relative_throughput_and_record_check() -> None:
    good = peer_figures(_raw(10000), batch_records=10000, stream_records=100)
    assert good["batch_throughput_rel"] == pytest.approx(0.8)
    assert good["stream_p99_ms"] == 50.0
    assert good["records_verified"] is True
    short = peer_figures(_raw(9999), batch_records=10000, stream_records=100)
    assert short["records_verified"] is False


def test_a_failed_peer_is_reported_not_dropped() -> None:
    failed = {"failed": True, "error": "java not found", "stream_p99_ms": None}
    assert peer_figures(failed, 1, 1) is failed


def test_poisson_arrivals_are_deterministic_and_near_the_rate() -> None:
    first = poisson_arrivals(50.0, 100.0, seed=7)
    assert first == poisson_arrivals(50.0, 100.0, seed=7)
    assert first != poisson_arrivals(50.0, 100.0, seed=8)
    assert 4500 < len(first) < 5500
    assert all(0 < a < b < 100.0 for a, b in itertools.pairwise(first))
    assert poisson_arrivals(0.0, 10.0, seed=1) == []


def test_peer_config_round_trips_and_batch_log_parses(tmp_path: object) -> None:
    cfg = PeerConfig(loops=5, batch_records=10, stream_records=2, rate=3.0, warmup=1.0,
                     measure=2.0, executor_cpu=1, phases=("batch", "both", "stream"))
    assert PeerConfig.from_json(cfg.to_json()) == cfg
    path = f"{tmp_path}/log"
    with open(path, "w") as handle:
        handle.write("1.5 10 7\n2.5 10 3\n")
    assert read_batch_log(path) == [(1.5, 10), (2.5, 10)]
    assert read_batch_log(f"{tmp_path}/missing") == []
