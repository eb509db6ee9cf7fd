"""Clickstream: users' sessions and page views, on event time, with the dataflow API.

Clicks come from a synthetic source (no broker needed): each of 4 partitions simulates 40
users, each online one minute in three, clicking pages; one click in ten arrives up to 8 s
late, as a phone that was offline sends its clicks. Event time is the click's own "ts".

- `sessions`: per user, session windows with a 30 s gap (5 s of grace for the late clicks):
  when a session ends, its clicks, the distinct pages, the revenue from checkouts and its
  length. Clicks later than the grace go to a side output, counted.
- `page_views`: per page, the clicks of each minute (tumbling windows).

Both are one stream job, `clicks`, keyed (its windows live in keyed state, checkpointed with
the source's offsets). Users are per partition, as a Kafka topic keyed by user would give them.
Run it: `neptunectl run examples/clickstream.py --duration 30s`; the sessions and page views
go to out/clickstream.jsonl (EXAMPLE_CLICKSTREAM), the late clicks to out/late-clicks.jsonl.
"""

from __future__ import annotations

import os
import random
from typing import Any

from neptune_runtime import App, sinks, sources
from neptune_runtime import dataflow as df

PARTITIONS = 4
USERS = 40
PAGES = ["home", "search", "product", "product", "product", "cart", "checkout", "help"]
SECONDS_PER_CLICK = 0.25  # of event time, per partition
EPOCH = 1_767_225_600  # event time starts at 2026-01-01 00:00 UTC (POSIX seconds)
GAP = 30


def make_click(partition: int, n: int, rng: random.Random) -> dict[str, Any]:
    """The partition's n-th click: deterministic for (partition, n), whatever the timing."""
    ts = EPOCH + n * SECONDS_PER_CLICK
    minute = int(ts // 60)
    online = [u for u in range(USERS) if (u + minute) % 3 == 0]  # a third of them, in turn
    user = rng.choice(online)
    page = rng.choice(PAGES)
    late = rng.random() < 0.1
    return {"user": f"p{partition}-u{user}", "page": page,
            "ts": round(ts - (rng.uniform(0, 8) if late else 0), 3),
            "amount": rng.randrange(5, 200) if page == "checkout" else 0}


def pages_of(click: dict[str, Any]) -> list[str]:
    return [click["page"]]


def union(a: list[str], b: list[str]) -> list[str]:
    return sorted(set(a) | set(b))


def summary(session: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "session", "user": session["key"], "start": session["start"],
            "seconds": round(session["end"] - GAP - session["start"], 3),
            "clicks": session["clicks"], "pages": session["pages"],
            "revenue": session["revenue"]}


def page_views(window: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "page_views", "page": window["key"], "minute": window["start"],
            "views": window["count"]}


def out_sink(name: str, env: str) -> sinks.Sink:
    """`env` (a JSON-lines path); else out/NAME on this machine, and the driver's log in a
    pod, whose root filesystem is read-only."""
    if env in os.environ:
        return sinks.JsonLines(os.environ[env])
    if "KUBERNETES_SERVICE_HOST" in os.environ:
        return sinks.Log()
    os.makedirs("out", exist_ok=True)
    return sinks.JsonLines(f"out/{name}")


app = App("clickstream")
results = out_sink("clickstream.jsonl", "EXAMPLE_CLICKSTREAM")
clicks = app.stream(
    "clicks",
    sources.Synthetic(rate=float(os.environ.get("EXAMPLE_CLICK_RATE", "200")), make=make_click,
                      partitions=PARTITIONS, seed=11, arrival="constant"),
    slo="100ms",
    on_bad="skip",  # a click without a user or a time is counted and skipped
)
(clicks.key_by("user")
 .window(df.session(GAP), time="ts", grace=5,
         late=out_sink("late-clicks.jsonl", "EXAMPLE_LATE_CLICKS"))
 .agg(clicks=df.count(), pages=df.reduce(union, pages_of), revenue=df.sum("amount"))
 .final()
 .map(summary)
 .to(results))
(clicks.key_by("page")
 .window(df.tumbling(60), time="ts", grace=10)
 .count()
 .final()
 .map(page_views)
 .to(results))
