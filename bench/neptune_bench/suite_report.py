"""The full suite's figures (pure): per run, per system; aggregated over repetitions; Markdown."""

from __future__ import annotations

from typing import Any

from neptune_runtime.policies import POLICIES

from .summary import ratio, spread

OURS = tuple(POLICIES)
METRICS = ("stream_p50_ms", "stream_p99_ms", "batch_throughput_rel")


def point_key(point: dict[str, float]) -> str:
    return f"batch {point['batch_ms']:g} ms, {point['rate']:g}/s"


def run_rows(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One repetition at one point -> {system: {metric: value}}; failed peers carry `error`."""
    scenarios = run.get("runtime", {})
    alone = (scenarios.get("batch_alone") or {}).get("batch_records_per_s")
    rows: dict[str, dict[str, Any]] = {}
    if "stream_alone" in scenarios:
        row = scenarios["stream_alone"]
        rows["stream alone"] = {"stream_p50_ms": row["stream_p50_ms"],
                                "stream_p99_ms": row["stream_p99_ms"],
                                "batch_throughput_rel": None}
    for policy in OURS:
        if policy in scenarios:
            row = scenarios[policy]
            rows[policy] = {"stream_p50_ms": row["stream_p50_ms"],
                            "stream_p99_ms": row["stream_p99_ms"],
                            "batch_throughput_rel": ratio(row["batch_records_per_s"], alone)}
    for peer, row in run.get("peers", {}).items():
        if row.get("failed"):
            rows[peer] = {m: None for m in METRICS} | {"error": row.get("error", "")}
        else:
            rows[peer] = {m: row.get(m) for m in METRICS}
    return rows


def aggregate(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Repetitions of one point -> {system: {metric: spread, 'errors': [...]}}."""
    per_system: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        for system, row in run_rows(run).items():
            per_system.setdefault(system, []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for system, rows in per_system.items():
        out[system] = {m: spread(row.get(m) for row in rows) for m in METRICS}
        out[system]["errors"] = [row["error"] for row in rows if row.get("error")]
    return out


def _cell(s: dict[str, Any], digits: int = 1) -> str:
    if s["median"] is None:
        return "-"
    if s["n"] == 1:
        return f"{s['median']:.{digits}f}"
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        "# Benchmark: neptune against its peers",
        "",
        f"One executor core (CPU {cfg['executor_cpu']}), the driver on CPU {cfg['driver_cpu']}; "
        f"{cfg['loops_per_record']} loops per ~10 us record; stream tasks "
        f"~{cfg['stream_ms']:g} ms, Poisson arrivals. Each run: warm-up excluded, then a "
        f"measured window; {cfg['repetitions']} repetition(s) per point. Cells: median "
        "[min-max] over repetitions. Load average at the end: "
        f"{', '.join(f'{v:.2f}' for v in result['machine']['loadavg_at_end'])}.",
        "",
    ]
    if result.get("skipped"):
        lines += [f"Skipped for the time budget: {', '.join(result['skipped'])}.", ""]
    for point in result["points"]:
        agg = point["aggregate"]
        lines += [f"## {point_key(point['point'])}", "",
                  "| system | stream p50 ms | stream p99 ms | batch throughput (rel.) |",
                  "|---|---:|---:|---:|"]
        for system, row in agg.items():
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


def sweep(result: dict[str, Any], axis: str) -> list[dict[str, Any]]:
    """The points of one sweep, in axis order: batch_ms at the headline rate or the reverse."""
    cfg = result["config"]
    fixed, value = ("rate", cfg["headline_rate"]) if axis == "batch_ms" else (
        "batch_ms", cfg["headline_batch_ms"])
    points = [p for p in result["points"] if p["point"][fixed] == value]
    return sorted(points, key=lambda p: float(p["point"][axis]))


def _sweep_table(result: dict[str, Any], axis: str, title: str) -> list[str]:
    points = sweep(result, axis)
    if len(points) < 2:
        return []
    unit = "ms" if axis == "batch_ms" else "/s"
    systems = list(dict.fromkeys(s for p in points for s in p["aggregate"]))
    head = " | ".join(f"{p['point'][axis]:g} {unit}" for p in points)
    lines = [f"## {title}", "", f"| system | {head} |", "|---|" + "---:|" * len(points)]
    for system in systems:
        cells = [_cell(p["aggregate"][system]["stream_p99_ms"]) if system in p["aggregate"]
                 else "-" for p in points]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return [*lines, ""]
