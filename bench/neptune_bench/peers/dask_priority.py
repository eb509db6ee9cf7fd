"""dask_priority: dask.distributed, one worker process with one thread, pinned to the executor's
core; stream tasks submitted with a higher `priority` than batch tasks.

Priority orders queued tasks only: a stream task still waits for the running batch task to end.
A feeder keeps a few batch tasks queued ahead so that the worker is never idle for lack of work,
as a batch job with many partitions would.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from .common import Done, PeerConfig, batch_task, main_for, pin_process, stream_task

STREAM_PRIORITY = 10
BATCH_PRIORITY = 0
BATCH_AHEAD = 4  # batch tasks kept submitted


def _dask() -> Any:
    """dask.distributed, untyped: imported as a plain module so that strict typing of this
    file does not depend on Dask's own annotations."""
    return importlib.import_module("distributed")


class DaskPriority:
    def __init__(self, cfg: PeerConfig) -> None:
        self.cfg = cfg
        self.cluster = _dask().LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                    dashboard_address=None, host="127.0.0.1")
        self.client = _dask().Client(self.cluster)
        # every thread of the worker process, not only the one that runs this
        self.client.run(pin_process, cfg.executor_cpu)
        self.stop = threading.Event()
        self.feeder: threading.Thread | None = None

    def prime(self) -> None:
        cfg = self.cfg
        for seed in range(3):
            self.client.submit(stream_task, seed, cfg.stream_records, cfg.loops,
                               cfg.executor_cpu, pure=False).result()

    def start_batch(self, log_path: str, tasks_hint: int) -> None:
        cfg = self.cfg
        self.stop.clear()

        def submit(seed: int) -> Any:
            return self.client.submit(batch_task, seed, cfg.batch_records, cfg.loops, log_path,
                                      cfg.executor_cpu, cfg.batch_record,
                                      priority=BATCH_PRIORITY, pure=False)

        def feed() -> None:
            futures = _dask().as_completed([submit(seed) for seed in range(BATCH_AHEAD)])
            seed = BATCH_AHEAD
            for _ in futures:
                if self.stop.is_set():
                    break
                futures.add(submit(seed))
                seed += 1
            self.client.cancel(list(futures.futures))

        self.feeder = threading.Thread(target=feed, daemon=True)
        self.feeder.start()

    def stop_batch(self) -> None:
        self.stop.set()
        if self.feeder is not None:
            self.feeder.join(30)
            self.feeder = None

    def submit_stream(self, seed: int, done: Done) -> None:
        cfg = self.cfg
        future = self.client.submit(stream_task, seed, cfg.stream_records, cfg.loops,
                                    cfg.executor_cpu, priority=STREAM_PRIORITY, pure=False)
        future.add_done_callback(lambda f: done(f.result()) if f.status == "finished" else None)

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


def _make(cfg: PeerConfig) -> tuple[DaskPriority, dict[str, Any]]:
    return DaskPriority(cfg), {"distributed": _dask().__version__, "workers": 1,
                               "threads": 1, "priorities": {"stream": STREAM_PRIORITY,
                                                            "batch": BATCH_PRIORITY}}


def _close(system: DaskPriority) -> None:
    system.close()


if __name__ == "__main__":
    main_for(_make, _close)
