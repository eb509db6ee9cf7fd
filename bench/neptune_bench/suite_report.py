"""The full suite's figures (pure): per run, per system; aggregated over repetitions; Markdown."""

from __future__ import annotations

from typing import Any

from neptune_runtime.policies import POLICIES

from .summary import ratio, spread

OURS = tuple(POLICIES)
METRICS = ("stream_p50_ms", "stream_p99_ms", "batch_throughput_rel")
# issue 15's shapes show these as well (medians over repetitions in the full suite)
SHAPE_METRICS = ("stream_max_ms", "suspensions", "yield_p50_ms", "yield_p99_ms",
                 "yield_max_ms", "burst_p50_ms", "burst_max_ms", "gap_p50_ms", "steal_pct")
# summed over repetitions: events given in the window, their results, and the bad ones
COUNTS = ("events_in", "results_out", "lost", "answered_twice")
BATCH_ALONE = "batch alone"


def point_key(point: dict[str, Any]) -> str:
    if point.get("arrival", "poisson") == "bursts":
        records = ("sha256 records (~25 ms C calls)" if point.get("batch_record") == "sha256"
                   else f"batch {point['batch_ms']:g} ms")
        return f"bursts of {point['burst']:g} every {point['burst_every']:g} s, {records}"
    return f"batch {point['batch_ms']:g} ms, {point['rate']:g}/s"


def is_shape(point: dict[str, Any]) -> bool:
    """One of issue 15's shapes (not a point of the kind shape's sweeps)."""
    return bool(point.get("arrival", "poisson") != "poisson"
                or point.get("batch_record", "python") != "python")


def _ours(row: dict[str, Any], alone: float | None) -> dict[str, Any]:
    """One of our scenarios' figures; its counts from the ledger when it kept one."""
    gaps = row.get("yield_interval_ms") or {}
    ledger = row.get("ledger") or {}
    has_batch = row.get("batch_records_per_s") is not None and row.get("mode") != "stream"
    return {
        "stream_p50_ms": row.get("stream_p50_ms"), "stream_p99_ms": row.get("stream_p99_ms"),
        "stream_max_ms": row.get("stream_max_ms"),
        "batch_throughput_rel": ratio(row.get("batch_records_per_s"), alone),
        "suspensions": row.get("suspensions") if has_batch else None,
        "yield_p50_ms": gaps.get("p50") if has_batch else None,
        "yield_p99_ms": gaps.get("p99") if has_batch else None,
        "yield_max_ms": gaps.get("max") if has_batch else None,
        "steal_pct": (None if row.get("executor_steal_fraction") is None
                      else 100 * row["executor_steal_fraction"]),
        **{k: ledger.get(k) for k in COUNTS},
        **_service(ledger),
    }


def _service(figures: dict[str, Any]) -> dict[str, Any]:
    """How its bursts were served (summary.burst_service's figures), when it had bursts."""
    served = figures.get("burst_served_ms") or {}
    gaps = figures.get("answer_gap_ms") or {}
    return {"burst_p50_ms": served.get("p50"), "burst_max_ms": served.get("max"),
            "gap_p50_ms": gaps.get("p50")}


def _peer_row(row: dict[str, Any]) -> dict[str, Any]:
    """A peer's figures: an event still unanswered after its grace counts as lost; a peer's
    callback runs once per event, so none is answered twice."""
    out = {m: row.get(m) for m in (*METRICS, *SHAPE_METRICS)}
    events = (row.get("records") or {}).get("stream_events")
    unfinished = row.get("stream_unfinished") or 0
    out.update(events_in=events, results_out=None if events is None else events - unfinished,
               lost=None if events is None else unfinished,
               answered_twice=None if events is None else 0, **_service(row))
    return out


