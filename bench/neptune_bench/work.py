"""The per-record work that every benchmarked system runs, and its calibration (pure Python).

Kept apart from workload.py (which builds the runtime's App) so that peers (Spark's Python
workers, Dask workers, plain processes) import only this: the same function, nothing else.
"""

from __future__ import annotations

import time

RECORD_US = 10.0


def work(seed: int, loops: int) -> int:
    """~10 us of pure-Python CPU work for the calibrated `loops`."""
    acc = seed
    for i in range(loops):
        acc = (acc * 31 + i) & 0xFFFF
    return acc


def calibrate(target_us: float = RECORD_US) -> int:
    """Iterations of `work` that take `target_us` on this machine."""
    loops = 50
    while True:
        start = time.perf_counter()
        for _ in range(200):
            work(1, loops)
        per_call = (time.perf_counter() - start) / 200 * 1e6
        if per_call > 2.0:
            return max(1, round(loops * target_us / per_call))
        loops *= 2


def records_for(task_ms: float, record_us: float = RECORD_US) -> int:
    """Records in a task of ~`task_ms` milliseconds."""
    return max(1, round(task_ms * 1000 / record_us))
