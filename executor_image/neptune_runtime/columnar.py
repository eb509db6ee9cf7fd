"""Columnar datasets: pyarrow RecordBatches as records, column aggregations in pyarrow.compute.

A dataset's `read` may yield pyarrow RecordBatches, and so may its operators. To the runtime a
batch is one record: the yield point comes between batches (the records iterator gives one per
item), so a stream task waits at most for the batch being worked on. Keep batches to 10^4-10^5
rows. pyarrow Tables and pandas or Polars DataFrames are batches too, converted at the edges: a
read or a `map_batches` function may yield them, and `columnar.table`, `pandas` and `polars`
turn collected records back into a frame. pyarrow is the `arrow` extra (`pip install
neptune-k8s[arrow]`); the rest of the dataset API does not need it.

    sales = app.dataset("sales", read=read_batches, partitions=4)    # yields RecordBatches
    (sales.map_batches(with_tax)                                     # fn(batch) -> batch
          .aggregate_columns(by="region", partitions=2,
                             total=("amount", "sum"), n=("amount", "count"),
                             avg=("amount", "mean"), low=("amount", "min"),
                             high=("amount", "max"))
          .collect("totals"))
    # shared state "totals": [{"region": "eu", "total": 1520.5, "n": 31, "avg": 49.05, ...}, ...]
    frame = columnar.pandas(ctx.state("totals"))                     # or table(...), polars(...)

The methods of `datasets.Dataset` that this module implements:
- `arrow()`: every record as pyarrow RecordBatches: a RecordBatch stays, a Table or a pandas or
  Polars DataFrame becomes its batches (anything else is an error naming it). Put it before
  `map_batches` for a function that always gets a RecordBatch.
- `aggregate_columns(by, partitions=None, *, rows_per_call=ROWS_PER_CALL, **outputs)`: `by` a
  column name or a sequence of them (empty: one group, the whole dataset); each output
  `name=(column, fn)` with fn one of `sum`, `count`, `min`, `max`, `mean`. A wide operator: its
  records are dicts, one per distinct key, of the `by` columns and the outputs.
- `rows()`: each batch as its rows, dicts of column -> value (what `collect` can publish).

How an aggregation runs. A map task groups its batches with Arrow (`Table.group_by(...)
.aggregate(...)`, pyarrow.compute's hash_sum, hash_count, hash_min and hash_max kernels) into
partials: the sum, count, min and max of each column that an output needs (a mean needs the sum
and the count). Batches are grouped `rows_per_call` rows at a time (a chunked Table of several
batches, not a copy): grouping costs ~200 ns a row for a 64k-row batch with as many keys here,
~50 ns a row for 10^6 rows, so fewer, larger calls are cheaper, but one call is as long as a
stream task may wait (~25 ms for the default 2^18 rows). Partials are merged by Arrow as they
pile up. At the end of its input the task turns the merged partials into plain rows
`[key, partial, ...]` (what crosses a shuffle is msgpack: plain values), split by the stable
hash of their key. A reduce task turns the rows of its bucket back into Arrow columns, merges
them by Arrow (the sum of the sums and of the counts, the min of the mins, the max of the
maxes), divides a mean's sum by its count, and gives one dict per key.

Semantics (Arrow's kernels'; the tests check them against plain Python):
- sum, min, max and mean skip nulls, and a group whose values are all null gets None; count
  counts the values that are not null. A mean is a float; the sum of integers is an integer.
- a null key is a key of its own; keys of several columns are tuples in `by`'s order on the way
  (lists after the shuffle), but in the output every `by` column is a field of its own.
- keys and results cross the shuffle and the wire as msgpack: numbers, strings, bytes,
  booleans, None. Cast others (timestamps, decimals) in a `map_batches` first: an aggregate
  that cannot be shuffled is an error naming the job and the operator.
- a record that is not a batch, or a batch without a column it needs, is an error naming the
  job, the operator and the record (its type and columns; batches are not printed whole).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zlib import crc32

import msgpack
import pyarrow as pa

from .shuffle import ShuffleOutput, bucket_of
from .yieldpoint import yielding

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

FUNCTIONS = ("sum", "count", "min", "max", "mean")
# the partials each function needs, and how partials merge
_PARTS = {"sum": ("sum",), "count": ("count",), "min": ("min",), "max": ("max",),
          "mean": ("sum", "count")}
_MERGE = {"sum": "sum", "count": "sum", "min": "min", "max": "max"}
ROWS_PER_CALL = 1 << 18  # rows grouped in one Arrow call (see the module's documentation)
OP = "aggregate_columns"
CHUNK = 4096  # keys bucketed between two yield points (~2 ms)


class ColumnarError(Exception):
    """Raised by the helpers for something that is not a batch; operators raise
    datasets.DatasetError instead, naming the job and the operator."""


def describe(record: Any) -> str:
    """A record for an error message: a batch by its type, rows and columns, not whole."""
    if isinstance(record, pa.RecordBatch | pa.Table):
        return (f"a pyarrow {type(record).__name__} of {record.num_rows} rows, columns "
                f"{record.schema.names}")
    if _frame_kind(record) is not None:
        package = type(record).__module__.split(".")[0]
        return f"a {package} DataFrame, columns {list(record.columns)}"
    text = repr(record)
    return text if len(text) <= 200 else text[:200] + "..."


def _frame_kind(record: Any) -> str | None:
    """"pandas" or "polars" for their DataFrames (found without importing either)."""
    if type(record).__name__ != "DataFrame":
        return None
    package = type(record).__module__.split(".")[0]
    return package if package in ("pandas", "polars") else None


def as_table(record: Any) -> pa.Table | None:
    """A batch (RecordBatch, Table, pandas or Polars DataFrame) as a pyarrow Table; None for
    anything else. A RecordBatch's Table shares its buffers; a pandas frame's index is dropped."""
    if isinstance(record, pa.Table):
        return record
    if isinstance(record, pa.RecordBatch):
        return pa.Table.from_batches([record])
    kind = _frame_kind(record)
    if kind == "pandas":
        return pa.Table.from_pandas(record, preserve_index=False)
    if kind == "polars":
        table: pa.Table = record.to_arrow()
        return table
    return None


def as_batches(record: Any) -> list[pa.RecordBatch]:
    """A batch as RecordBatches (a Table's, or a frame's, several or none); ColumnarError for a
    record that is not a batch."""
    if isinstance(record, pa.RecordBatch):
        return [record]
    table = as_table(record)
    if table is None:
        raise ColumnarError(f"{describe(record)} is not a batch (a pyarrow RecordBatch or "
                            "Table, or a pandas or Polars DataFrame)")
    return table.to_batches()


def table(records: Iterable[Any]) -> pa.Table:
    """Collected records as one pyarrow Table: dict rows (what aggregate_columns and rows()
    give), or batches (RecordBatches, Tables, frames: in-process, as tests run plans)."""
    rows: list[Mapping[str, Any]] = []
    tables: list[pa.Table] = []
    for record in records:
        if isinstance(record, Mapping):
            rows.append(record)
            continue
        converted = as_table(record)
        if converted is None:
            raise ColumnarError(f"{describe(record)} is neither a dict row nor a batch")
        tables.append(converted)
    if rows:
        tables.append(pa.Table.from_pylist(rows))
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 \
        else tables[0]


def pandas(records: Iterable[Any]) -> pd.DataFrame:
    """Collected records as a pandas DataFrame (needs pandas)."""
    return table(records).to_pandas()


def polars(records: Iterable[Any]) -> pl.DataFrame:
    """Collected records as a Polars DataFrame (needs polars)."""
    import polars as pl

    frame = pl.from_arrow(table(records))
    assert isinstance(frame, pl.DataFrame)
    return frame


def rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """A batch's rows, as dicts of column -> value."""
    return batch.to_pylist()


