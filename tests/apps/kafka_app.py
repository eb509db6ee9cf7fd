"""A test app: card transactions from a Kafka topic, a keyed running total per card, the
totals to a Kafka topic. KAFKA_BOOTSTRAP, KAFKA_IN, KAFKA_OUT, KAFKA_GROUP, KAFKA_EOS=1
(exactly once), KAFKA_DLQ (a dead-letter topic for undecodable records), KAFKA_EVENT_MS."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from neptune_runtime import App, TaskContext, checkpoint, sinks, sources

EVENT_MS = float(os.environ.get("KAFKA_EVENT_MS", "0"))
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def totals(ctx: TaskContext, events: Iterator[Any]) -> list[dict[str, Any]]:
    state = ctx.keyed_state("totals")
    out = []
    for event in events:
        deadline = time.perf_counter() + EVENT_MS / 1000
        while time.perf_counter() < deadline:
            checkpoint()
        state[event["card"]] = state.get(event["card"], 0) + event["amount"]
        out.append({"id": event["id"], "card": event["card"], "total": state[event["card"]]})
    return out


app = App("cards")
app.stream_job(
    "totals", keyed=True, task=totals, slo="1s", trigger="20ms",
    source=sources.Kafka(os.environ.get("KAFKA_IN", "in"), bootstrap=BOOTSTRAP,
                         group=os.environ.get("KAFKA_GROUP", "cards"),
                         dead_letter_topic=os.environ.get("KAFKA_DLQ")),
    sink=sinks.Kafka(os.environ.get("KAFKA_OUT", "out"), bootstrap=BOOTSTRAP,
                     key=lambda o: o["card"], exactly_once=os.environ.get("KAFKA_EOS") == "1"))
