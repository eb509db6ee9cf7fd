"""Columnar datasets (columnar.py), run stage by stage in this process as the driver and
executors would (test_datasets.run): every aggregation equals a plain-Python one over the same
rows, whatever the batches are (pyarrow, pandas, Polars), their sizes and nulls.
tests/integration/test_columnar.py runs them on real processes."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from neptune_runtime import App, columnar
from neptune_runtime.app import TaskContext
from neptune_runtime.datasets import DatasetError

from .test_datasets import run

Row = dict[str, Any]
OUTPUTS: dict[str, Any] = {
    "total": ("amount", "sum"), "n": ("amount", "count"), "avg": ("amount", "mean"),
    "low": ("amount", "min"), "high": ("amount", "max"), "units": ("units", "sum"),
    "fewest": ("units", "min")}


def make_rows(partition: int, count: int = 500) -> list[Row]:
    """Rows with string and integer keys, integer and float values, and nulls (values of a
    half are exact in binary: sums are the same in any order)."""
    out = []
    for i in range(partition * count, (partition + 1) * count):
        out.append({"region": ["eu", "us", "ap", None][i % 4] if i % 13 else None,
                    "year": 2020 + i % 3,
                    "amount": None if i % 7 == 0 else (i % 50) / 2,
                    "units": i % 11})
    return out


def reference(rows: list[Row], by: tuple[str, ...], outputs: dict[str, tuple[str, str]]
              ) -> list[Row]:
    """aggregate_columns in plain Python."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row[c] for c in by), []).append(row)
    out = []
    for key, members in groups.items():
        record: Row = dict(zip(by, key, strict=True))
        for name, (column, fn) in outputs.items():
            values = [r[column] for r in members if r[column] is not None]
            if fn == "count":
                record[name] = len(values)
            elif not values:
                record[name] = None
            elif fn == "mean":
                record[name] = sum(values) / len(values)
            elif fn == "sum":
                record[name] = sum(values)
            else:
                record[name] = min(values) if fn == "min" else max(values)
        out.append(record)
    return out


def ordered(records: list[Row], by: tuple[str, ...]) -> list[Row]:
    return sorted(records, key=lambda r: tuple((r[c] is None, str(r[c])) for c in by))


def batches_of(rows: list[Row], size: int, kind: str) -> list[Any]:
    """`rows` in batches of `size`, as pyarrow RecordBatches, Tables, pandas or Polars frames."""
    fields: list[pa.Field[Any]] = [
        pa.field("region", pa.string()), pa.field("year", pa.int64()),
        pa.field("amount", pa.float64()), pa.field("units", pa.int64())]
    schema = pa.schema(fields)
    out: list[Any] = []
    for start in range(0, len(rows), size):
        batch = pa.RecordBatch.from_pylist(rows[start:start + size], schema=schema)
        out.append({"arrow": batch, "table": pa.Table.from_batches([batch]),
                    "pandas": batch.to_pandas(),
                    "polars": pl.from_arrow(batch)}[kind])
    return out


@pytest.mark.parametrize("kind", ["arrow", "table", "pandas", "polars"])
@pytest.mark.parametrize("by", [("region",), ("region", "year"), ("year",), ()])
def test_aggregations_equal_plain_python(kind: str, by: tuple[str, ...]) -> None:
    app = App("t")
    job = (app.dataset("sales", read=lambda p, e: batches_of(make_rows(p), 64, kind),
                       partitions=3)
           .aggregate_columns(by=by, partitions=2, **OUTPUTS).collect("totals"))
    assert len(job.plan()) == 2 and job.plan()[1].inputs == (0,)
    rows = [r for p in range(3) for r in make_rows(p)]
    assert ordered(run(job), by) == ordered(reference(rows, by, OUTPUTS), by)


@pytest.mark.parametrize("rows_per_call", [1, 100, 10_000])
def test_grouping_several_batches_a_call_and_merging_partials_change_nothing(
        rows_per_call: int) -> None:
    app = App("t")
    outputs: dict[str, Any] = {"total": ("amount", "sum"), "avg": ("amount", "mean")}
    job = (app.dataset("s", read=lambda p, e: batches_of(make_rows(p, 900), 37, "arrow"),
                       partitions=2)
           .aggregate_columns("region", rows_per_call=rows_per_call, **outputs)
           .collect("s"))
    rows = [r for p in range(2) for r in make_rows(p, 900)]
    assert ordered(run(job), ("region",)) == ordered(reference(rows, ("region",), outputs),
                                                     ("region",))


def test_map_batches_then_aggregate_and_results_as_frames() -> None:
    """A vectorized map_batches (pyarrow.compute) over batches, its pandas output converted at
    the edge; the collected dicts as a pyarrow Table, a pandas and a Polars frame."""
    def taxed(batch: pa.RecordBatch) -> pd.DataFrame:
        gross = pc.multiply(batch.column("amount"), 2)
        return batch.append_column("gross", gross).to_pandas()

    app = App("t")
    job = (app.dataset("tax", read=lambda p, e: batches_of(make_rows(p), 100, "polars"),
                       partitions=2)
           .arrow().map_batches(taxed)
           .aggregate_columns("region", gross=("gross", "sum"), n=("gross", "count"))
           .collect("tax"))
    records = run(job)
    rows = [{**r, "gross": None if r["amount"] is None else r["amount"] * 2}
            for p in range(2) for r in make_rows(p)]
    expected = ordered(reference(rows, ("region",), {"gross": ("gross", "sum"),
                                                     "n": ("gross", "count")}), ("region",))
    assert ordered(records, ("region",)) == expected
    table = columnar.table(records)
    assert table.schema.names == ["region", "gross", "n"] and table.num_rows == len(expected)
    frame = columnar.pandas(records)
    assert isinstance(frame, pd.DataFrame) and frame["n"].sum() == sum(r["n"] for r in expected)
    polars = columnar.polars(records)
    assert isinstance(polars, pl.DataFrame) and polars.height == len(expected)


