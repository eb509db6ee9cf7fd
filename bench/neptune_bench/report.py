"""Targets of the runtime issues and the Markdown table of a benchmark result (pure).

Issue 15's targets, per shape (`shape_checks`), read as follows:
- bursts with ~25 ms C-call records: neptune's stream p99 at most 2 records plus the burst's own
  service time, where a record is batch alone's yield interval p50 in the same shape (per task,
  its longest time between two yield points: its slowest record, measured in the same run) and
  the burst's service time is stream alone's p99 in the same shape (the last event of a burst
  waits for the 19 before it on one core); and at most 1/3 of fair's;
- bursts with the default ~10 us records: the issue says "at most 2x its non-burst p99"; the
  20th event of a burst waits for the 19 before it on one core (~20 ms), which no scheduler can
  remove, so the reference is stream alone's p99 under the same bursts;
- neptune's batch throughput relative to batch alone in the same shape at least 0.9;
- events in = results out: summed over every system that ran (a failed peer is reported as
  failed, not counted), the events lost (unanswered 5 s after the window) and answered twice
  must be 0.
"""

from __future__ import annotations

from typing import Any

from .suite_report import BATCH_ALONE, run_rows, service_line, shape_table, steal_line

Check = tuple[float | None, float | None, str]


def shape_name(point: dict[str, Any]) -> str:
    return "bursts_sha256" if point.get("batch_record") == "sha256" else "bursts"


def _answered_check(rows: dict[str, dict[str, Any]]) -> float | None:
    """Events lost plus events answered twice over the systems that ran; None when one of
    them has no counts or no events (nothing to check is not a pass)."""
    bad = 0.0
    counted = [row for system, row in rows.items()
               if system != BATCH_ALONE and not row.get("error") and not row.get("errors")]
    if not counted:
        return None
    for row in counted:
        if not row.get("events_in") or row.get("lost") is None or row.get(
                "answered_twice") is None:
            return None
        bad += row["lost"] + row["answered_twice"]
    return bad


def shape_checks(point: dict[str, Any], rows: dict[str, dict[str, Any]]) -> dict[str, Check]:
    """Issue 15's targets at one shape, from its rows (suite_report.run_rows, or medians)."""
    name = shape_name(point)
    neptune = rows.get("neptune", {})
    p99 = neptune.get("stream_p99_ms")
    alone = rows.get("stream alone", {}).get("stream_p99_ms")
    checks: dict[str, Check] = {}
    if point.get("batch_record") == "sha256":
        record = rows.get(BATCH_ALONE, {}).get("yield_p50_ms")
        fair = rows.get("fair", {}).get("stream_p99_ms")
        checks[f"{name}: neptune stream p99 <= 2 records + stream alone's p99"] = (
            p99, None if record is None or alone is None else 2 * record + alone, "<=")
        checks[f"{name}: neptune stream p99 <= 1/3 of fair's"] = (
            p99, None if fair is None else fair / 3, "<=")
    else:
        checks[f"{name}: neptune stream p99 <= 2x stream alone's (same bursts)"] = (
            p99, None if alone is None else 2 * alone, "<=")
    checks[f"{name}: neptune batch_throughput_rel >= 0.90"] = (
        neptune.get("batch_throughput_rel"), 0.90, ">=")
    checks[f"{name}: events lost or answered twice (all systems) = 0"] = (
        _answered_check(rows), 0.0, "<=")
    return checks


