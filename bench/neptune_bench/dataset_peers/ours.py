"""Our runtime's run of the dataset benchmark: a driver and two executors on this machine
(processes.LocalCluster, as `neptunectl run` starts them), the app of app.py.

The job runs continuously, one epoch after another, and the driver appends a timestamped line
as it combines each epoch's result (app.py): epoch k's time is the difference between lines k-1
and k. The first epoch's start is not written down, so it is a warm-up epoch (a run has at
least one); start-up is the cluster's start until the executors have registered.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from typing import Any

from neptune_runtime.processes import LocalCluster

from . import Config, main_for, outcome

APP = "neptune_bench.dataset_peers.app"
EXECUTORS = 2
EPOCH_ALLOWANCE_S = 600.0  # for one epoch, on a busy machine


def _lines(path: str) -> list[tuple[float, dict[str, Any]]]:
    try:
        with open(path) as handle:
            text = handle.read()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        stamp, _, summary = line.partition(" ")
        out.append((float(stamp), json.loads(summary)))
    return out


def run(cfg: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    total = max(1, cfg.warmup) + cfg.epochs
    times = os.path.join(cfg.workdir, "times")
    env = {"DSB_WORKLOAD": cfg.workload, "DSB_RECORDS": str(cfg.records),
           "DSB_KEYS": str(cfg.keys), "DSB_PARTITIONS": str(cfg.partitions),
           "DSB_REDUCERS": str(cfg.reducers), "DSB_BATCH_ROWS": str(cfg.batch_rows),
           "DSB_EPOCHS": str(total), "DSB_TIMES": times}
    started = time.monotonic()
    with open(os.path.join(cfg.workdir, "cluster.log"), "w") as log, \
            LocalCluster(APP, executors=EXECUTORS, env=env, log=log,
                         start_timeout=120.0) as cluster:
        ready = time.monotonic()
        deadline = ready + total * EPOCH_ALLOWANCE_S
        seen = 0
        while True:
            lines = _lines(times)
            for stamp, _ in lines[seen:]:
                seen += 1
                print(f"epoch {seen}: at {stamp - ready:.2f}s", file=sys.stderr, flush=True)
            if len(lines) >= total:
                break
            exited = cluster.exited()
            if exited:
                raise RuntimeError(f"exited during the run: {exited}")
            job = cluster.status()["jobs"].get("job", {})
            if job.get("state") == "failed":
                raise RuntimeError(f"the job failed: {job.get('error')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(lines)} of {total} epochs in "
                                   f"{time.monotonic() - ready:.0f}s")
            time.sleep(0.05)
    stamps = [ready] + [stamp for stamp, _ in lines]
    durations = [b - a for a, b in itertools.pairwise(stamps)]
    warm = total - cfg.epochs
    result = outcome(durations[:warm], durations[warm:], [s for _, s in lines])
    info = {"startup_s": round(ready - started, 2), "executors": EXECUTORS,
            "partitions": cfg.partitions, "reducers": cfg.reducers,
            "batch_rows": cfg.batch_rows if cfg.workload == "columns" else None,
            "first_epoch_from": "the executors' registration (includes their imports)"}
    return result, info


if __name__ == "__main__":
    main_for(run)
