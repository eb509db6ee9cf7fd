"""Validate the simulator against the real runtime at 1, 2 and 4 executors.

The real runs use the benchmark's app with sleeping records (BENCH_WORK=sleep): four executors
and a driver on a two-core machine would otherwise share cores, and a sleeping record holds its
executor's slot as a computing one does. The simulator's mechanisms are calibrated from the
real runtime at one executor only (batch alone, the suspension latency); the stream task's
service time (a base and an exponential tail) comes from a stream-alone run at each size, where
no batch job and no policy is at work. The simulator then predicts every policy at every size;
the report gives the relative error of stream p50, p99 and batch throughput against what the
real runtime measured.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Any

from neptune_runtime.policies import POLICIES

from ..runner import run_scenario
from .engine import simulate
from .model import AppSpec, Costs, Scenario

METRICS = ("stream_p50_ms", "stream_p99_ms", "batch_throughput_rel")
TOLERANCE = 0.20


@dataclass(frozen=True)
class Workload:
    batch_ms: float = 100.0
    stream_ms: float = 1.0
    rate_per_executor: float = 20.0
    sleep_us: float = 500.0

    def env(self, executors: int) -> dict[str, str]:
        return {"BENCH_WORK": "sleep", "BENCH_SLEEP_US": str(self.sleep_us),
                "BENCH_BATCH_MS": str(self.batch_ms), "BENCH_STREAM_MS": str(self.stream_ms),
                "BENCH_RATE": str(self.rate_per_executor * executors), "BENCH_LOOPS": "1",
                "BENCH_PARTITIONS": str(partitions(executors))}


def partitions(executors: int) -> int:
    return max(4, 2 * executors)


def calibrate(batch_alone: dict[str, Any], neptune: dict[str, Any], batch_records: int,
              dispatch_s: float = 150e-6, report_s: float = 100e-6) -> tuple[Costs, float]:
    """Costs and the batch task length (s) from real runs at one executor.

    A batch task alone occupies the slot for dispatch + work + report, the inverse of its task
    rate; a suspension costs what the real driver measured from its send to the stream task's
    start."""
    suspend_s = neptune["send_to_start_us"]["p50"] / 1e6 or dispatch_s
    costs = Costs(dispatch_s=dispatch_s, suspend_s=suspend_s, report_s=report_s)
    cycle = batch_records / batch_alone["batch_records_per_s"]
    return costs, max(1e-4, cycle - dispatch_s - report_s)


def service_time(stream_alone: dict[str, Any], costs: Costs) -> tuple[float, float]:
    """A stream task's length as a base plus an exponential tail, from a real stream-alone run.

    With no batch job and no policy at work, the stream latency is the machine's own: dispatch +
    base + Exp(mean) + report, so p50 and p99 give base and mean (exponential quantiles:
    mean * ln 2 and mean * ln 100). Measured at each size, since the tail differs with the
    number of processes sharing the two cores; the policies' effects come on top of it."""
    p50, p99 = stream_alone["stream_p50_ms"] / 1e3, stream_alone["stream_p99_ms"] / 1e3
    mean = max(0.0, p99 - p50) / math.log(50)
    base = p50 - mean * math.log(2) - costs.dispatch_s - costs.report_s
    return max(1e-5, base), mean


def sim_scenario(executors: int, rate: float, parts: int, costs: Costs,
                 stream: tuple[float, float], batch_s: float, duration: float) -> Scenario:
    app = AppSpec("bench", stream_rate=rate, stream_task_s=stream[0], stream_jitter_s=stream[1],
                  batch_partitions=parts, batch_task_s=batch_s)
    return Scenario(f"validation, {executors} executor(s)", executors, (app,),
                    duration_s=duration, warmup_s=2.0, costs=costs)


def error(sim: float | None, real: float | None) -> float | None:
    if sim is None or real is None or real == 0:
        return None
    return abs(sim - real) / abs(real)