def verdicts(checks: dict[str, Check]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, (value, bound, op) in checks.items():
        ok = value is not None and bound is not None and (
            value <= bound if op == "<=" else value >= bound if op == ">=" else value > bound)
        out[name] = {"value": value, "bound": bound, "ok": bool(ok)}
    return out


def kind_rows(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The kind shape's rows, as a shape's (for its events in and results out)."""
    return run_rows({"runtime": result.get("scenarios", {}), "peers": result.get("peers", {})})


def check_targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    policies = result["policies"]
    neptune = policies["neptune"]
    alone_p99 = result["stream_alone"]["stream_p99_ms"] or 0.0
    checks: dict[str, Check] = {
        "neptune suspension p99 <= 100 us": (result["suspension_latency_us"]["p99"], 100.0, "<="),
        "neptune stream p99 <= 2x stream alone": (neptune["stream_p99_ms"], 2 * alone_p99, "<="),
        "neptune batch_throughput_rel >= 0.90": (neptune["batch_throughput_rel"], 0.90, ">="),
        "fair stream p99 >= 20x neptune's": (
            policies["fair"]["stream_p99_ms"], 20 * (neptune["stream_p99_ms"] or 0.0), ">="),
        "kill wastes work": (policies["kill"]["wasted_task_seconds"], 0.0, ">"),
        "yield_overhead_rel >= 0.97": (result["yield_overhead_rel"], 0.97, ">="),
    }
    peers = result.get("peers", {})
    neptune_p99 = neptune["stream_p99_ms"] or 0.0
    for peer in ("spark_fair", "dask_priority"):
        if peer in peers:
            checks[f"{peer} stream p99 >= 10x neptune's"] = (
                peers[peer].get("stream_p99_ms"), 10 * neptune_p99, ">=")
    if "os_priority" in peers:
        floor = peers["os_priority"].get("stream_p99_ms")
        checks["neptune stream p99 <= 2x os_priority's"] = (
            neptune["stream_p99_ms"], None if floor is None else 2 * floor, "<=")
    if result.get("scenarios"):
        checks["kind: events lost or answered twice (all systems) = 0"] = (
            _answered_check(kind_rows(result)), 0.0, "<=")
    for shape in result.get("shapes", {}).values():
        checks.update(shape_checks(shape["point"], run_rows(shape)))
    return verdicts(checks)


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(str(text).split()).replace("|", "/")
    return flat if len(flat) <= limit else flat[:limit] + "..."


def _floor_lines(floor: dict[str, Any]) -> list[str]:
    """What no runtime on this machine can beat: a message to a process doing nothing else."""
    if not floor:
        return []
    return ["The machine's floor, one way from the driver's CPU to a busy-polling process on the "
            "executor's: " + "; ".join(
                f"{carrier} p50 {f['p50']:.0f} us, p99 {f['p99']:.0f} us"
                for carrier, f in floor.items()) + "."]


def _record_time_lines(times: dict[str, Any]) -> list[str]:
    """How long a batch record takes here, no runtime: a preemption waits for the one running."""
    if not times:
        return []
    return [f"Batch records on the executor's core with no runtime: p50 {times['p50']:.0f} us, "
            f"p99 {times['p99']:.0f} us, p99.9 {times['p999']:.0f} us, max {times['max']:.0f} us "
            f"({times['over_30us_per_s']:.0f} a second over 30 us); a yield point comes once per "
            "record."]


def _records_lines(result: dict[str, Any]) -> list[str]:
    """The honesty rule in the report: the records each system's tasks processed."""
    peers = result.get("peers", {})
    if not peers:
        return []
    lines = ["", "Records processed per task (same work in every system): "
             f"batch {result['config']['batch_records_per_task']}, "
             f"stream {result['config']['stream_records_per_task']}."]
    for policy in result["policies"]:
        row = result.get("scenarios", {}).get(policy, {})
        tasks, records = row.get("batch_tasks") or 0, row.get("batch_records") or 0
        lines.append(f"- {policy} (ours): {tasks} batch tasks, {records} records "
                     f"({records / tasks if tasks else 0:.0f} per task); "
                     f"{row.get('stream_events')} stream events")
    for peer, row in peers.items():
        if row.get("failed"):
            continue
        rec = row["records"]
        lines.append(
            f"- {peer}: {rec['batch_tasks']} batch tasks, {rec['batch_records']} records; "
            f"{rec['stream_events']} stream events, {rec['stream_records']} records; "
            f"verified: {'yes' if row['records_verified'] else 'NO'}"
            + (f"; {row['stream_unfinished']} stream events unfinished (counted as late)"
               if row.get("stream_unfinished") else ""))
    return lines


def _polling(result: dict[str, Any]) -> str:
    config = result.get("config", {})
    polling = config.get("polling_us")
    if not polling:
        return "polling settings not recorded"
    checks = (f"doorbell checked at every yield point, socket polled every {polling['poll_us']} "
              f"us of task time (8 times less often with a doorbell)")
    return f"{checks}; the driver rehearsed its send every {config.get('warm_us', '?')} us"


def _kind_counts(result: dict[str, Any]) -> list[str]:
    """The kind shape's events in and results out, per system (from the ledger)."""
    rows = {system: row for system, row in kind_rows(result).items()
            if row.get("events_in") is not None}
    if not rows:
        return []
    return ["Events in / results out in the measured window: " + "; ".join(
        f"{system} {row['events_in']} / {row['results_out']}"
        + (f" ({row['lost']} lost, {row['answered_twice']} twice)"
           if row.get("lost") or row.get("answered_twice") else "")
        for system, row in rows.items()) + "."]


def _warning_lines(scenarios: dict[str, Any]) -> list[str]:
    """The driver's warnings (/status `warnings`) at the end of each run of a shape: the one
    of neptune's run (or the first run that had one), and which runs had any."""
    warned = {name: row["warnings"] for name, row in scenarios.items() if row.get("warnings")}
    if not warned:
        return []
    first = (warned.get("neptune") or next(iter(warned.values())))[0]
    return ["", f"The driver warned (/status `warnings`) in {', '.join(warned)}; neptune's "
            f"run (or the first): \"{_one_line(first, 400)}\""]


def _shape_sections(result: dict[str, Any]) -> list[str]:
    """Issue 15's shapes: one table each, in the order they ran."""
    lines: list[str] = []
    for shape in result.get("shapes", {}).values():
        records = shape.get("records_per_task", {})
        lines += ["", f"## {shape['label']}", "",
                  f"Per-event stream tasks ({records.get('stream', '?')} records of ~10 us); "
                  f"batch tasks of {records.get('batch', '?')} records. Batch yield interval: "
                  "per batch task, its longest time between two yield points (/status "
                  "yield_interval_ms, p99 and max over the window's tasks).", "",
                  *shape_table(run_rows(shape)), "", *service_line(run_rows(shape))]
        stolen = steal_line(run_rows(shape))
        lines += ["", *stolen] if stolen else []
        lines += _warning_lines(shape.get("runtime", {}))
        times = shape.get("record_ms")
        if times:
            lines += ["", f"sha256 records on the executor's core with no runtime: p50 "
                      f"{times['p50']:.1f} ms, max {times['max']:.1f} ms "
                      f"({times['samples']:.0f} calls)."]
    return lines


def markdown(result: dict[str, Any]) -> str:
    alone = result["stream_alone"]
    susp = result["suspension_latency_us"]
    local = result["suspension_arrival_to_start_us"]
    config = result.get("config", {})
    lines = [
        *([f"## Kind shape: Poisson {config['rate_per_s']:g}/s, ~{config['batch_ms']:g} ms "
           "batch tasks of ~10 us records", ""] if "rate_per_s" in config else []),
        "| system | stream p50 ms | stream p99 ms | batch throughput (rel.) | wasted task s |",
        "|---|---:|---:|---:|---:|",
        f"| stream alone | {_f(alone['stream_p50_ms'])} | {_f(alone['stream_p99_ms'])} | - | - |",
    ]
    for policy, row in result["policies"].items():
        lines.append(
            f"| {policy} | {_f(row['stream_p50_ms'])} | {_f(row['stream_p99_ms'])} | "
            f"{_f(row['batch_throughput_rel'], 3)} | {_f(row['wasted_task_seconds'], 3)} |")
    for peer, row in result.get("peers", {}).items():
        if row.get("failed"):
            lines.append(f"| {peer} | FAILED: {_one_line(row.get('error', ''))} | | | |")
        else:
            lines.append(
                f"| {peer} | {_f(row['stream_p50_ms'])} | {_f(row['stream_p99_ms'])} | "
                f"{_f(row['batch_throughput_rel'], 3)} | - |")
    lines += _records_lines(result)
    lines += [
        "",
        f"Suspension latency (driver send to stream task start, preempting a batch task): "
        f"p50 {susp['p50']:.0f} us, p99 {susp['p99']:.0f} us, max {susp['max']:.0f} us; "
        f"of which on the executor (kernel arrival to start): p50 {local['p50']:.0f} us, "
        f"p99 {local['p99']:.0f} us.",
        *_floor_lines(result.get("signal_floor_us", {})),
        *_record_time_lines(result.get("record_times_us", {})),
        f"Yield-point overhead: throughput with/without = {result['yield_overhead_rel']:.4f} "
        "(fastest runs of each); per alternating pair median "
        f"{result['yield_overhead_spread'].get('median', 0.0):.4f}, "
        f"min {result['yield_overhead_spread']['min']:.4f}, "
        f"max {result['yield_overhead_spread']['max']:.4f}; {_polling(result)}.",
        *_kind_counts(result),
        *_shape_sections(result),
        "",
        "| target | value | bound | met |",
        "|---|---:|---:|---|",
    ]
    for name, check in result["targets"].items():
        lines.append(f"| {name} | {_f(check['value'], 3)} | {_f(check['bound'], 3)} | "
                     f"{'yes' if check['ok'] else 'NO'} |")
    return "\n".join(lines)
