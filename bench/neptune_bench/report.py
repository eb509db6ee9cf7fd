"""Targets of the runtime issue and the Markdown table of a benchmark result (pure)."""

from __future__ import annotations

from typing import Any


def check_targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    policies = result["policies"]
    neptune = policies["neptune"]
    alone_p99 = result["stream_alone"]["stream_p99_ms"] or 0.0
    checks: dict[str, tuple[float | None, float | None, str]] = {
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
    out = {}
    for name, (value, bound, op) in checks.items():
        ok = value is not None and bound is not None and (
            value <= bound if op == "<=" else value >= bound if op == ">=" else value > bound)
        out[name] = {"value": value, "bound": bound, "ok": bool(ok)}
    return out


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


def markdown(result: dict[str, Any]) -> str:
    alone = result["stream_alone"]
    susp = result["suspension_latency_us"]
    local = result["suspension_arrival_to_start_us"]
    lines = [
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
        "",
        "| target | value | bound | met |",
        "|---|---:|---:|---|",
    ]
    for name, check in result["targets"].items():
        lines.append(f"| {name} | {_f(check['value'], 3)} | {_f(check['bound'], 3)} | "
                     f"{'yes' if check['ok'] else 'NO'} |")
    return "\n".join(lines)
