"""The stream window benchmark of issue 12: a tumbling-window count per key on one core, events
per second; ours (the dataflow API on sources.Kafka) against Quix Streams (on the same broker)
and Bytewax (in-memory input: Bytewax's TestingSource; it has no comparable Kafka setup here).

    python -m neptune_bench.window_bench --out bench/results [--rounds 3] [--events 200000]

Events (kafka_peers.window_event): WINDOW_KEYS keys, event time i // EVENTS_PER_MS ms; windows of
WINDOW_MS, emitted when they close (ours `.window(tumbling(WINDOW_MS), time="ts").count()
.final()`, Quix `tumbling_window(WINDOW_MS).count().final()`, Bytewax `count_window` with an
EventClock). The Kafka systems drain a backlog produced before they start, followed by one event
per key far ahead in event time that closes every window; their rate is the input events whose
windows closed between the outputs at the 10th and 90th percentile of append time, over that
time (kafka_peers.window_rate); the counts of all closed windows must add up to the events.
Bytewax's rate is its events over the wall time of its run (its start-up included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from functools import partial
from typing import Any

from . import kafka_peers as kp
from .kafka_bench import Bench, log, publish, uptime
from .runner import machine
from .summary import ratio, spread

SYSTEMS = ("neptune", "quix", "bytewax")


def closing_events(events: int) -> list[dict[str, Any]]:
    """One event per key, WINDOW_MS * 2 past the last event's time: every window closes."""
    far = events // kp.EVENTS_PER_MS + 2 * kp.WINDOW_MS
    return [{"id": -1 - k, "key": f"w{k:04d}", "ts": far} for k in range(kp.WINDOW_KEYS)]


def expected_windows(events: int) -> int:
    """Closed windows of `events` window events: per key, every window up to the last event."""
    last_ms = (events - 1) // kp.EVENTS_PER_MS
    return (last_ms // kp.WINDOW_MS + 1) * kp.WINDOW_KEYS


def window_total(value: dict[str, Any]) -> int:
    """The count in a window result: ours "count", Quix's "value"."""
    return int(value.get("count", value.get("value", 0)))


def run_kafka_system(bench: Bench, name: str, events: int, timeout: float) -> dict[str, Any]:
    source, out, group = bench.fresh(f"win-{name}")
    kp.produce_backlog(bench.bootstrap, source, (kp.window_event(i) for i in range(events)))
    kp.produce_backlog(bench.bootstrap, source, closing_events(events))
    want = expected_windows(events)
    reader = kp.OutputReader(bench.bootstrap, out).start()
    running = bench.start(name, (source, out), group, mode="window")
    sampler = kp.CpuSampler([p for r in running for p in r.pids]).start()
    try:
        done = reader.wait(lambda rs: len(rs) >= want, timeout)
    finally:
        samples = sampler.stop()
        bench.stop(running)
        records = reader.stop()
    rate = kp.window_rate([(float(v["end"]), float(s)) for v, s in records if "end" in v])
    counted = sum(window_total(v) for v, _ in records)
    result: dict[str, Any] = {"events_per_s": rate["rate"], "windows": len(records),
                              "windows_expected": want, "counted": counted, "complete": done}
    if rate["rate"]:
        seconds = rate["seconds_between"]
        ordered = sorted(s for _, s in records)
        t_lo = ordered[int(len(ordered) * 0.1)]
        cpu = kp.cpu_between(samples, t_lo, t_lo + seconds * 1000)
        cores = cpu / seconds if cpu is not None and seconds else None
        result["cpu_cores_used"] = cores
        result["events_per_cpu_s"] = rate["rate"] / cores if cores else None
    if not done or counted != events:
        result["error"] = (f"{len(records)} of {want} windows, counting {counted} of "
                           f"{events} events")
    return result


def run_bytewax(bench: Bench, events: int, timeout: float) -> dict[str, Any]:
    from .kafka_peers.systems import BENCH_DIR

    cpu = bench.cpus[1]
    env = {**os.environ, "PYTHONPATH": BENCH_DIR + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", "neptune_bench.kafka_peers.bytewax_flow",
                           str(events), "-" if cpu is None else str(cpu)],
                          capture_output=True, text=True, timeout=timeout, env=env, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr[-600:]}")
    raw: dict[str, Any] = json.loads(lines[-1])
    result = {"events_per_s": raw["events_per_s"], "windows": raw["windows"],
              "windows_expected": expected_windows(events), "counted": raw["counted"],
              "seconds": raw["seconds"], "cpu_cores_used": 1.0,
              "events_per_cpu_s": raw["events_per_s"]}
    if raw["windows"] != expected_windows(events) or raw["counted"] != events:
        result["error"] = (f"{raw['windows']} of {expected_windows(events)} windows, counting "
                           f"{raw['counted']} of {events} events")
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.batch_ms = 100.0  # Bench's batch job is not used here
    bench = Bench(args)
    chosen = [s for s in args.systems.split(",") if s]
    result: dict[str, Any] = {"config": {k: v for k, v in vars(args).items()},
                              "uptime_start": uptime(), "rounds": []}
    started = time.monotonic()
    try:
        for index in range(args.rounds):
            log(f"[round {index + 1}/{args.rounds}, {time.monotonic() - started:.0f}s elapsed]")
            rnd: dict[str, Any] = {}
            for name in chosen:
                run_one = (partial(run_bytewax, bench, args.events, args.timeout)
                           if name == "bytewax" else
                           partial(run_kafka_system, bench, name, args.events, args.timeout))
                rnd[name] = bench.guarded(name, "windows", run_one)
            rnd["uptime"] = uptime()
            result["rounds"].append(rnd)
    finally:
        kp.delete_topics(args.bootstrap, bench.topics)
    result["uptime_end"] = uptime()
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    result["machine"] = machine()
    result["summary"] = summarize(result["rounds"], chosen)
    return result


