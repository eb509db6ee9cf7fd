"""Columnar datasets on real driver and executor processes: batches read as pyarrow, pandas and
Polars frames, a vectorized map_batches, and aggregate_columns's shuffle of partial aggregates
across two executors, equal to plain Python; stream tasks preempt its map tasks between
batches, and nothing is lost."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from neptune_runtime.loader import load_app
from neptune_runtime.processes import LocalCluster

from .conftest import wait_for

APP = '''
"""The columnar test app: sales rows in batches of COL_BATCH, as pyarrow RecordBatches, pandas
or Polars frames by partition; COL_SLOW_MS of busy time per batch in map_batches."""
import os
import time

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from neptune_runtime import App, sources

PARTITIONS = 4
ROWS = int(os.environ.get("COL_ROWS", "6000"))
BATCH = int(os.environ.get("COL_BATCH", "500"))
SLOW = float(os.environ.get("COL_SLOW_MS", "0")) / 1e3
SCHEMA = pa.schema([pa.field("region", pa.string()), pa.field("year", pa.int64()),
                    pa.field("amount", pa.float64()), pa.field("units", pa.int64())])
OUTPUTS = {"total": ("amount", "sum"), "n": ("amount", "count"), "avg": ("amount", "mean"),
           "low": ("amount", "min"), "high": ("amount", "max"), "gross": ("gross", "sum")}


def rows(partition):
    return [{"region": ["eu", "us", "ap", "sa", None][i % 5] if i % 17 else None,
             "year": 2020 + (i * 7) % 4, "amount": None if i % 9 == 0 else (i % 80) / 4,
             "units": i % 13} for i in range(partition * ROWS, (partition + 1) * ROWS)]


def read(partition, epoch):
    data = rows(partition)
    for start in range(0, len(data), BATCH):
        batch = pa.RecordBatch.from_pylist(data[start:start + BATCH], schema=SCHEMA)
        yield [batch, batch.to_pandas(), pl.from_arrow(batch)][partition % 3]


def with_gross(batch):
    deadline = time.perf_counter() + SLOW
    while time.perf_counter() < deadline:
        pass
    return batch.append_column("gross", pc.multiply(batch.column("units"), 2))


def echo(ctx, events):
    return list(events)


app = App("columnar")
(app.dataset("sales", read=read, partitions=PARTITIONS).arrow().map_batches(with_gross)
 .aggregate_columns(("region", "year"), partitions=3, **OUTPUTS).collect("totals", max_epochs=1))
(app.dataset("overall", read=read, partitions=PARTITIONS)
 .aggregate_columns(n=("units", "count"), avg=("amount", "mean")).collect("all", max_epochs=1))
app.stream_job("events", source=sources.HttpIngest(), task=echo, slo="1s")
'''


def write_app(tmp_path: Path) -> Path:
    path = tmp_path / "columnar_app.py"
    path.write_text(APP)
    return path


def reference(path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
              ) -> tuple[list[Any], list[Any]]:
    """The aggregations in plain Python, over the app's own rows (loaded as the runtime does,
    with the same environment)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    load_app(str(path))
    module: Any = sys.modules["neptune_app_columnar_app"]
    data = [{**r, "gross": r["units"] * 2} for p in range(module.PARTITIONS)
            for r in module.rows(p)]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in data:
        groups.setdefault((row["region"], row["year"]), []).append(row)
    totals = []
    for (region, year), members in groups.items():
        record: dict[str, Any] = {"region": region, "year": year}
        for name, (column, fn) in module.OUTPUTS.items():
            values = [r[column] for r in members if r[column] is not None]
            record[name] = (len(values) if fn == "count" else None if not values
                            else sum(values) if fn == "sum" else min(values) if fn == "min"
                            else max(values) if fn == "max" else sum(values) / len(values))
        totals.append(record)
    amounts = [r["amount"] for r in data if r["amount"] is not None]
    overall = [{"n": len(data), "avg": sum(amounts) / len(amounts)}]
    return totals, overall


def ordered(records: list[Any]) -> list[Any]:
    return sorted(records, key=lambda r: (str(r["region"]), r["year"]))


def published(cluster: LocalCluster, name: str) -> Any:
    if cluster.status()["shared_state"].get(name, 0) < 1:
        cluster.post("/ingest/events", json.dumps([{"tick": 1}]).encode())  # keep preempting
        return None
    return cluster.get(f"/state/{name}")["value"]


def test_aggregate_columns_across_two_executors_equals_plain_python(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_app(tmp_path)
    env = {"COL_ROWS": "6000", "COL_BATCH": "500"}
    with LocalCluster(str(path), executors=2, env=env) as cluster:
        totals = wait_for(lambda: published(cluster, "totals"), 120, "the sales totals")
        overall = wait_for(lambda: published(cluster, "all"), 60, "the overall figures")
        status = cluster.status()
    expected_totals, expected_overall = reference(path, env, monkeypatch)
    assert ordered(totals) == ordered(expected_totals)
    assert overall == expected_overall
    stages = status["jobs"]["sales"]["stages"]
    assert [(s["partitions"], s["writes_shuffle"], s["finished"]) for s in stages] == [
        (4, True, 4), (3, False, 3)]
    executors = {e["id"] for e in status["executors"]["list"]}
    assert len(executors) == 2


def test_stream_tasks_preempt_aggregation_map_tasks_between_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_app(tmp_path)
    env = {"COL_ROWS": "3000", "COL_BATCH": "150", "COL_SLOW_MS": "20"}  # 20 batches of 20 ms
    with LocalCluster(str(path), executors=1, env=env) as cluster:
        totals = wait_for(lambda: published(cluster, "totals"), 120, "the sales totals")
        status = cluster.status()
    assert ordered(totals) == ordered(reference(path, env, monkeypatch)[0])
    assert status["jobs"]["sales"]["suspensions"] > 0, "no aggregation map task was preempted"
    events = status["jobs"]["events"]
    assert events["events"] == events["results"], "a preempting stream event was lost"
