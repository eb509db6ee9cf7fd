"""The per-record work that every benchmarked system runs, its calibration, and the arrival
times of the stream events (pure Python).

Kept apart from workload.py (which builds the runtime's App) so that peers (Spark's Python
workers, Dask workers, plain processes) import only this: the same functions, nothing else.

Two kinds of batch record (issue 15's shapes):
- "python": ~10 us of pure-Python work (`work`): a yield point every ~10 us;
- "sha256": `hashlib.sha256` over a COARSE_MB buffer (`coarse_work`, ~25 ms here), a C call
  that releases the GIL and that no yield point can interrupt; COARSE_RECORDS make a task.
"""

from __future__ import annotations

import hashlib
import time

RECORD_US = 10.0
BATCH_RECORD_KINDS = ("python", "sha256")
COARSE_MB = 24
COARSE_RECORDS = 6  # records of a coarse batch task
COARSE_RECORD_MS = 25.0  # nominal: what a coarse record takes on this project's VM
BURST_SIZE = 20
BURST_EVERY_S = 0.5

_buffer: bytes | None = None


def coarse_buffer() -> bytes:
    """The buffer a coarse record hashes: made once per process (24 MB of zeroes)."""
    global _buffer
    if _buffer is None:
        _buffer = bytes(COARSE_MB * 1024 * 1024)
    return _buffer


def coarse_work(seed: int) -> int:
    """One coarse record: a ~25 ms C call that releases the GIL (hashlib does for >2 KB)."""
    return hashlib.sha256(coarse_buffer()).digest()[0] ^ (seed & 0xFF)


def burst_offsets(size: int, every: float, duration: float) -> list[float]:
    """Arrival offsets (s) of bursts of `size` events every `every` seconds over `duration`,
    the first burst at `every / 2` (so that none falls on a window's edge when windows are
    whole periods): `size` equal offsets per burst."""
    if size < 1 or every <= 0:
        raise ValueError(f"bursts: size {size} and interval {every} must be positive")
    out: list[float] = []
    t = every / 2
    while t < duration:
        out += [t] * size
        t += every
    return out


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