def test_arrow_and_rows_convert_every_kind_of_batch() -> None:
    app = App("t")
    data = make_rows(0, 40)
    kinds = ["arrow", "table", "pandas", "polars"]
    job = (app.dataset("r", read=lambda p, e: batches_of(data, 10, kinds[p]), partitions=4)
           .arrow().map(lambda b: b if isinstance(b, pa.RecordBatch) else None)
           .rows().collect("r"))
    assert run(job) == data * 4
    table = columnar.table([*batches_of(data, 15, "pandas"), data[0]])
    assert table.to_pylist() == [*data, data[0]]


def test_a_wide_operator_after_aggregate_columns_sees_plain_dicts() -> None:
    app = App("t")
    job = (app.dataset("w", read=lambda p, e: batches_of(make_rows(p), 50, "arrow"),
                       partitions=2)
           .aggregate_columns(("region", "year"), n=("units", "count"))
           .map(lambda r: (r["year"], r["n"])).reduce_by_key(lambda a, b: a + b)
           .collect("w"))
    assert len(job.plan()) == 3
    rows = [r for p in range(2) for r in make_rows(p)]
    per_year: dict[int, int] = {}
    for row in rows:
        per_year[row["year"]] = per_year.get(row["year"], 0) + 1
    assert dict(run(job)) == per_year


def test_an_empty_input_gives_no_records() -> None:
    app = App("t")
    job = (app.dataset("e", read=lambda p, e: [], partitions=2)
           .aggregate_columns("region", n=("units", "count")).collect("e"))
    assert run(job) == []


def test_each_batch_is_one_record_of_the_task_so_a_yield_point_comes_between_batches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The map task takes its batches one at a time from the records iterator (whose every
    next() is the runtime's yield point) and works on each before it asks for the next."""
    log: list[str] = []
    group = columnar._group

    def logged(agg: Any, data: pa.Table, merging: bool) -> pa.Table:
        if not merging:
            log.append("group")
        return group(agg, data, merging)

    monkeypatch.setattr(columnar, "_group", logged)

    def pulled() -> Iterator[pa.RecordBatch]:
        for batch in batches_of(make_rows(0), 100, "arrow"):
            log.append("next")
            yield batch

    app = App("t")
    job = app.dataset("y", read=lambda p, e: [], partitions=1).aggregate_columns(
        "region", rows_per_call=1, n=("units", "count")).collect("y")
    job.task(TaskContext("t", "y", 0, 0, 0, {}, stage=0), pulled())
    assert log == ["next", "group"] * 5, "the task read ahead of the batch it works on"


Build = Callable[[Any], Any]


@pytest.mark.parametrize(("records", "build", "message"), [
    ([{"region": "eu"}], lambda ds: ds.aggregate_columns("region", n=("units", "count")),
     "job bad, aggregate_columns: record {'region': 'eu'} is not a batch"),
    (None, lambda ds: ds.aggregate_columns("region", n=("price", "count")),
     "job bad, aggregate_columns: record a pyarrow RecordBatch of 10 rows, columns "
     "['region', 'year', 'amount', 'units'] has no column 'price'"),
    ([pa.RecordBatch.from_pylist([{"when": datetime.datetime(2026, 1, 1), "units": 1}])],
     lambda ds: ds.aggregate_columns("when", n=("units", "count")),
     "job bad, aggregate_columns: key datetime.datetime(2026, 1, 1, 0, 0) cannot be shuffled"),
    ([3], lambda ds: ds.arrow(), "job bad, arrow: 3 is not a batch"),
    ([3], lambda ds: ds.rows(), "job bad, rows: 3 is not a batch"),
])
def test_bad_input_names_the_job_the_operator_and_the_record(
        records: list[Any] | None, build: Build, message: str) -> None:
    given = batches_of(make_rows(0, 10), 10, "arrow") if records is None else records
    app = App("t")
    job = build(app.dataset("bad", read=lambda p, e: given, partitions=1)).collect("bad")
    with pytest.raises(DatasetError) as caught:
        run(job)
    assert message in str(caught.value)


@pytest.mark.parametrize(("by", "outputs", "message"), [
    ("region", {}, "job d, aggregate_columns: no outputs"),
    ("region", {"n": ("units", "median")}, "output n=('units', 'median') is not (column, fn)"),
    ("region", {"region": ("units", "sum")}, "output 'region' is also a key column"),
    (("a", "a"), {"n": ("units", "sum")}, "by must be distinct column names"),
])
def test_a_bad_aggregation_is_refused_at_once(by: Any, outputs: dict[str, Any],
                                              message: str) -> None:
    app = App("t")
    with pytest.raises(ValueError) as caught:
        app.dataset("d", read=lambda p, e: [], partitions=1).aggregate_columns(by, **outputs)
    assert message in str(caught.value)
