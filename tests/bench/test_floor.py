"""The signal-floor measurement, run for real: two processes, a socket and a shared page."""

from __future__ import annotations

import os

from neptune_runtime.bench.floor import signal_floor


def test_signal_floor_measures_every_message_on_both_carriers() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    floor = signal_floor((cpus[0], cpus[-1]), count=50, gap_s=(1e-4, 3e-4))
    for carrier in ("tcp", "shm"):
        figures = floor[carrier]
        assert figures["samples"] == 50, (carrier, figures)
        # a one-way delay is positive, and on any machine far below a scheduler tick
        assert 0 < figures["p50"] <= figures["p99"] <= figures["max"] < 1e5, figures
    assert os.sched_getaffinity(0) == set(cpus)  # the caller's affinity is given back
