"""A test app of the dataset API: a word count and a join, each a two-stage batch job with a
shuffle, run once (DS_EPOCHS), beside an HTTP-ingested stream job that preempts them.
DS_WORDS (words per partition), DS_SLOW_US (busy time per record of the map stage)."""

from __future__ import annotations

import operator
import os
import time
from collections.abc import Iterator
from typing import Any

from neptune_runtime import App, TaskContext, sources

PARTITIONS = 4
WORDS = int(os.environ.get("DS_WORDS", "20000"))
SLOW = float(os.environ.get("DS_SLOW_US", "0")) / 1e6
VOCABULARY = [f"w{i}" for i in range(97)]


def words(partition: int, epoch: int, count: int = WORDS) -> list[str]:
    return [VOCABULARY[(partition * 7919 + i * 31) % len(VOCABULARY)] for i in range(count)]


def slowly(word: str) -> tuple[str, int]:
    deadline = time.perf_counter() + SLOW
    while time.perf_counter() < deadline:
        pass
    return word, 1


def echo(ctx: TaskContext, events: Iterator[Any]) -> list[Any]:
    return list(events)


app = App("datasets")
epochs = int(os.environ.get("DS_EPOCHS", "1"))
(app.dataset("wordcount", read=words, partitions=PARTITIONS).map(slowly)
 .reduce_by_key(operator.add, partitions=3).collect("counts", max_epochs=epochs))
left = app.dataset("joined", read=lambda p, e: [(k, k * k) for k in range(p, 400, PARTITIONS)],
                   partitions=PARTITIONS)
right = app.dataset("right", read=lambda p, e: [(k, -k) for k in range(p, 600, 3 * PARTITIONS)],
                    partitions=PARTITIONS)
left.join(right, partitions=2).collect("pairs", max_epochs=epochs)
app.stream_job("events", source=sources.HttpIngest(), task=echo, slo="1s")
