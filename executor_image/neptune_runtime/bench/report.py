"""Targets of the runtime issue and the Markdown table of a benchmark result (pure)."""

from __future__ import annotations

from typing import Any


def check_targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    policies = result["policies"]
    neptune = policies["neptune"]
    alone_p99 = result["stream_alone"]["stream_p99_ms"] or 0.0
    checks = {
        "neptune suspension p99 <= 100 us": (result["suspension_latency_us"]["p99"], 100.0, "<="),
        "neptune stream p99 <= 2x stream alone": (neptune["stream_p99_ms"], 2 * alone_p99, "<="),
        "neptune batch_throughput_rel >= 0.90": (neptune["batch_throughput_rel"], 0.90, ">="),
        "fair stream p99 >= 20x neptune's": (
            policies["fair"]["stream_p99_ms"], 20 * (neptune["stream_p99_ms"] or 0.0), ">="),
        "kill wastes work": (policies["kill"]["wasted_task_seconds"], 0.0, ">"),
        "yield_overhead_rel >= 0.97": (result["yield_overhead_rel"], 0.97, ">="),
    }
    out = {}
    for name, (value, bound, op) in checks.items():
        ok = value is not None and (
            value <= bound if op == "<=" else value >= bound if op == ">=" else value > bound)
        out[name] = {"value": value, "bound": bound, "ok": bool(ok)}
    return out


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


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
    lines += [
        "",
        f"Suspension latency (driver send to stream task start, preempting a batch task): "
        f"p50 {susp['p50']:.0f} us, p99 {susp['p99']:.0f} us, max {susp['max']:.0f} us; "
        f"of which on the executor (kernel arrival to start): p50 {local['p50']:.0f} us, "
        f"p99 {local['p99']:.0f} us.",
        f"Yield-point overhead: throughput with/without = {result['yield_overhead_rel']:.4f} "
        f"(min {result['yield_overhead_spread']['min']:.4f}, "
        f"max {result['yield_overhead_spread']['max']:.4f}).",
        "",
        "| target | value | bound | met |",
        "|---|---:|---:|---|",
    ]
    for name, check in result["targets"].items():
        lines.append(f"| {name} | {_f(check['value'], 3)} | {_f(check['bound'], 3)} | "
                     f"{'yes' if check['ok'] else 'NO'} |")
    return "\n".join(lines)