@dataclass(frozen=True)
class Aggregation:
    """A compiled aggregate_columns: its key columns, outputs, and the partials they need."""

    by: tuple[str, ...]
    outputs: tuple[tuple[str, str, str], ...]  # (name, column, fn)
    columns: tuple[str, ...]  # the distinct input columns, in order of first use
    partials: tuple[tuple[int, str], ...]  # (index into columns, "sum" | "count" | ...)
    rows_per_call: int = ROWS_PER_CALL

    @property
    def keys(self) -> list[str]:
        """The key columns' names inside the Arrow tables (k0, k1, ...)."""
        return [f"k{i}" for i in range(len(self.by))]

    @property
    def parts(self) -> list[str]:
        """The partial columns' names inside the Arrow tables (p0, p1, ...)."""
        return [f"p{i}" for i in range(len(self.partials))]

    def part(self, column: str, fn: str) -> str:
        return f"p{self.partials.index((self.columns.index(column), fn))}"


def compile_aggregation(job: str, by: str | Sequence[str],
                        outputs: Mapping[str, Any],
                        rows_per_call: int = ROWS_PER_CALL) -> Aggregation:
    """Check aggregate_columns's arguments; ValueError naming the job and what is wrong."""
    keys = (by,) if isinstance(by, str) else tuple(by)
    where = f"job {job}, {OP}"
    if not outputs:
        raise ValueError(f"{where}: no outputs; give name=(column, fn), fn one of "
                         f"{', '.join(FUNCTIONS)}")
    if rows_per_call < 1:
        raise ValueError(f"{where}: rows_per_call must be at least 1, got {rows_per_call}")
    if len(set(keys)) != len(keys) or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"{where}: by must be distinct column names, got {by!r}")
    columns: list[str] = []
    partials: list[tuple[int, str]] = []
    compiled: list[tuple[str, str, str]] = []
    for name, spec in outputs.items():
        if name in keys:
            raise ValueError(f"{where}: output {name!r} is also a key column")
        if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str)
                and spec[1] in FUNCTIONS):
            raise ValueError(f"{where}: output {name}={spec!r} is not (column, fn) with fn "
                             f"one of {', '.join(FUNCTIONS)}")
        column, fn = spec
        if column not in columns:
            columns.append(column)
        for part in _PARTS[fn]:
            if (columns.index(column), part) not in partials:
                partials.append((columns.index(column), part))
        compiled.append((name, column, fn))
    return Aggregation(keys, tuple(compiled), tuple(columns), tuple(partials), rows_per_call)


