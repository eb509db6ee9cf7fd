"""Summary math of the benchmark (pure): one phase's figures, spread over repetitions, and the
latency distribution of a Prometheus histogram between two scrapes.

Percentiles are nearest-rank, the same definition the runtime's /status uses
(`neptune_runtime.stats.percentile`), so that peers and policies are compared alike.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from neptune_runtime.stats import percentile


def phase_summary(stream: Sequence[tuple[float, float | None, int]],
                  batch: Sequence[tuple[float, int]], t0: float, t1: float,
                  ended: float) -> dict[str, Any]:
    """Figures of one measured window [t0, t1].

    `stream`: (arrival, end or None, records) per event; events that arrived inside the window
    count, and one still unfinished at `ended` counts as `ended - arrival` late (a lower bound,
    so a system that falls behind cannot look better by leaving events out).
    `batch`: (end, records) per batch task; tasks that ended inside the window count.
    """
    if t1 <= t0:
        raise ValueError("empty window")
    latencies = []
    unfinished = 0
    stream_records = 0
    stream_counts: set[int] = set()
    for arrival, end, records in stream:
        if not t0 <= arrival <= t1:
            continue
        if end is None:
            unfinished += 1
            latencies.append(max(0.0, ended - arrival))
        else:
            latencies.append(end - arrival)
            stream_records += records
            stream_counts.add(records)
    latencies.sort()
    inside = [(end, records) for end, records in batch if t0 <= end <= t1]
    batch_records = sum(records for _, records in inside)
    has_stream = bool(latencies)
    return {
        "stream_p50_ms": percentile(latencies, 50) * 1e3 if has_stream else None,
        "stream_p99_ms": percentile(latencies, 99) * 1e3 if has_stream else None,
        "stream_max_ms": latencies[-1] * 1e3 if has_stream else None,
        "stream_events": len(latencies),
        "stream_unfinished": unfinished,
        "stream_records": stream_records,
        "stream_records_per_task": sorted(stream_counts),
        "batch_tasks": len(inside),
        "batch_records": batch_records,
        "batch_records_per_s": batch_records / (t1 - t0),
        "batch_records_per_task": sorted({records for _, records in inside}),
        "latencies_ms": [round(v * 1e3, 4) for v in latencies],
    }


def spread(values: Iterable[float | None]) -> dict[str, float | None]:
    """Median, min and max over repetitions, ignoring missing values; n is how many counted."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(present), "min": min(present), "max": max(present),
            "n": len(present)}


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


_BUCKET = re.compile(r'^(\w+)_bucket\{(.*)\} ([0-9.e+-]+|\+Inf)$')
_LE = re.compile(r'le="([^"]+)"')


def histogram_buckets(text: str, name: str, match: str = "") -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) of a Prometheus histogram in exposition text; the series
    whose labels contain `match` (e.g. 'job="stream"'), summed if several do."""
    counts: dict[float, float] = {}
    for line in text.splitlines():
        found = _BUCKET.match(line)
        if not found or found.group(1) != name or match not in found.group(2):
            continue
        le = _LE.search(found.group(2))
        if le is None:
            continue
        bound = math.inf if le.group(1) == "+Inf" else float(le.group(1))
        counts[bound] = counts.get(bound, 0.0) + float(found.group(3))
    return sorted(counts.items())


def bucket_cdf(before: list[tuple[float, float]],
               after: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """CDF points (upper bound in ms, fraction <= bound) of the observations between two scrapes
    of the same cumulative histogram; the +Inf bucket is left out (it has no bound to plot)."""
    base = dict(before)
    diff = [(bound, count - base.get(bound, 0.0)) for bound, count in after]
    total = diff[-1][1] if diff else 0.0
    if total <= 0:
        return []
    return [(bound * 1e3, count / total) for bound, count in diff if math.isfinite(bound)]


def empirical_cdf(sorted_ms: Sequence[float], points: int = 200) -> list[tuple[float, float]]:
    """At most `points` (value, fraction <= value) pairs of an already sorted sample."""
    n = len(sorted_ms)
    if n == 0:
        return []
    step = max(1, n // points)
    out = [(sorted_ms[i], (i + 1) / n) for i in range(0, n, step)]
    if out[-1][1] < 1.0:
        out.append((sorted_ms[-1], 1.0))
    return out


def peer_figures(raw: dict[str, Any], batch_records: int, stream_records: int) -> dict[str, Any]:
    """A peer's figures for the report from its raw phases; a failure passes through as is.

    `records_verified` says that every counted task processed exactly the records our workload
    gives a task of its kind (the honesty rule: same work per task in every system)."""
    if raw.get("failed"):
        return raw
    phases = raw["phases"]
    both = phases.get("both", {})
    alone = phases.get("batch", {})
    per_batch = both.get("batch_records_per_task", []) + alone.get("batch_records_per_task", [])
    per_stream = both.get("stream_records_per_task", [])
    return {
        "failed": False,
        "stream_p50_ms": both.get("stream_p50_ms"),
        "stream_p99_ms": both.get("stream_p99_ms"),
        "stream_max_ms": both.get("stream_max_ms"),
        "stream_unfinished": both.get("stream_unfinished"),
        "batch_throughput_rel": ratio(both.get("batch_records_per_s"),
                                      alone.get("batch_records_per_s")),
        "records": {
            "batch_tasks": both.get("batch_tasks", 0) + alone.get("batch_tasks", 0),
            "batch_records": both.get("batch_records", 0) + alone.get("batch_records", 0),
            "stream_events": both.get("stream_events", 0),
            "stream_records": both.get("stream_records", 0),
            "expected_per_batch_task": batch_records,
            "expected_per_stream_task": stream_records,
        },
        "records_verified": (bool(per_batch) and set(per_batch) == {batch_records}
                             and bool(per_stream) and set(per_stream) == {stream_records}),
        "info": raw.get("info", {}),
        "phases": phases,
        "elapsed_s": raw.get("elapsed_s"),
    }
