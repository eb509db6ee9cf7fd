"""Time the hypervisor took from a CPU (/proc/stat's `steal`), to correct throughput for it.

This machine is a VM whose host takes 1-30% of a core's time, varying from one 10 s window to
the next: batch alone once ran with 6% of its core stolen and fair right after it with 27%. A
wall-clock records/s then measures the neighbours. Dividing by the time the core was ours
(window minus steal) leaves the runtime's own cost, idle time included (steal is not idle).
"""

from __future__ import annotations

import os

STEAL_FIELD = 8  # cpuN user nice system idle iowait irq softirq steal ...


def parse_steal(stat: str, cpu: int, ticks_per_s: float) -> float:
    """CPU `cpu`'s stolen time in seconds, from the text of /proc/stat."""
    label = f"cpu{cpu}"
    for line in stat.splitlines():
        fields = line.split()
        if fields and fields[0] == label:
            return int(fields[STEAL_FIELD]) / ticks_per_s if len(fields) > STEAL_FIELD else 0.0
    raise ValueError(f"/proc/stat has no line for {label}")


def steal_seconds(cpu: int | None) -> float | None:
    """CPU `cpu`'s stolen time so far; None when unknown (no pinned CPU, no /proc/stat)."""
    if cpu is None:
        return None
    try:
        with open("/proc/stat") as handle:
            return parse_steal(handle.read(), cpu, os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError):
        return None


def available(window: float, before: float | None, after: float | None) -> float:
    """Of a window of `window` seconds, the time the CPU was ours (never below half of it: a
    larger figure would be a clock problem, not a neighbour)."""
    if before is None or after is None:
        return window
    return max(window - max(0.0, after - before), window / 2)