def run_rows(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One repetition at one point -> {system: {metric: value}}; failed peers carry `error`.
    "batch alone" is a row too (its yield interval is the batch records' own)."""
    scenarios = run.get("runtime", {})
    alone = (scenarios.get("batch_alone") or {}).get("batch_records_per_s")
    rows: dict[str, dict[str, Any]] = {}
    if "stream_alone" in scenarios:
        rows["stream alone"] = _ours(scenarios["stream_alone"], None)
        rows["stream alone"]["batch_throughput_rel"] = None
    if "batch_alone" in scenarios:
        rows[BATCH_ALONE] = _ours(scenarios["batch_alone"], alone)
    for policy in OURS:
        if policy in scenarios:
            rows[policy] = _ours(scenarios[policy], alone)
    for peer, row in run.get("peers", {}).items():
        if row.get("failed"):
            rows[peer] = {m: None for m in (*METRICS, *SHAPE_METRICS, *COUNTS)} | {
                "error": row.get("error", "")}
        else:
            rows[peer] = _peer_row(row)
    return rows


def aggregate(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Repetitions of one point -> {system: {metric: spread, count: sum, 'errors': [...]}}
    (a count is None when no repetition had it)."""
    per_system: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        for system, row in run_rows(run).items():
            per_system.setdefault(system, []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for system, rows in per_system.items():
        out[system] = {m: spread(row.get(m) for row in rows) for m in (*METRICS, *SHAPE_METRICS)}
        for count in COUNTS:
            present = [row[count] for row in rows if row.get(count) is not None]
            out[system][count] = sum(present) if present else None
        out[system]["errors"] = [row["error"] for row in rows if row.get("error")]
    return out


def _cell(s: dict[str, Any], digits: int = 1) -> str:
    if s["median"] is None:
        return "-"
    if s["n"] == 1:
        return f"{s['median']:.{digits}f}"
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"


def figure(value: Any, digits: int = 1) -> str:
    """A raw figure (one run) or a spread over repetitions."""
    if isinstance(value, dict):
        return _cell(value, digits)
    return "-" if value is None else f"{value:.{digits}f}"


def _answered(row: dict[str, Any]) -> str:
    """Results out, and what is wrong with them if anything."""
    out = row.get("results_out")
    if out is None:
        return "-"
    bad = [f"{row[k]} {word}" for k, word in (("lost", "lost"), ("answered_twice", "twice"))
           if row.get(k)]
    return f"{out}" + (f" ({', '.join(bad)})" if bad else "")


def service_line(rows: dict[str, dict[str, Any]]) -> list[str]:
    """One line: how each system served its bursts (one core runs a burst's events one after
    the other, so the last waits for all the others)."""
    cells = [f"{system} {figure(row.get('burst_p50_ms'))} / {figure(row.get('burst_max_ms'))}"
             f" ({figure(row.get('gap_p50_ms'), 2)})"
             for system, row in rows.items() if figure(row.get("burst_p50_ms")) != "-"]
    if not cells:
        return []
    return ["Bursts served, from the emission to the burst's last result, p50 / max ms (and "
            "between two results of a burst, p50 ms): " + "; ".join(cells) + "."]


def steal_line(rows: dict[str, dict[str, Any]]) -> list[str]:
    """One line: how much of the executor's core the hypervisor took in each of our runs (the
    batch throughput is per second it left us: steal.py)."""
    cells = [f"{system} {figure(row.get('steal_pct'))}%" for system, row in rows.items()
             if figure(row.get("steal_pct")) != "-"]
    if not cells:
        return []
    return ["The executor's core, taken by the hypervisor in the window (/proc/stat steal; our "
            "batch throughput is per second it left us): " + "; ".join(cells) + "."]


def shape_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    """The table of one of issue 15's shapes: rows of one run (raw figures) or aggregated over
    repetitions (spreads, counts summed)."""
    lines = ["| system | stream p50 ms | stream p99 ms | stream max ms | events in | results out "
             "| batch throughput (rel.) | suspensions | batch yield interval p99 / max ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for system, row in rows.items():
        if row.get("error") or (row.get("errors") and figure(row.get("stream_p99_ms")) == "-"):
            error = row.get("error") or row["errors"][0]
            flat = " ".join(str(error).split())[:120].replace("|", "/")
            lines.append(f"| {system} | FAILED: {flat} | | | | | | | |")
            continue
        events = row.get("events_in")
        gaps = (f"{figure(row.get('yield_p99_ms'))} / {figure(row.get('yield_max_ms'))}"
                if figure(row.get("yield_max_ms")) != "-" else "-")
        lines.append(
            f"| {system} | {figure(row.get('stream_p50_ms'))} | "
            f"{figure(row.get('stream_p99_ms'))} | {figure(row.get('stream_max_ms'))} | "
            f"{'-' if events is None else events} | {_answered(row)} | "
            f"{figure(row.get('batch_throughput_rel'), 3)} | "
            f"{figure(row.get('suspensions'), 0)} | {gaps} |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        "# Benchmark: neptune against its peers",
        "",
        f"One executor core (CPU {cfg['executor_cpu']}), the driver on CPU {cfg['driver_cpu']}; "
        f"{cfg['loops_per_record']} loops per ~10 us record; stream tasks "
        f"~{cfg['stream_ms']:g} ms, Poisson arrivals (bursts where a heading says so). Each "
        f"run: warm-up excluded, then a measured window; {cfg['repetitions']} repetition(s) "
        "per point. Cells: median [min-max] over repetitions. Load average at the end: "
        f"{', '.join(f'{v:.2f}' for v in result['machine']['loadavg_at_end'])}.",
        "",
    ]
    if result.get("skipped"):
        lines += [f"Skipped for the time budget: {', '.join(result['skipped'])}.", ""]
    for point in result["points"]:
        agg = point["aggregate"]
        if is_shape(point["point"]):
            lines += [f"## {point_key(point['point'])}", "", *shape_table(agg), "",
                      *service_line(agg), "", *steal_line(agg), "",
                      *_shape_target_lines(point), ""]
            continue
        lines += [f"## {point_key(point['point'])}", "",
                  "| system | stream p50 ms | stream p99 ms | batch throughput (rel.) |",
                  "|---|---:|---:|---:|"]
        for system, row in agg.items():
            if system == BATCH_ALONE:
                continue
            if row["errors"] and row["stream_p99_ms"]["median"] is None:
                error = " ".join(str(row["errors"][0]).split())[:120].replace("|", "/")
                lines.append(f"| {system} | FAILED: {error} | | |")
                continue
            lines.append(f"| {system} | {_cell(row['stream_p50_ms'])} | "
                         f"{_cell(row['stream_p99_ms'])} | "
                         f"{_cell(row['batch_throughput_rel'], 3)} |")
        lines.append("")
    lines += _suspension_table(result)
    lines += _sweep_table(result, "batch_ms", "Stream p99 (ms) against batch task length "
                          f"(stream rate {cfg['headline_rate']:g}/s)")
    lines += _sweep_table(result, "rate", "Stream p99 (ms) against stream arrival rate "
                          f"(batch tasks {cfg['headline_batch_ms']:g} ms)")
    return "\n".join(lines) + "\n"


def _suspension_table(result: dict[str, Any]) -> list[str]:
    """neptune's send-to-start latency of preempting stream tasks, per point."""
    lines = ["## Suspension latency (neptune; driver send to stream task start, preempting)", "",
             "| point | p50 us | p99 us |", "|---|---:|---:|"]
    for point in result["points"]:
        figures = [run["runtime"]["neptune"]["send_to_start_us"] for run in point["runs"]
                   if "neptune" in run.get("runtime", {})]
        if figures:
            lines.append(f"| {point_key(point['point'])} | "
                         f"{_cell(spread(f['p50'] for f in figures), 0)} | "
                         f"{_cell(spread(f['p99'] for f in figures), 0)} |")
    return [*lines, ""]


def _shape_target_lines(point: dict[str, Any]) -> list[str]:
    """Issue 15's targets at one shape point, on the medians over repetitions."""
    from .report import shape_checks, verdicts

    medians = {system: {k: (v["median"] if isinstance(v, dict) else v) for k, v in row.items()}
               for system, row in point["aggregate"].items()}
    checks = verdicts(shape_checks(point["point"], medians))
    lines = ["| target (medians) | value | bound | met |", "|---|---:|---:|---|"]
    for name, check in checks.items():
        lines.append(f"| {name} | {figure(check['value'], 3)} | {figure(check['bound'], 3)} | "
                     f"{'yes' if check['ok'] else 'NO'} |")
    return lines


def sweep(result: dict[str, Any], axis: str) -> list[dict[str, Any]]:
    """The points of one sweep, in axis order: batch_ms at the headline rate or the reverse
    (the kind shape's points only)."""
    cfg = result["config"]
    fixed, value = ("rate", cfg["headline_rate"]) if axis == "batch_ms" else (
        "batch_ms", cfg["headline_batch_ms"])
    points = [p for p in result["points"]
              if p["point"][fixed] == value and not is_shape(p["point"])]
    return sorted(points, key=lambda p: float(p["point"][axis]))


def _sweep_table(result: dict[str, Any], axis: str, title: str) -> list[str]:
    points = sweep(result, axis)
    if len(points) < 2:
        return []
    unit = "ms" if axis == "batch_ms" else "/s"
    systems = list(dict.fromkeys(s for p in points for s in p["aggregate"] if s != BATCH_ALONE))
    head = " | ".join(f"{p['point'][axis]:g} {unit}" for p in points)
    lines = [f"## {title}", "", f"| system | {head} |", "|---|" + "---:|" * len(points)]
    for system in systems:
        cells = [_cell(p["aggregate"][system]["stream_p99_ms"]) if system in p["aggregate"]
                 else "-" for p in points]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return [*lines, ""]
