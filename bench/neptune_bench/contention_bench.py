"""`make bench-contention`: two applications compete for one node's CPU, with the operator's CPU
weight by rank on and off (issue 14, item 3).

- `high` (namespace neptune-bench-high, priority 500): the quick benchmark's workload
  (cluster_bench: a batch job of ~100 ms tasks and a stream job of 1 ms tasks, SLO 10 ms, events
  POSTed Poisson at 20/s), one executor pod of one slot.
- `low` (namespace neptune-bench-low, priority 0): the batch job alone, on two executor pods,
  enough to keep both of the node's cores busy.

Both apps run from start to end, with the same pods; only the operator's `cpuByRank` setting
changes between rounds (a helm upgrade of the benchmark's release). On, the operator lowers
low's executors' CPU requests in place to a quarter (cpushare.py), so that under contention
high's executor pod has 4x the cgroup weight of each of low's. Off, every executor keeps its
spec's 500m: low's two pods then hold two thirds of the node's weight against high's one
third. Each round waits until the kubelet applied the requests, then measures a window of high
(cluster_bench.measure: warm-up, reset, window, drain) while low's batch records are counted
over the same time. Rounds are interleaved (on, off, off, on, ...).

    python -m neptune_bench.contention_bench --json bench/results/contention.json \\
        --markdown bench/results/contention.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import cluster_bench as cb
from .runner import Point, machine
from .work import calibrate

try:
    from e2e.tests.kube import Kubectl, wait_until
    from e2e.tests.test_priorities import applied, events
except ModuleNotFoundError:  # run from outside the checkout's root: the e2e helpers are there
    sys.path.insert(0, str(cb.REPO_DIR))
    from e2e.tests.kube import Kubectl, wait_until
    from e2e.tests.test_priorities import applied, events

HIGH = cb.Scenario("high", "both", "neptune", "pods")
LOW = cb.Scenario("low", "batch", "neptune", "pods")
NAMESPACES = {"high": "neptune-bench-high", "low": "neptune-bench-low"}
PRIORITY = {"high": 500, "low": 0}
LOW_EXECUTORS = 2
REQUEST = cb.EXECUTOR_RESOURCES["requests"]["cpu"]  # every executor's request in its spec
LOWERED = "125m"  # a quarter: low is one priority level below high
STATUS_INTERVAL = 3  # the operator's status round: resizes follow within one
DRIVER_CPU = "100m"  # each driver's CPU request (limit 1), as examples/online-learning.yaml
WARMUP_S = 3.0
MEASURE_S = 20.0
# What the operator posts about priorities and CPU weight (handlers.py)
EVENT_REASONS = ("CPUShareChanged", "ResizeFailed", "PriorityRaised", "PriorityLowered")


def plan(rounds: int) -> list[bool]:
    """cpuByRank per measured round: on, off, off, on, on, off, ... (`rounds` of each), so
    that neither side always goes first or always follows a helm upgrade the same way."""
    return [side for r in range(rounds) for side in ((True, False) if r % 2 == 0
                                                     else (False, True))]


def _spread(values: list[float | None]) -> dict[str, float | None]:
    present = [v for v in values if v is not None]
    return {"median": cb._median(values), "min": min(present, default=None),
            "max": max(present, default=None), "n": len(present)}


FIGURES = ("stream_p50_ms", "stream_p99_ms", "slo_attainment", "high_batch_records_per_s",
           "low_batch_records_per_s")


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per side (ranking on, off): each figure's median, min and max over its rounds; and the
    ratios on/off of the medians."""
    sides = {side: {k: _spread([r.get(k) for r in rows if r.get("cpu_by_rank") is on
                               and not r.get("error")]) for k in FIGURES}
             for side, on in (("on", True), ("off", False))}
    ratios = {k: cb._ratio(sides["on"][k]["median"], sides["off"][k]["median"])
              for k in FIGURES}
    return {"sides": sides, "on_over_off": ratios}


def batch_records(target: cb.PodTarget) -> int:
    return int(target.status()["jobs"]["batch"]["records"])


def wait_applied(kubectl: Kubectl, lowered: bool) -> None:
    """Until the kubelet reports on every executor the request the operator asks for: the
    spec's, or for low's `lowered` a quarter."""
    wanted = {"high": REQUEST, "low": LOWERED if lowered else REQUEST}
    for name, cpu in wanted.items():
        app = HIGH.app_name if name == "high" else LOW.app_name
        wait_until(f"{name}'s executors at {cpu}",
                   lambda n=NAMESPACES[name], a=app, c=cpu: applied(  # type: ignore[misc]
                       kubectl, n, a, c), timeout=120, interval=1)


