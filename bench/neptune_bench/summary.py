"""Summary math of the benchmark (pure): one phase's figures, spread over repetitions, and the
latency distribution of a Prometheus histogram between two scrapes.

Percentiles are nearest-rank, the same definition the runtime's /status uses
(`neptune_runtime.stats.percentile`), so that peers and policies are compared alike.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections import Counter
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
    groups: dict[float, list[float | None]] = {}  # a burst's events share their arrival time
    for arrival, end, _ in stream:
        if t0 <= arrival <= t1:
            groups.setdefault(arrival, []).append(end)
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
        **burst_service([(at, ends) for at, ends in groups.items() if len(ends) > 1]),
    }


def burst_service(bursts: Sequence[tuple[float, Sequence[float | None]]]) -> dict[str, Any]:
    """How bursts were served, from (emission time, each event's answer time or None): from
    the emission to the burst's last answer (p50, max), and the time between two answers of a
    burst (p50, p99), in ms. A burst with an unanswered event is left out; `bursts` counts the
    ones in."""
    served, gaps = [], []
    for at, answered in bursts:
        times = sorted(t for t in answered if t is not None)
        if len(times) == len(answered) and len(times) > 1:
            served.append((times[-1] - at) * 1e3)
            gaps += [(b - a) * 1e3 for a, b in itertools.pairwise(times)]
    served.sort()
    gaps.sort()
    return {
        "bursts": len(served),
        "burst_served_ms": {"p50": percentile(served, 50), "max": served[-1]} if served else None,
        "answer_gap_ms": ({"p50": percentile(gaps, 50), "p99": percentile(gaps, 99)}
                          if gaps else None),
    }


def ledger_counts(text: str, t0: float, t1: float) -> dict[str, Any]:
    """Events given to the driver inside [t0, t1] and the results it got back for them, from
    the workload's ledger ("e TIME FIRST COUNT" and "r TIME INDEX" lines; workload.Ledger).

    `results_out` counts every result of those events, so an event answered twice counts
    twice: events_in == results_out with none lost nor answered twice is the check. A line
    that does not parse (the last one, read while the driver wrote it) is left out;
    `unknown_results` are results of events the ledger never saw emitted."""
    arrived: dict[int, float] = {}
    bursts: list[tuple[float, range]] = []  # the window's emissions of more than one event
    emitted: set[int] = set()
    answers: Counter[int] = Counter()
    first_answer: dict[int, float] = {}
    for line in text.splitlines():
        parts = line.split()
        try:
            if len(parts) == 4 and parts[0] == "e":
                at, first, count = float(parts[1]), int(parts[2]), int(parts[3])
                indexes = range(first, first + count)
                emitted.update(indexes)
                if t0 <= at <= t1:
                    arrived.update((i, at) for i in indexes)
                    if count > 1:
                        bursts.append((at, indexes))
            elif len(parts) == 3 and parts[0] == "r":
                index, at = int(parts[2]), float(parts[1])
                answers[index] += 1
                first_answer.setdefault(index, at)
        except ValueError:
            continue
    lost = sorted(i for i in arrived if answers[i] == 0)
    twice = sorted(i for i in arrived if answers[i] > 1)
    service = burst_service([(at, [first_answer.get(i) for i in indexes])
                             for at, indexes in bursts])
    return {
        **service,
        "events_in": len(arrived),
        "results_out": sum(answers[i] for i in arrived),
        "lost": len(lost),
        "answered_twice": len(twice),
        "unknown_results": sum(n for i, n in answers.items() if i not in emitted),
        "lost_first": lost[:10],
        "twice_first": twice[:10],
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
        "burst_served_ms": both.get("burst_served_ms"),
        "answer_gap_ms": both.get("answer_gap_ms"),
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
