"""The benchmark's application (DESIGN.md section 7), configured by environment variables.

Batch tasks of ~BENCH_BATCH_MS of pure-Python work (records of ~10 us each); stream tasks of
~BENCH_STREAM_MS, one task and one result per event. BENCH_MODE picks "both", "stream" or
"batch". The per-record work is the same function everywhere, so peers can run exactly the
same work.

Shapes (issue 15):
- BENCH_ARRIVAL: "poisson" (default), events one at a time at BENCH_RATE per second
  (`sources.Synthetic`), or "bursts": BENCH_BURST events (default 20) together every
  BENCH_BURST_EVERY seconds (default 0.5), from `Bursts` below. Both are stamped the same way:
  the driver takes an event's arrival time when the source emits it, at its scheduled time.
- BENCH_BATCH_RECORD: "python" (default, ~10 us records) or "sha256": each record one ~25 ms
  C call that releases the GIL (work.coarse_work), COARSE_RECORDS (6) records a batch task.

BENCH_LEDGER names a file where the driver writes every event it was given ("e TIME FIRST
COUNT") and every result it got back ("r TIME INDEX"), CLOCK_MONOTONIC: the runner checks
with it that no event was lost or answered twice (summary.ledger_counts).

BENCH_WORK=sleep makes each record a sleep of BENCH_SLEEP_US (default 500) instead of CPU work:
the simulator's validation runs several executors on a machine with fewer cores, and a sleeping
record holds its executor's slot exactly as a computing one does without needing a core.
BENCH_PARTITIONS sets the batch job's partitions per epoch (default 4).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator
from typing import IO, Any

from neptune_bench.work import (
    BATCH_RECORD_KINDS,
    BURST_EVERY_S,
    BURST_SIZE,
    COARSE_RECORDS,
    RECORD_US,
    calibrate,
    coarse_work,
    records_for,
    work,
)
from neptune_runtime import App, TaskContext, sinks, sources

MODE = os.environ.get("BENCH_MODE", "both")
BATCH_MS = float(os.environ.get("BENCH_BATCH_MS", "100"))
STREAM_MS = float(os.environ.get("BENCH_STREAM_MS", "1"))
RATE = float(os.environ.get("BENCH_RATE", "20"))
ARRIVAL = os.environ.get("BENCH_ARRIVAL", "poisson")
BURST = int(os.environ.get("BENCH_BURST", str(BURST_SIZE)))
BURST_EVERY = float(os.environ.get("BENCH_BURST_EVERY", str(BURST_EVERY_S)))
BATCH_RECORD = os.environ.get("BENCH_BATCH_RECORD", "python")
LEDGER = os.environ.get("BENCH_LEDGER") or None
LOOPS = int(os.environ.get("BENCH_LOOPS", "0")) or None  # calibrated iterations per record
SLEEP = os.environ.get("BENCH_WORK", "cpu") == "sleep"
SLEEP_US = float(os.environ.get("BENCH_SLEEP_US", "500"))
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "4"))
if ARRIVAL not in ("poisson", "bursts"):
    raise ValueError(f"BENCH_ARRIVAL must be 'poisson' or 'bursts', got {ARRIVAL!r}")
if BATCH_RECORD not in BATCH_RECORD_KINDS:
    raise ValueError(f"BENCH_BATCH_RECORD must be one of {BATCH_RECORD_KINDS}, "
                     f"got {BATCH_RECORD!r}")
COARSE = BATCH_RECORD == "sha256"
BATCH_RECORDS = (COARSE_RECORDS if COARSE
                 else records_for(BATCH_MS, SLEEP_US if SLEEP else RECORD_US))
STREAM_RECORDS = records_for(STREAM_MS, SLEEP_US if SLEEP else RECORD_US)

_loops = LOOPS


def _get_loops() -> int:
    global _loops
    if _loops is None:
        _loops = calibrate()
    return _loops


def _sleep_work(seed: int, loops: int) -> int:
    time.sleep(SLEEP_US / 1e6)
    return seed


_work = _sleep_work if SLEEP else work


def read(partition: int, epoch: int) -> range:
    return range(BATCH_RECORDS)


def batch_task(ctx: TaskContext, records: Iterator[int]) -> int:
    acc = 0
    if COARSE:
        for record in records:
            acc ^= coarse_work(record)
        return acc
    loops = _get_loops()
    for record in records:
        acc ^= _work(record, loops)
    return acc


def stream_task(ctx: TaskContext, events: Iterator[Any]) -> list[Any]:
    """One result per event: the event itself (its index), after the event's records."""
    loops = _get_loops()
    out = []
    for event in events:
        acc = 0
        for record in range(STREAM_RECORDS):
            acc ^= _work(record + event, loops)
        out.append(event if acc >= 0 else None)
    return out


class Ledger(sinks.Sink):
    """Every event the driver was given and every result it got back, with their times, in
    one file (the driver's: the source and the sink run on its event loop). Flushed at each
    line, so that the runner can read it while the driver runs."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def _append(self, text: str) -> None:
        if self._file is None:
            self._file = open(self.path, "a")  # noqa: SIM115 - open for the process's life
        self._file.write(text)
        self._file.flush()

    def emitted(self, first: int, count: int) -> None:
        self._append(f"e {time.monotonic():.6f} {first} {count}\n")

    def write(self, job: str, outputs: list[Any]) -> None:
        now = time.monotonic()
        self._append("".join(f"r {now:.6f} {index}\n" for index in outputs))


def _event(p: int, i: int, rng: random.Random) -> int:
    """The Poisson source's event i: its index, written to the ledger as it is made (just
    before the source emits it)."""
    if ledger is not None:
        ledger.emitted(i, 1)
    return i


class Bursts(sources.Source):
    """`size` events together every `every` seconds, one emit_all a burst (as one HTTP ingest
    request of `size` events is); event i's value and token are i. A burst is emitted at its
    scheduled time, so the driver stamps its arrival as it stamps a Synthetic event's."""

    kind = "bursts"

    def __init__(self, size: int, every: float, ledger: Ledger | None) -> None:
        if size < 1 or every <= 0:
            raise ValueError(f"Bursts: size {size} and interval {every} must be positive")
        self.size = size
        self.every = every
        self.ledger = ledger

    async def run(self, out: sources.SourceOutput) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        first = 0
        while True:
            due += self.every
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.ledger is not None:
                self.ledger.emitted(first, self.size)
            out.emit_all([(i, i) for i in range(first, first + self.size)])
            first += self.size


ledger = Ledger(LEDGER) if LEDGER else None
app = App("bench")
if MODE in ("both", "batch"):
    app.batch_job("batch", read=read, task=batch_task, partitions=PARTITIONS,
                  cache_partitions=False)
if MODE in ("both", "stream"):
    source: sources.Source = (Bursts(BURST, BURST_EVERY, ledger) if ARRIVAL == "bursts"
                              else sources.Synthetic(rate=RATE, make=_event, seed=11))
    app.stream_job("stream", source=source, task=stream_task, slo="10ms", sink=ledger)