def _group(agg: Aggregation, data: pa.Table, merging: bool) -> pa.Table:
    """`data` (k0.., c0.. or, merging, k0.., p0..) grouped: k0.., p0.. with one row a key."""
    if merging:
        pairs = [(p, _MERGE[fn]) for p, (_, fn) in zip(agg.parts, agg.partials, strict=True)]
    else:
        pairs = [(f"c{c}", fn) for c, fn in agg.partials]
    grouped = data.group_by(agg.keys, use_threads=False).aggregate(pairs)  # type: ignore[arg-type]
    return grouped.select(agg.keys + [f"{c}_{fn}" for c, fn in pairs]).rename_columns(
        agg.keys + agg.parts)


def _merge(agg: Aggregation, partials: list[pa.Table]) -> pa.Table:
    if len(partials) == 1:
        return partials[0]
    return _group(agg, pa.concat_tables(partials, promote_options="permissive"), merging=True)


class _MapSide:
    """A map task's state: batches waiting for their Arrow call, and the partials so far."""

    def __init__(self, job: str, agg: Aggregation) -> None:
        self.job = job
        self.agg = agg
        self.waiting: list[pa.Table] = []
        self.waiting_rows = 0
        self.merged: pa.Table | None = None
        self.partials: list[pa.Table] = []
        self.partial_rows = 0
        self._packer = msgpack.Packer(use_bin_type=True)  # as shuffle.bucket_of packs keys

    def add(self, record: Any) -> None:
        from .datasets import DatasetError

        data = as_table(record)
        if data is None:
            raise DatasetError(f"job {self.job}, {OP}: record {describe(record)} is not a "
                               "batch (a pyarrow RecordBatch or Table, or a pandas or Polars "
                               "DataFrame)")
        missing = [c for c in (*self.agg.by, *self.agg.columns) if c not in data.column_names]
        if missing:
            raise DatasetError(f"job {self.job}, {OP}: record {describe(record)} has no "
                               f"column {', '.join(map(repr, missing))}")
        picked = [data.column(c) for c in (*self.agg.by, *self.agg.columns)]
        names = self.agg.keys + [f"c{i}" for i in range(len(self.agg.columns))]
        self.waiting.append(pa.Table.from_arrays(picked, names=names))
        self.waiting_rows += data.num_rows
        if self.waiting_rows >= self.agg.rows_per_call:
            self._group_waiting()

    def _group_waiting(self) -> None:
        if not self.waiting:
            return
        from .datasets import DatasetError

        data = pa.concat_tables(self.waiting, promote_options="permissive") \
            if len(self.waiting) > 1 else self.waiting[0]
        self.waiting, self.waiting_rows = [], 0
        try:
            part = _group(self.agg, data, merging=False)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise DatasetError(f"job {self.job}, {OP}: Arrow cannot aggregate columns "
                               f"{data.schema}: {exc}") from exc
        self.partials.append(part)
        self.partial_rows += part.num_rows
        # merge once the new partials hold as many rows as the merged ones: each row is merged
        # a bounded number of times on average, and no merge is much larger than the key set
        if self.merged is None or self.partial_rows >= self.merged.num_rows:
            before = [] if self.merged is None else [self.merged]
            self.merged = _merge(self.agg, before + self.partials)
            self.partials, self.partial_rows = [], 0

    def output(self, buckets: int) -> ShuffleOutput:
        self._group_waiting()
        pieces = ([self.merged] if self.merged is not None else []) + self.partials
        out = ShuffleOutput()
        if not pieces:
            return out
        merged = _merge(self.agg, pieces)
        keys = [merged.column(k).to_pylist() for k in self.agg.keys]
        values = [merged.column(p).to_pylist() for p in self.agg.parts]
        key_of: list[Any] = (list(zip(*keys, strict=True)) if len(keys) > 1 else keys[0]
                             if keys else [None] * merged.num_rows)
        rows = list(zip(key_of, *values, strict=True))
        # plain Python over every key (the partials are as many rows as keys): a yield point
        # every CHUNK of them
        for start in yielding(range(0, len(rows), CHUNK)):
            chunk = rows[start:start + CHUNK]
            for bucket, row in zip(self._buckets([r[0] for r in chunk], buckets), chunk,
                                   strict=True):
                out.buckets.setdefault(bucket, []).append(row)
        return out

    def _buckets(self, keys: list[Any], buckets: int) -> list[int]:
        """bucket_of of every key (the same buckets), with one msgpack Packer for them all."""
        from .datasets import DatasetError

        pack = self._packer.pack
        try:
            return [crc32(pack(key)) % buckets for key in keys]
        except (TypeError, ValueError, OverflowError):
            for key in keys:  # bucket_of names the key that cannot be shuffled
                try:
                    bucket_of(key, buckets)
                except Exception as exc:
                    raise DatasetError(f"job {self.job}, {OP}: {exc}") from None
            raise


