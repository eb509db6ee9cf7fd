"""spark_fair: PySpark in local mode, one task slot (local[1]), the FAIR scheduler.

The stream job runs in a high-weight pool, the batch job in a low-weight pool (an allocation
file). The batch job is one Spark job with enough partitions to outlast the phase, so FAIR always
has a queued batch task to weigh against the stream tasks. FAIR only picks the next task when the
slot frees: it never preempts a running task.

Stream events arrive at their Poisson times. By default (stream_mode "microbatch") the events that
arrived while the previous stream job ran form the next job, one task processing each event's
records: Structured Streaming's default trigger. A Spark job costs tens of milliseconds of driver
work, so one job per event (stream_mode "per_event", from a thread pool) cannot keep up with tens
of events per second on one core; it is kept to show that.

The JVM and this Python driver stay on the driver's core; the Python worker that runs the work
pins itself to the executor's core in every task (one system call), which puts the work where
our executor's work runs.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .common import Done, PeerConfig, batch_task, main_for, stream_task

ALLOCATIONS = """<?xml version="1.0"?>
<allocations>
  <pool name="stream"><schedulingMode>FIFO</schedulingMode><weight>1000</weight>
    <minShare>1</minShare></pool>
  <pool name="batch"><schedulingMode>FIFO</schedulingMode><weight>1</weight>
    <minShare>0</minShare></pool>
</allocations>
"""


class SparkFair:
    def __init__(self, cfg: PeerConfig) -> None:
        # imported as a plain module: type checking must not need the optional package
        pyspark: Any = importlib.import_module("pyspark")
        path = os.path.join(cfg.workdir, "fairscheduler.xml")
        with open(path, "w") as handle:
            handle.write(ALLOCATIONS)
        conf = (pyspark.SparkConf().setMaster("local[1]").setAppName("neptune-bench-spark-fair")
                .set("spark.scheduler.mode", "FAIR")
                .set("spark.scheduler.allocation.file", path)
                .set("spark.ui.enabled", "false")
                .set("spark.python.worker.reuse", "true")
                .set("spark.locality.wait", "0s")
                .set("spark.driver.bindAddress", "127.0.0.1")
                .set("spark.driver.host", "127.0.0.1")
                .set("spark.local.dir", cfg.workdir))
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        self.sc: Any = pyspark.SparkContext(conf=conf)
        self.sc.setLogLevel("ERROR")
        self.cfg = cfg
        self.pool = ThreadPoolExecutor(max_workers=64)  # stream jobs block in collect()
        self.batch_thread: threading.Thread | None = None
        self.pending: list[tuple[int, Done]] = []
        self.arrived = threading.Condition()
        if cfg.stream_mode == "microbatch":
            threading.Thread(target=self._microbatches, daemon=True).start()

    def prime(self) -> None:
        cfg = self.cfg
        for _ in range(3):
            self.sc.parallelize([0], 1).map(
                lambda s: stream_task(s, cfg.stream_records, cfg.loops, cfg.executor_cpu)
            ).collect()

    def start_batch(self, log_path: str, tasks_hint: int) -> None:
        cfg = self.cfg

        def run() -> None:
            self.sc.setLocalProperty("spark.scheduler.pool", "batch")
            self.sc.setJobGroup("batch", "batch job", interruptOnCancel=False)
            rdd = self.sc.parallelize(range(tasks_hint), tasks_hint)
            # cancelled at the end of the phase, which raises here as intended
            with contextlib.suppress(Exception):
                rdd.map(lambda i: batch_task(i, cfg.batch_records, cfg.loops, log_path,
                                             cfg.executor_cpu, cfg.batch_record)).count()

        self.batch_thread = threading.Thread(target=run, daemon=True)
        self.batch_thread.start()

    def stop_batch(self) -> None:
        self.sc.cancelJobGroup("batch")
        if self.batch_thread is not None:
            self.batch_thread.join(30)
            self.batch_thread = None

    def _stream_job(self, seeds: list[int]) -> list[int]:
        cfg = self.cfg
        self.sc.setLocalProperty("spark.scheduler.pool", "stream")
        counted: list[int] = self.sc.parallelize(seeds, 1).map(
            lambda s: stream_task(s, cfg.stream_records, cfg.loops, cfg.executor_cpu)
        ).collect()
        return counted

    def _microbatches(self) -> None:
        while True:
            with self.arrived:
                while not self.pending:
                    self.arrived.wait()
                batch, self.pending = self.pending, []
            try:
                counted = self._stream_job([seed for seed, _ in batch])
            except Exception:
                traceback.print_exc()  # left unfinished, so they count as late
                continue
            for (_, done), n in zip(batch, counted, strict=True):
                done(n)

    def submit_stream(self, seed: int, done: Done) -> None:
        if self.cfg.stream_mode == "microbatch":
            with self.arrived:
                self.pending.append((seed, done))
                self.arrived.notify()
            return

        def run() -> None:
            try:
                counted = self._stream_job([seed])
            except Exception:
                # left unfinished, so it counts as late; the traceback says why
                traceback.print_exc()
                return
            done(sum(counted))

        self.pool.submit(run)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.sc.stop()


def _make(cfg: PeerConfig) -> tuple[SparkFair, dict[str, Any]]:
    system = SparkFair(cfg)
    return system, {"spark": system.sc.version, "master": "local[1]", "scheduler": "FAIR",
                    "pools": {"stream": 1000, "batch": 1}, "stream_mode": cfg.stream_mode}


def _close(system: SparkFair) -> None:
    system.close()


if __name__ == "__main__":
    main_for(_make, _close)
