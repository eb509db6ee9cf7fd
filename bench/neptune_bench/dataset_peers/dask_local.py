"""Dask's runs of the dataset benchmark, on a dask.distributed LocalCluster of two worker
processes of one thread each.

- pairs (`dask_bag`): a bag of data.pairs records, `foldby(key, add the value, 0, add, 0)`
  (Dask's documented counterpart of reduceByKey), `.compute()`.
- columns (`dask_df`): a dataframe of one pandas frame per partition (`from_map(data.frame)`),
  `groupby("key").amount.agg(["sum", "count", "mean", "min", "max"])`, `.compute()`.

Start-up (the cluster and its workers) is not measured; nor are the warm-up epochs.
"""

from __future__ import annotations

import importlib
import operator
import time
from typing import Any

from . import Config, data, main_for, timed_epochs

WORKERS = 2


def _key(record: tuple[int, int]) -> int:
    return record[0]


def _add_value(total: int, record: tuple[int, int]) -> int:
    return total + record[1]


def _pairs_of(partition: int, partitions: int, records: int, keys: int) -> Any:
    return data.pairs(partition, partitions, records, keys)


def run(cfg: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    started = time.monotonic()
    # imported as plain modules: type checking must not need the optional package
    dask: Any = importlib.import_module("dask")
    bag: Any = importlib.import_module("dask.bag")
    frame: Any = importlib.import_module("dask.dataframe")
    distributed: Any = importlib.import_module("dask.distributed")
    pd: Any = importlib.import_module("pandas")
    cluster = distributed.LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                                       dashboard_address=None, local_directory=cfg.workdir)
    client = distributed.Client(cluster)
    startup = time.monotonic() - started
    parts, records, keys = cfg.partitions, cfg.records, cfg.keys

    def pairs() -> dict[str, Any]:
        records_bag = bag.from_sequence(range(parts), npartitions=parts).map(
            _pairs_of, parts, records, keys).flatten()
        result = records_bag.foldby(_key, _add_value, 0, operator.add, 0).compute()
        return data.pairs_summary(result)

    def columns() -> dict[str, Any]:
        meta = pd.DataFrame({"key": pd.Series([], dtype="int64"),
                             "amount": pd.Series([], dtype="float64")})
        rows = frame.from_map(data.frame, list(range(parts)), args=[parts, records, keys],
                              meta=meta)
        out = rows.groupby("key").amount.agg(["sum", "count", "mean", "min", "max"]).compute()
        return data.columns_summary(out.index, out["count"], out["sum"], out["min"], out["max"])

    try:
        result = timed_epochs(cfg, pairs if cfg.workload == "pairs" else columns)
        info = {"startup_s": round(startup, 2), "dask": dask.__version__,
                "workers": WORKERS, "threads_per_worker": 1, "partitions": parts,
                "reducers": "1 (foldby and groupby().agg() combine into one partition)"}
    finally:
        client.close()
        cluster.close()
    return result, info


if __name__ == "__main__":
    main_for(run)