def map_side(job: str, agg: Aggregation) -> Any:
    """The shuffle's write: (job, records, side, buckets) -> ShuffleOutput."""
    def write(job_name: str, records: Iterator[Any], side: int, buckets: int) -> ShuffleOutput:
        state = _MapSide(job_name, agg)
        for record in records:
            state.add(record)
        return state.output(buckets)

    return write


def _column(values: Sequence[Any]) -> pa.Array[Any]:
    array: pa.Array[Any] = pa.array(values)
    return array.cast(pa.int64()) if pa.types.is_null(array.type) else array


def reduce_side(job: str, agg: Aggregation) -> Any:
    """The shuffle's read: (job, rows [key, partial...]) -> one dict per key."""
    def read(job_name: str, records: Iterator[Any]) -> Iterator[Any]:
        received = list(records)  # a yield point each
        if not received:
            return iter(())
        columns = list(zip(*received, strict=True))
        keys: list[Sequence[Any]] = []
        if len(agg.by) == 1:
            keys = [columns[0]]
        elif agg.by:
            keys = list(zip(*columns[0], strict=True))
        arrays = [_column(k) for k in keys] + [_column(c) for c in columns[1:]]
        merged = _group(agg, pa.Table.from_arrays(arrays, names=agg.keys + agg.parts),
                        merging=True)
        return iter(_outputs(agg, merged))

    return read


def _outputs(agg: Aggregation, merged: pa.Table) -> list[dict[str, Any]]:
    import pyarrow.compute as pc

    columns: dict[str, Any] = {name: merged.column(key)
                               for name, key in zip(agg.by, agg.keys, strict=True)}
    for name, column, fn in agg.outputs:
        if fn == "mean":
            total = merged.column(agg.part(column, "sum"))
            count = merged.column(agg.part(column, "count"))
            columns[name] = pc.divide(pc.cast(total, pa.float64()), pc.cast(count, pa.float64()))
        else:
            columns[name] = merged.column(agg.part(column, fn))
    return pa.table(columns).to_pylist()
