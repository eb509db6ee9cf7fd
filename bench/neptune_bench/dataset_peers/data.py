"""The data every system of the dataset benchmark computes on, made inside its tasks.

- `pairs`: the records of the `reduce_by_key` workload, plain Python (key, value) tuples made
  by a generator, as a Python-function RDD or a Dask bag gets them: record i of the whole
  dataset is ((i * 7919) % keys, i % 10).
- `batches` / `frame`: the same rows for the columnar workload, columns `key` (int64) and
  `amount` (float64, i % 1000 / 4) made with numpy: pyarrow RecordBatches of `batch_rows` for
  our runtime, one pandas frame per partition for Dask (Spark makes them in the JVM from
  `spark.range`, with the same expressions).
- `summary`: what the driver side computes of the result, to check that every system got the
  same one (number of keys, and sums that stay exact in a float64).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

STRIDE = 7919  # prime: keys visit every residue of `keys`, evenly


def bounds(partition: int, partitions: int, records: int) -> tuple[int, int]:
    """The records [start, stop) of a partition."""
    return records * partition // partitions, records * (partition + 1) // partitions


def pairs(partition: int, partitions: int, records: int, keys: int) -> Iterator[tuple[int, int]]:
    start, stop = bounds(partition, partitions, records)
    for i in range(start, stop):
        yield (i * STRIDE) % keys, i % 10


def _columns(start: int, stop: int, keys: int) -> dict[str, Any]:
    import numpy as np

    i = np.arange(start, stop, dtype=np.int64)
    return {"key": (i * STRIDE) % keys, "amount": (i % 1000).astype(np.float64) / 4}


def batches(partition: int, partitions: int, records: int, keys: int,
            batch_rows: int) -> Iterator[Any]:
    """pyarrow RecordBatches of at most `batch_rows` rows."""
    import pyarrow as pa

    start, stop = bounds(partition, partitions, records)
    for first in range(start, stop, batch_rows):
        yield pa.RecordBatch.from_pydict(_columns(first, min(stop, first + batch_rows), keys))


def frame(partition: int, partitions: int, records: int, keys: int) -> Any:
    """One pandas DataFrame: the partition's rows."""
    import pandas as pd

    return pd.DataFrame(_columns(*bounds(partition, partitions, records), keys))


def pairs_summary(result: Iterable[Any]) -> dict[str, Any]:
    """Of (key, total) pairs: how many keys, the sum of the totals and of key * total."""
    n = total = weighted = 0
    for key, value in result:
        n += 1
        total += value
        weighted += key * value
    return {"keys": n, "total": total, "weighted": weighted}


def columns_summary(keys: Iterable[Any], n: Iterable[Any], total: Iterable[Any],
                    low: Iterable[Any], high: Iterable[Any]) -> dict[str, Any]:
    """Of the columnar result's columns: keys, rows counted, and sums of sum, min and max."""
    keys = list(keys)
    return {"keys": len(keys), "rows": int(sum(n)), "total": float(sum(total)),
            "low": float(sum(low)), "high": float(sum(high))}

