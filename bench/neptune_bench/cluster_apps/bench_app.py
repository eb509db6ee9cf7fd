"""The quick benchmark's neptune point as a ContinuousApplication's app module.

workload.py's batch and stream tasks (the same work as `neptunectl bench --quick`: ~100 ms batch
tasks of ~10 us pure-Python records, 1 ms stream tasks, one task and one result per event), with
the stream job's events POSTed to the driver's /ingest/stream by the benchmark (Poisson
arrivals), as an HTTP client of the app would, instead of workload.py's in-driver source.

BENCH_APP_MODE picks the jobs: "both", "stream" (stream alone) or "batch" (batch alone). The
header that `cluster_bench.app_source` puts before this text sets it and the workload's other
settings, and BENCH_MODE=none, so that workload.py's own App declares no job.
"""

from __future__ import annotations

import os

from neptune_bench import workload
from neptune_runtime import App, sources

MODE = os.environ.get("BENCH_APP_MODE", "both")
if MODE not in ("both", "stream", "batch"):
    raise ValueError(f"BENCH_APP_MODE must be 'both', 'stream' or 'batch', got {MODE!r}")

app = App("bench")
if MODE in ("both", "batch"):
    app.batch_job("batch", read=workload.read, task=workload.batch_task,
                  partitions=workload.PARTITIONS, cache_partitions=False)
if MODE in ("both", "stream"):
    app.stream_job("stream", source=sources.HttpIngest(), task=workload.stream_task, slo="10ms")
