"""Our runtime's side of the dataset benchmark (dataset_bench.py), configured by environment:

- DSB_WORKLOAD: "pairs" (`reduce_by_key(operator.add)` over data.pairs, Python records) or
  "columns" (`aggregate_columns` of data.batches: sum, count, mean, min and max of `amount` by
  `key`, with pyarrow.compute);
- DSB_RECORDS, DSB_KEYS, DSB_PARTITIONS (map tasks), DSB_REDUCERS (reduce tasks),
  DSB_BATCH_ROWS (rows of a RecordBatch), DSB_EPOCHS (runs of the job, one after the other);
- DSB_TIMES: a file to which the driver appends, as it combines each epoch's result,
  "MONOTONIC_TIME SUMMARY_JSON": an epoch's time is the difference of two lines (the next
  epoch starts as this one's result is published: the job runs continuously).

Every record of the result comes back to the driver (as Spark's collect() brings it), which
publishes only its summary (data.py).
"""

from __future__ import annotations

import json
import operator
import os
import time
from collections.abc import Callable
from typing import Any

from neptune_bench.dataset_peers import data
from neptune_runtime import App

WORKLOAD = os.environ.get("DSB_WORKLOAD", "pairs")
RECORDS = int(os.environ.get("DSB_RECORDS", "1000000"))
KEYS = int(os.environ.get("DSB_KEYS", "100000"))
PARTITIONS = int(os.environ.get("DSB_PARTITIONS", "4"))
REDUCERS = int(os.environ.get("DSB_REDUCERS", "4"))
BATCH_ROWS = int(os.environ.get("DSB_BATCH_ROWS", "65536"))
EPOCHS = int(os.environ.get("DSB_EPOCHS", "3"))
TIMES = os.environ.get("DSB_TIMES", "")


def summarize_columns(rows: list[Any]) -> dict[str, Any]:
    return data.columns_summary((r["key"] for r in rows), (r["n"] for r in rows),
                                (r["total"] for r in rows), (r["low"] for r in rows),
                                (r["high"] for r in rows))


def timed(summarize: Callable[[list[Any]], dict[str, Any]]
          ) -> Callable[[list[Any], Any], dict[str, Any]]:
    def combine(records: list[Any], previous: Any) -> dict[str, Any]:
        summary = summarize(records)
        if TIMES:
            with open(TIMES, "a") as handle:
                handle.write(f"{time.monotonic():.6f} {json.dumps(summary)}\n")
        return summary

    return combine


app = App("dataset-bench")
if WORKLOAD == "pairs":
    (app.dataset("job", read=lambda p, e: data.pairs(p, PARTITIONS, RECORDS, KEYS),
                 partitions=PARTITIONS)
     .reduce_by_key(operator.add, partitions=REDUCERS)
     .publish("result", timed(data.pairs_summary), max_epochs=EPOCHS, cache_partitions=False))
elif WORKLOAD == "columns":
    (app.dataset("job", read=lambda p, e: data.batches(p, PARTITIONS, RECORDS, KEYS, BATCH_ROWS),
                 partitions=PARTITIONS)
     .aggregate_columns("key", partitions=REDUCERS, total=("amount", "sum"),
                        n=("amount", "count"), avg=("amount", "mean"), low=("amount", "min"),
                        high=("amount", "max"))
     .publish("result", timed(summarize_columns), max_epochs=EPOCHS, cache_partitions=False))
else:
    raise ValueError(f"DSB_WORKLOAD must be 'pairs' or 'columns', got {WORKLOAD!r}")