def compare(real: dict[str, Any], sim: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for metric in METRICS:
        err = error(sim.get(metric), real.get(metric))
        out[metric] = {"real": real.get(metric), "sim": sim.get(metric), "error": err,
                       "ok": err is not None and err <= TOLERANCE}
    return out


def real_figures(run: dict[str, Any], alone: dict[str, Any]) -> dict[str, Any]:
    base = alone["batch_records_per_s"] or 0.0
    return {"stream_p50_ms": run["stream_p50_ms"], "stream_p99_ms": run["stream_p99_ms"],
            "batch_throughput_rel": (run["batch_records_per_s"] or 0.0) / base if base else None,
            "suspensions": run["suspensions"], "wasted_task_seconds": run["wasted_task_seconds"]}


def run(sizes: tuple[int, ...] = (1, 2, 4), warmup: float = 2.0, measure: float = 15.0,
        workload: Workload = Workload(), sim_factor: float = 10.0) -> dict[str, Any]:
    from ..work import records_for

    batch_records = records_for(workload.batch_ms, workload.sleep_us)
    rows: list[dict[str, Any]] = []
    calibration: dict[str, Any] = {}
    alone_tails: dict[int, float | None] = {}
    with open(os.devnull, "w") as log:
        for n in sizes:
            env = workload.env(n)

            def real(name: str, mode: str, policy: str, env: dict[str, str] = env,
                     n: int = n) -> dict[str, Any]:
                return run_scenario(f"{name} x{n}", mode, policy, env, warmup, measure, log,
                                    executors=n, pin=False)

            batch_alone = real("batch alone", "batch", "fifo")
            runs = {p: real(p, "both", p) for p in POLICIES}
            # at every size: its p99 is the machine's own tail, which no schedule can remove
            stream_alone = real("stream alone", "stream", "fifo")
            alone_tails[n] = stream_alone["stream_p99_ms"]
            if not calibration:  # the first (smallest) size calibrates the mechanisms
                costs, batch_s = calibrate(batch_alone, runs["neptune"], batch_records)
                calibration = {"costs": costs.__dict__, "batch_task_s": batch_s,
                               "at_executors": n, "stream_task_s": {}, "stream_jitter_s": {}}
            stream = service_time(stream_alone, costs)
            calibration["stream_task_s"][n], calibration["stream_jitter_s"][n] = stream
            scenario = sim_scenario(n, workload.rate_per_executor * n, partitions(n), costs,
                                    stream, batch_s, measure * sim_factor)
            for policy, info in POLICIES.items():
                sim = simulate(scenario, info.decide)
                rows.append({"executors": n, "policy": policy,
                             **compare(real_figures(runs[policy], batch_alone), sim)})
    return {"workload": workload.__dict__, "calibration": calibration, "rows": rows,
            "tolerance": TOLERANCE, "measure_s": measure, "sim_duration_s": measure * sim_factor,
            "loadavg_at_end": list(os.getloadavg()),
            "real_stream_alone_p99_ms": alone_tails}


def markdown(result: dict[str, Any]) -> str:
    cal = result["calibration"]
    lines = [
        "# Simulator validation against the real runtime",
        "",
        f"Real runs: sleeping records of {result['workload']['sleep_us']:g} us, batch tasks "
        f"~{result['workload']['batch_ms']:g} ms, stream tasks ~{result['workload']['stream_ms']:g}"
        f" ms at {result['workload']['rate_per_executor']:g}/s per executor, measured "
        f"{result['measure_s']:g} s each. Mechanisms calibrated at {cal['at_executors']} "
        f"executor only: batch task {cal['batch_task_s'] * 1e3:.2f} ms, suspension "
        f"{cal['costs']['suspend_s'] * 1e6:.0f} us. Stream task service time from the "
        "stream-alone run at each size (base + exponential tail mean): " + ", ".join(
            f"{n} executor(s) {base * 1e3:.3f} + {cal['stream_jitter_s'][n] * 1e3:.3f} ms"
            for n, base in cal["stream_task_s"].items()) + "."
        f" Simulated {result['sim_duration_s']:g} s per run. Cells: real / simulated (error). "
        "Load average at the end: "
        f"{', '.join(f'{v:.2f}' for v in result.get('loadavg_at_end', []))}.",
        "",
        "| executors | policy | stream p50 ms | stream p99 ms | batch throughput (rel.) |",
        "|---:|---|---:|---:|---:|",
    ]
    ok = total = 0
    for row in result["rows"]:
        cells = []
        for metric in METRICS:
            c = row[metric]
            total += 1
            ok += bool(c["ok"])
            if c["real"] is None or c["sim"] is None:
                cells.append("-")
                continue
            err = "-" if c["error"] is None else f"{c['error'] * 100:.0f}%"
            cells.append(f"{c['real']:.3g} / {c['sim']:.3g} ({err}{'' if c['ok'] else ' !'})")
        lines.append(f"| {row['executors']} | {row['policy']} | " + " | ".join(cells) + " |")
    lines += ["", f"{ok} of {total} figures within {result['tolerance'] * 100:.0f}% "
              "(! marks the others).", "",
              "Real stream alone p99 (no batch job: the machine's own tail): " + ", ".join(
                  f"{n} executor(s) {v:.2f} ms" for n, v in
                  result.get("real_stream_alone_p99_ms", {}).items() if v is not None) + "."]
    return "\n".join(lines) + "\n"


def main(out: str, sizes: tuple[int, ...], measure: float) -> int:
    import json

    result = run(sizes=sizes, measure=measure)
    with open(os.path.join(out, "sim_validation.json"), "w") as handle:
        json.dump(result, handle, indent=1)
    text = markdown(result)
    with open(os.path.join(out, "sim_validation.md"), "w") as handle:
        handle.write(text)
    print(text)
    print(f"wrote {out}/sim_validation.json and sim_validation.md", file=sys.stderr)
    return 0
