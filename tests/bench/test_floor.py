"""The signal-floor measurement, run for real: two processes, a socket and a shared page."""

from __future__ import annotations

import os

from neptune_bench.floor import record_times, signal_floor


def test_signal_floor_measures_every_message_on_both_carriers() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    floor = signal_floor((cpus[0], cpus[-1]), count=50, gap_s=(1e-4, 3e-4))
    for carrier in ("tcp", "shm"):
        figures = floor[carrier]
        assert figures["samples"] == 50, (carrier, figures)
        # a one-way delay is positive, and on any machine far below a scheduler tick
        assert 0 < figures["p50"] <= figures["p99"] <= figures["max"] < 1e5, figures
    assert os.sched_getaffinity(0) == set(cpus)  # the caller's affinity is given back


def test_record_times_are_measured_on_the_given_core() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    times = record_times(cpus[-1], loops=10, count=2000)
    assert times["samples"] == 2000
    assert 0 < times["p50"] <= times["p99"] <= times["p999"] <= times["max"], times
    assert times["over_30us_per_s"] >= 0
    assert os.sched_getaffinity(0) == set(cpus)
