"""Online learning: score events with the current model while a batch job retrains it.

The dataset `train` runs logistic regression by full-batch gradient steps: each task computes
the gradient over one partition of the training set (map_partitions, with the published model),
and `step` averages the partitions' gradients, takes a step and publishes new weights as shared
state "model". The stream job `score` scores each arriving event with the latest weights.

Pure Python on purpose: the work is CPU-bound and holds the GIL, exactly the case where a
stream task must suspend a batch task to meet its SLO.
Run it: `neptunectl run examples/online_learning.py --duration 30s`.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator
from typing import Any

from neptune_runtime import App, TaskContext, sinks, sources

FEATURES = 8
TRUE_WEIGHTS = [1.5, -2.0, 0.7, 0.0, 3.0, -1.0, 0.5, -0.3]
ROWS_PER_PARTITION = int(os.environ.get("EXAMPLE_ROWS_PER_PARTITION", "4000"))
LEARNING_RATE = 0.5


def _sigmoid(z: float) -> float:
    if z < -60:
        return 0.0
    return 1.0 / (1.0 + math.exp(-z))


def _example(rng: random.Random) -> tuple[list[float], int]:
    x = [rng.gauss(0.0, 1.0) for _ in range(FEATURES)]
    p = _sigmoid(sum(w * v for w, v in zip(TRUE_WEIGHTS, x, strict=True)))
    return x, 1 if rng.random() < p else 0


def read_partition(partition: int, epoch: int) -> Iterator[tuple[list[float], int]]:
    rng = random.Random(1000 + partition)  # the same rows every epoch: cached on executors
    for _ in range(ROWS_PER_PARTITION):
        yield _example(rng)  # lazily, so that reading is suspendable too


def gradient(rows: Iterator[Any], weights: list[float]) -> Iterator[dict[str, Any]]:
    grad = [0.0] * FEATURES
    n = 0
    for x, y in rows:  # every row is a yield point: a stream task can suspend us here
        error = _sigmoid(sum(w * v for w, v in zip(weights, x, strict=True))) - y
        for i in range(FEATURES):
            grad[i] += error * x[i]
        n += 1
    yield {"grad": grad, "n": n}


def step(results: list[dict[str, Any]], weights: list[float]) -> list[float]:
    n = sum(r["n"] for r in results)
    total = [sum(r["grad"][i] for r in results) / n for i in range(FEATURES)]
    return [w - LEARNING_RATE * g for w, g in zip(weights, total, strict=True)]


def make_event(partition: int, index: int, rng: random.Random) -> dict[str, Any]:
    x, y = _example(rng)
    return {"id": f"{partition}-{index}", "x": x, "label": y}


def score(ctx: TaskContext, events: Iterator[Any]) -> list[dict[str, Any]]:
    weights = ctx.state("model")
    out = []
    for event in events:
        p = _sigmoid(sum(w * v for w, v in zip(weights, event["x"], strict=True)))
        out.append({"id": event["id"], "p": round(p, 4), "correct": (p >= 0.5) == bool(
            event["label"]), "model_version": ctx.state_version("model")})
    return out


app = App("online-learning")
(app.dataset("train", read=read_partition, partitions=8)
 .map_partitions(gradient, state="model")
 .publish("model", combine=step, initial_state=[0.0] * FEATURES))


def scores_sink() -> sinks.Sink:
    """EXAMPLE_SCORES (a JSON-lines path); else out/scores.jsonl on this machine (make demo
    makes out/), and the driver's log in a pod, whose root filesystem is read-only."""
    if "EXAMPLE_SCORES" in os.environ:
        return sinks.JsonLines(os.environ["EXAMPLE_SCORES"])
    if "KUBERNETES_SERVICE_HOST" in os.environ:
        return sinks.Log()
    return sinks.JsonLines("out/scores.jsonl")


app.stream_job(
    "score",
    source=sources.Synthetic(rate=float(os.environ.get("EXAMPLE_EVENT_RATE", "50")),
                             make=make_event, partitions=4, seed=7),
    task=score,
    slo="20ms",
    sink=scores_sink(),
)
