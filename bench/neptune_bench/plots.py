"""PNG plots of the full suite (matplotlib, no display needed)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from .suite_report import BATCH_ALONE, is_shape, sweep
from .summary import empirical_cdf

COLORS = {"neptune": "#d62728", "fair": "#1f77b4", "fifo": "#7f7f7f", "kill": "#9467bd",
          "spark_fair": "#ff7f0e", "dask_priority": "#2ca02c", "os_priority": "#000000",
          "stream alone": "#17becf"}


def _pyplot() -> Any:
    # plain modules: type checking must not need the optional package
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")  # files only: no display on a server or in CI
    return importlib.import_module("matplotlib.pyplot")


def _headline(result: dict[str, Any]) -> dict[str, Any] | None:
    cfg = result["config"]
    for point in result["points"]:
        if (point["point"]["batch_ms"] == cfg["headline_batch_ms"]
                and point["point"]["rate"] == cfg["headline_rate"]
                and not is_shape(point["point"])):
            found: dict[str, Any] = point
            return found
    return None


def _curves(point: dict[str, Any]) -> dict[str, tuple[list[float], list[float], bool]]:
    """System -> (ms, fraction, from histogram buckets?) pooled over the repetitions."""
    curves: dict[str, tuple[list[float], list[float], bool]] = {}
    runs = point["runs"]
    for name in ("stream_alone", "fifo", "fair", "kill", "neptune"):
        sums: dict[float, list[float]] = {}
        for run in runs:
            for bound, fraction in run["runtime"].get(name, {}).get("stream_latency_cdf", []):
                sums.setdefault(bound, []).append(fraction)
        if sums:
            bounds = sorted(sums)
            label = "stream alone" if name == "stream_alone" else name
            curves[label] = (bounds, [sum(sums[b]) / len(sums[b]) for b in bounds], True)
    for peer in ("spark_fair", "dask_priority", "os_priority"):
        values = sorted(v for run in runs
                        for v in run["peers"].get(peer, {}).get("phases", {})
                        .get("both", {}).get("latencies_ms", []))
        if values:
            cdf = empirical_cdf(values, points=400)
            curves[peer] = ([x for x, _ in cdf], [y for _, y in cdf], False)
    return curves


def latency_cdf(result: dict[str, Any], path: str) -> bool:
    point = _headline(result)
    if point is None:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for system, (xs, ys, bucketed) in _curves(point).items():
        ax.step(xs, ys, where="post", color=COLORS.get(system), marker="o" if bucketed else None,
                markersize=3, label=system + (" (histogram buckets)" if bucketed else ""))
    ax.set_xscale("log")
    ax.set_xlabel("stream latency, event in to result out (ms, log scale)")
    ax.set_ylabel("fraction of events")
    ax.set_title(f"Stream latency CDF: batch tasks {point['point']['batch_ms']:g} ms, "
                 f"{point['point']['rate']:g} events/s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def p99_sweep(result: dict[str, Any], axis: str, path: str) -> bool:
    points = sweep(result, axis)
    if len(points) < 2:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 5))
    systems = list(dict.fromkeys(s for p in points for s in p["aggregate"] if s != BATCH_ALONE))
    for system in systems:
        xs, ys, lo, hi = [], [], [], []
        for p in points:
            cell = p["aggregate"].get(system, {}).get("stream_p99_ms", {})
            if cell.get("median") is None:
                continue
            xs.append(p["point"][axis])
            ys.append(cell["median"])
            lo.append(cell["median"] - cell["min"])
            hi.append(cell["max"] - cell["median"])
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=system,
                        color=COLORS.get(system))
    ax.set_xscale("log")
    ax.set_yscale("log")
    # label the swept values themselves: log-scale defaults print 2x10^1 for a narrow range
    ticks = [float(p["point"][axis]) for p in points]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.minorticks_off()
    fixed = (f"stream rate {result['config']['headline_rate']:g}/s" if axis == "batch_ms"
             else f"batch tasks {result['config']['headline_batch_ms']:g} ms")
    ax.set_xlabel("batch task length (ms)" if axis == "batch_ms"
                  else "stream arrival rate (events/s)")
    ax.set_ylabel("stream p99 latency (ms, log scale)")
    ax.set_title(f"Stream p99 ({fixed}); bars: min-max over repetitions")
    ax.grid(True, which="both", alpha=0.3)
    # outside the axes: the lines span the whole plot, any corner would hide one
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def throughput_bars(result: dict[str, Any], path: str) -> bool:
    point = _headline(result)
    if point is None:
        return False
    rows = [(s, r["batch_throughput_rel"]) for s, r in point["aggregate"].items()
            if r["batch_throughput_rel"]["median"] is not None and s != BATCH_ALONE]
    if not rows:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = [s for s, _ in rows]
    medians = [c["median"] for _, c in rows]
    errors = [[c["median"] - c["min"] for _, c in rows], [c["max"] - c["median"] for _, c in rows]]
    ax.bar(names, medians, yerr=errors, capsize=4, color=[COLORS.get(n, "#999999") for n in names])
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    for i, value in enumerate(medians):
        ax.text(i, value + 0.02, f"{value:.2f}", ha="center", fontsize=9)
    ax.set_ylabel("batch throughput relative to batch alone")
    ax.set_ylim(0, max(1.15, max(medians) + 0.1))
    ax.set_title(f"Batch throughput with the stream job: batch tasks "
                 f"{point['point']['batch_ms']:g} ms, {point['point']['rate']:g} events/s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_plots(result: dict[str, Any], out: str) -> list[str]:
    made = []
    drawers: tuple[tuple[str, Callable[[str], bool]], ...] = (
        ("latency_cdf.png", lambda p: latency_cdf(result, p)),
        ("p99_vs_batch_length.png", lambda p: p99_sweep(result, "batch_ms", p)),
        ("p99_vs_rate.png", lambda p: p99_sweep(result, "rate", p)),
        ("batch_throughput.png", lambda p: throughput_bars(result, p)),
    )
    for name, draw in drawers:
        path = os.path.join(out, name)
        if draw(path):
            made.append(path)
    return made
