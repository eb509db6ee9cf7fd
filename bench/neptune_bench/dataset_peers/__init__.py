"""The dataset benchmark's systems (dataset_bench.py): our runtime's app, PySpark and Dask,
each in its own process, over the same generated data (data.py).

A system runs as `python -m neptune_bench.dataset_peers.MODULE CONFIG_JSON` (`run_system`
starts it in a session of its own, so that its JVM, worker processes or executors go with it):
it starts up (not measured), runs `warmup` epochs of the workload (not measured: worker
imports, JIT, caches), then `epochs` measured ones, each from the job's submission to the
result's summary on its driver side, and prints one JSON document on its last stdout line:

    {"warmup_s": [..], "epochs_s": [..], "summary": {..}, "info": {"startup_s": .., ..}}

`summary` is the last epoch's; every epoch's must be the same, or the run fails.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..peers import run_module  # one system, in a session of its own

# (workload, system) -> the module that runs it, and what the report calls it
SYSTEMS: dict[tuple[str, str], tuple[str, str]] = {
    ("pairs", "ours"): ("ours", "ours: Dataset.reduce_by_key"),
    ("pairs", "spark_rdd"): ("spark", "PySpark RDD reduceByKey"),
    ("pairs", "dask_bag"): ("dask_local", "Dask bag foldby"),
    ("columns", "ours"): ("ours", "ours: Dataset.aggregate_columns"),
    ("columns", "spark_df"): ("spark", "PySpark DataFrame groupBy().agg()"),
    ("columns", "dask_df"): ("dask_local", "Dask dataframe groupby().agg()"),
}
WORKLOADS = ("pairs", "columns")
# what each workload's ratios are taken against
REFERENCE = {"pairs": "spark_rdd", "columns": "spark_df"}


@dataclass(frozen=True)
class Config:
    workload: str
    system: str
    records: int
    keys: int
    partitions: int = 4  # map tasks (every system)
    reducers: int = 4  # reduce tasks (every system that has a setting for it)
    batch_rows: int = 65536  # rows of a RecordBatch (ours, columns)
    epochs: int = 3  # measured
    warmup: int = 1  # epochs run first and not measured
    workdir: str = "/tmp"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> Config:
        return Config(**json.loads(text))


def run_system(cfg: Config, budget: float) -> dict[str, Any]:
    """One run of cfg's system in its own process (see the module's documentation)."""
    module, _ = SYSTEMS[(cfg.workload, cfg.system)]
    with tempfile.TemporaryDirectory(prefix=f"dsb-{cfg.system}-") as tmp:
        cfg = Config(**{**asdict(cfg), "workdir": tmp})
        return run_module(f"neptune_bench.dataset_peers.{module}", cfg.to_json(), budget, tmp)


Epoch = Callable[[], dict[str, Any]]  # runs one epoch, returns its summary


def timed_epochs(cfg: Config, epoch: Epoch) -> dict[str, Any]:
    """Run cfg.warmup then cfg.epochs epochs, timing each (time.monotonic around the call)."""
    times: list[float] = []
    summaries: list[dict[str, Any]] = []
    for _ in range(cfg.warmup + cfg.epochs):
        started = time.monotonic()
        summaries.append(epoch())
        times.append(time.monotonic() - started)
        print(f"epoch {len(times)}: {times[-1]:.2f}s", file=sys.stderr, flush=True)
    return outcome(times[:cfg.warmup], times[cfg.warmup:], summaries)


def outcome(warmup: list[float], measured: list[float],
            summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """A run's result; ValueError if its epochs did not all give the same summary."""
    if any(s != summaries[-1] for s in summaries):
        raise ValueError(f"the epochs' summaries differ: {summaries}")
    return {"warmup_s": [round(t, 4) for t in warmup], "epochs_s": [round(t, 4) for t in measured],
            "summary": summaries[-1]}


def main_for(run: Callable[[Config], tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Entry point of a system's process: run(cfg) gives its outcome and its info (versions,
    settings, start-up time); print them as one JSON line."""
    cfg = Config.from_json(sys.argv[1])
    try:
        result, info = run(cfg)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    print(json.dumps({**result, "info": info}), flush=True)