def summarize(rounds: list[dict[str, Any]], chosen: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in chosen:
        rows = [r.get(name, {}) for r in rounds]
        ok = [r for r in rows if not r.get("failed")]
        out[name] = {
            "events_per_s": spread(r.get("events_per_s") for r in ok),
            "cpu_cores_used": spread(r.get("cpu_cores_used") for r in ok),
            "events_per_cpu_s": spread(r.get("events_per_cpu_s") for r in ok),
            "errors": [r.get("error") for r in rows if r.get("error")],
        }
    ours = out.get("neptune", {}).get("events_per_s", {}).get("median")
    for row in out.values():
        row["ours_over_this"] = ratio(ours, row["events_per_s"]["median"])
    return out


def markdown(result: dict[str, Any]) -> str:
    from .kafka_bench import _s

    cfg = result["config"]
    lines = [
        "# Tumbling-window count, one core (issue 12)", "",
        f"`PYTHONPATH=bench .venv/bin/python -m neptune_bench.window_bench --out bench/results "
        f"--rounds {cfg['rounds']} --events {cfg['events']}`", "",
        f"{len(result['rounds'])} rounds, systems interleaved in each; median (min-max). Load "
        f"average (uptime) at start {result['uptime_start']}, at end {result['uptime_end']}. "
        f"{cfg['events']:,} events, {kp.WINDOW_KEYS} keys, tumbling windows of "
        f"{kp.WINDOW_MS} ms of event time ({kp.EVENTS_PER_MS} events per ms), emitted when "
        "closed. Ours and Quix Streams drain a Kafka backlog (one partition; rate from the "
        "window outputs' append times, 10th to 90th percentile); Bytewax reads the same JSON "
        "records from memory (TestingSource; its whole run, start-up included). The work runs "
        "on one core; ours also has its driver (Kafka I/O, decoding) on the other one, Quix "
        "its librdkafka threads: CPU cores used says how much each took.", "",
        "| system | events/s | CPU cores used | events per CPU-s | ours / this (events/s) |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["summary"].items():
        r = row["ours_over_this"]
        lines.append(f"| {name} | {_s(row['events_per_s'], 0)} | {_s(row['cpu_cores_used'], 2)}"
                     f" | {_s(row['events_per_cpu_s'], 0)} | {'-' if r is None else f'{r:.2f}'}"
                     " |")
    errors = [(n, e) for n, row in result["summary"].items() for e in row["errors"]]
    if errors:
        lines += ["", "Errors:", ""] + [f"- {n}: {' '.join(str(e).split())[:500]}"
                                        for n, e in errors[:6]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neptune_bench.window_bench",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--bootstrap", default=kp.BOOTSTRAP)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    result = run(args)
    publish(result, markdown(result), None if args.no_write else args.out, "windows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