def driver_resources(cpu: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}


@contextlib.contextmanager
def contention(kubectl: Kubectl, loops: int, priorities: dict[str, int],
               log: Callable[[str], None], driver_cpu: str = DRIVER_CPU,
               feedback: dict[str, Any] | None = None,
               **operator: Any) -> Iterator[dict[str, cb.PodTarget]]:
    """The benchmark's operator release (`feedback`, `operator`: its chart values) and the two
    apps at `priorities`, Running: name -> target. All gone afterwards."""
    namespaces = list(NAMESPACES.values())
    others = cb.other_operators(kubectl)
    if others:
        raise RuntimeError(f"another Neptune operator runs ({', '.join(others)}) and would "
                           "reconcile the benchmark's apps too; run when it is gone")
    cb.install_operator(kubectl, namespaces, feedback=feedback,
                        statusInterval=STATUS_INTERVAL, **operator)
    try:
        with contextlib.ExitStack() as stack:
            targets = {}
            for name, scenario, replicas in (("high", HIGH, 1), ("low", LOW, LOW_EXECUTORS)):
                log(f"  starting {name} ({replicas} executor pod(s), priority "
                    f"{priorities[name]})")
                source = cb.app_source(cb.settings(scenario, loops))
                executors = {"replicas": replicas, "slotsPerPod": 1,
                             "resources": cb.EXECUTOR_RESOURCES}
                targets[name] = stack.enter_context(cb.pod_app(
                    kubectl, scenario, source, NAMESPACES[name], priority=priorities[name],
                    executors=executors, driver={"resources": driver_resources(driver_cpu)}))
            yield targets
    finally:
        log("  cleaning up: the benchmark's namespaces and operator release")
        cb.uninstall(kubectl, namespaces)


def stream_window(target: cb.PodTarget, seconds: float, rate: float,
                  first: int = 0) -> dict[str, Any]:
    """The stream job's /status figures over `seconds` of Poisson events (from index `first`),
    counted from a reset, once every event is answered."""
    target.reset()
    with cb.PoissonPoster(target.ingest_url, target.ingest_token, rate, first):
        time.sleep(seconds)
    stream: dict[str, Any] = cb._drained(target)["jobs"]["stream"]
    return stream


def operator_events(kubectl: Kubectl) -> dict[str, dict[str, list[str]]]:
    """Per app, the messages of the operator's Events about priorities and CPU weight."""
    return {name: {reason: events(kubectl, ns, reason) for reason in EVENT_REASONS}
            for name, ns in NAMESPACES.items()}


