"""Rendering of the driver's /status for the terminal (pure: status in, text out)."""

from __future__ import annotations

from typing import Any


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def render(status: dict[str, Any], elapsed: float, duration: float | None) -> str:
    bound = f" / {duration:.0f}s" if duration else ""
    lines = [
        f"app {status['app']}  policy {status['policy']}  phase {status['phase']}  "
        f"executors {status['executors']['registered']}  t={elapsed:.0f}s{bound}",
        f"{'job':<16}{'kind':<8}{'p50 ms':>9}{'p99 ms':>9}{'SLO ms':>9}{'SLO met':>9}"
        f"{'rate/s':>10}{'susp':>7}{'fail':>6}  state",
    ]
    for name, job in status["jobs"].items():
        attainment = job.get("slo_attainment")
        met = "-" if attainment is None else f"{attainment * 100:.1f}%"
        lines.append(
            f"{name[:15]:<16}{job['kind']:<8}{_fmt_ms(job.get('p50_ms')):>9}"
            f"{_fmt_ms(job.get('p99_ms')):>9}{_fmt_ms(job.get('slo_ms')):>9}{met:>9}"
            f"{job['throughput_per_s']:>10.1f}{job['suspensions']:>7}{job['failures']:>6}  "
            f"{job['state']}" + (f" epoch {job['epoch']}" if "epoch" in job else "")
        )
        if job.get("error"):
            lines.append(f"    error: {job['error'].splitlines()[0]}")
    preempt = status["preemption"]["send_to_start_us"]
    if preempt["count"]:
        lines.append(f"preemptions {int(preempt['count'])}: send-to-start p50 "
                     f"{preempt['p50']:.0f} us, p99 {preempt['p99']:.0f} us")
    return "\n".join(lines)


def summary(status: dict[str, Any], elapsed: float) -> str:
    lines = [f"summary after {elapsed:.1f}s: app {status['app']}, policy {status['policy']}"]
    for name, job in status["jobs"].items():
        if job["kind"] == "stream":
            attainment = job.get("slo_attainment")
            met = "-" if attainment is None else f"{attainment * 100:.1f}%"
            lines.append(
                f"  {name}: {job['events']} events, {job['results']} results, "
                f"p50 {_fmt_ms(job['p50_ms'])} ms, p99 {_fmt_ms(job['p99_ms'])} ms "
                f"(SLO {_fmt_ms(job['slo_ms'])} ms, met {met}), {job['suspensions']} suspensions"
            )
        else:
            lines.append(
                f"  {name}: {job['records']} records, {job['tasks_finished']} tasks, epoch "
                f"{job['epoch']}, {job['suspensions']} suspensions, {job['failures']} failures"
            )
        if job.get("error"):
            lines.append(f"    failed: {job['error'].splitlines()[0]}")
    lines.append(f"  wasted task seconds {status['wasted_task_seconds']:.3f}, "
                 f"reruns {status['reruns']}, executors lost {status['executors']['lost']}")
    lines += [f"  warning: {warning}" for warning in status.get("warnings", [])]
    return "\n".join(lines)