def run(rounds: int, warmup: float, window: float, log: Callable[[str], None],
        loops: int | None = None, driver_cpu: str = DRIVER_CPU) -> dict[str, Any]:
    loops = calibrate() if loops is None else loops
    point = Point()
    started = time.monotonic()
    result: dict[str, Any] = {
        "config": {"warmup_s": warmup, "measure_s": window, "loops_per_record": loops,
                   "rate_per_s": point.rate, "executor_resources": cb.EXECUTOR_RESOURCES,
                   "driver_resources": driver_resources(driver_cpu),
                   "low_executors": LOW_EXECUTORS, "lowered": LOWERED, "priorities": PRIORITY,
                   "namespaces": NAMESPACES, "status_interval_s": STATUS_INTERVAL},
        "uptime_start": cb._uptime(), "rounds": []}
    log(f"contention bench: {2 * rounds} rounds; load at start: {result['uptime_start']}")
    kubectl = Kubectl()
    try:
        with contention(kubectl, loops, PRIORITY, log, driver_cpu, cpuByRank=True) as targets:
            for index, on in enumerate(plan(rounds)):
                log(f"[{index + 1}/{2 * rounds}, {cb._clock(time.monotonic() - started)}] "
                    f"cpuByRank {'on' if on else 'off'}, load {os.getloadavg()[0]:.2f}")
                cb.install_operator(kubectl, list(NAMESPACES.values()),
                                    statusInterval=STATUS_INTERVAL, cpuByRank=on)
                wait_applied(kubectl, lowered=on)
                low_before, t0 = batch_records(targets["low"]), time.monotonic()
                row = cb.measure(targets["high"], HIGH, warmup, window, point.rate)
                low_rate = (batch_records(targets["low"]) - low_before) / (time.monotonic() - t0)
                row.update(cpu_by_rank=on, low_batch_records_per_s=low_rate,
                           high_batch_records_per_s=row.pop("batch_records_per_s"),
                           loadavg=list(os.getloadavg()))
                row.pop("histograms", None)
                result["rounds"].append(row)
                log(f"    high: stream p99 {cb._f(row['stream_p99_ms'])} ms, SLO attainment "
                    f"{cb._f(row['slo_attainment'], 3)}, batch "
                    f"{row['high_batch_records_per_s']:.0f}/s; low: batch {low_rate:.0f}/s")
            result["events"] = operator_events(kubectl)
    finally:
        kubectl.close()
    result.update(summarize(result["rounds"]))
    result.update(uptime_end=cb._uptime(), machine=machine(),
                  elapsed_s=round(time.monotonic() - started, 1))
    return result


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        "# Two applications on one node: CPU weight by rank on and off (issue 14, item 3)", "",
        f"`high` (priority {cfg['priorities']['high']}): the quick workload, stream SLO 10 ms, "
        f"{cfg['rate_per_s']:g} events/s, one executor pod; `low` (priority "
        f"{cfg['priorities']['low']}): its batch job alone on {cfg['low_executors']} executor "
        f"pods. Every executor asks {REQUEST} CPU, limit 1; on, the operator lowers low's to "
        f"{cfg['lowered']} in place; each driver asks "
        f"{cfg['driver_resources']['requests']['cpu']}. Window {cfg['measure_s']:g} s a round, "
        "the same pods throughout, rounds interleaved. Produced by `make bench-contention` "
        "(bench/neptune_bench/contention_bench.py).", "",
        f"Load: at start `{result['uptime_start']}`; at end `{result['uptime_end']}`.", "",
        "| round | cpuByRank | high stream p50 ms | high stream p99 ms | high SLO attainment "
        "| high batch records/s | low batch records/s | events in / results |",
        "|---:|---|---:|---:|---:|---:|---:|---|"]
    for i, r in enumerate(result["rounds"]):
        ev = r.get("events") or {}
        lines.append(
            f"| {i + 1} | {'on' if r['cpu_by_rank'] else 'off'} | {cb._f(r['stream_p50_ms'])} "
            f"| {cb._f(r['stream_p99_ms'])} | {cb._f(r['slo_attainment'], 3)} "
            f"| {cb._f(r['high_batch_records_per_s'], 0)} "
            f"| {cb._f(r['low_batch_records_per_s'], 0)} "
            f"| {ev.get('driver_events')} / {ev.get('results')} |")
    lines += ["", "Median [min-max] per side, and on/off of the medians:", "",
              "| figure | on | off | on / off |", "|---|---:|---:|---:|"]
    for k in FIGURES:
        on, off = result["sides"]["on"][k], result["sides"]["off"][k]
        digits = 3 if k == "slo_attainment" else 1
        lines.append(f"| {k} | {cb._f(on['median'], digits)} [{cb._f(on['min'], digits)}-"
                     f"{cb._f(on['max'], digits)}] | {cb._f(off['median'], digits)} "
                     f"[{cb._f(off['min'], digits)}-{cb._f(off['max'], digits)}] "
                     f"| {cb._f(result['on_over_off'][k], 3)} |")
    lines += ["", "Events the operator posted:", ""]
    for name, reasons in result.get("events", {}).items():
        for reason, messages in reasons.items():
            if messages:
                lines.append(f"- {name}: {len(messages)} x {reason}, e.g. `{messages[-1]}`")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neptune_bench.contention_bench",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default="bench/results/contention.json")
    parser.add_argument("--markdown", default="bench/results/contention.md")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side (default 3)")
    parser.add_argument("--warmup", type=float, default=WARMUP_S)
    parser.add_argument("--measure", type=float, default=MEASURE_S)
    parser.add_argument("--driver-cpu", default=DRIVER_CPU,
                        help=f"each driver's CPU request (default {DRIVER_CPU})")
    parser.add_argument("--loops", type=int, default=None,
                        help="iterations per ~10 us record (default: calibrated now)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run(args.rounds, args.warmup, args.measure,
                 lambda line: print(line, file=sys.stderr, flush=True), loops=args.loops,
                 driver_cpu=args.driver_cpu)
    with open(args.json, "w") as handle:
        json.dump(result, handle, indent=1)
    report = markdown(result)
    with open(args.markdown, "w") as handle:
        handle.write(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
