"""The Kafka benchmark of issue 11: Kafka in, a keyed running aggregate, Kafka out, one executor
core, the batch job beside it; ours against Quix Streams and Spark Structured Streaming.

    python -m neptune_bench.kafka_bench --out bench/results [--rounds 3] [--backlog 100000]

Per round, each system in turn (rounds interleave the systems: A, B, C, A, B, C, ...):
- drain: a backlog of `--backlog` events is produced before the system starts; throughput is
  the output rate between the 10th and 90th percentile of the outputs' append times, and the
  CPU its processes used meanwhile (events per CPU-second: "per core");
- with batch: the system and its batch job (ours: the benchmark's batch job in the same app;
  a peer: `kafka_peers.batch`, a process of its own on the executor's core) while events are
  produced at `--rate` per second; after `--warmup` s, `--measure` s of events: end-to-end p50 and
  p99 from each event's producer time to its output record's append time; batch records per
  second in that window;
- batch alone: ours, and the peers' batch process, the same window.
A checkpoint probe (ours): while events flow at `--rate` on partition 0, one event on partition
1 writes `--checkpoint-keys` keys into the state in one task, so that the next checkpoint holds
them all; the stream p99 in the `--checkpoint-window` seconds from the end of that task's body
(its own output says when) against the seconds before it (the events produced during the body,
which wait behind it on the one executor, are reported apart), and the time of that
checkpoint's RocksDB write measured on its own (CheckpointWriter.commit, as the driver makes
it). `--rounds 0 --systems neptune` runs the probe alone.
`--guarantee` (default at-least-once): ours sinks.Kafka(exactly_once=...), Quix
processing_guarantee=...; Spark's Kafka sink is at least once only, so with exactly-once it is
reported as failed, with that reason. Under exactly once, latencies end when the benchmark's
read_committed reader receives an output (its transaction committed), drain rates still count
append times. Results go to kafka.md (at least once) or kafka_eos.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from . import kafka_peers as kp
from . import steal
from .kafka_peers import systems
from .runner import _cpus, machine
from .summary import ratio, spread
from .work import calibrate, records_for

SYSTEMS = ("neptune", "quix", "spark")
GUARANTEES = ("at-least-once", "exactly-once")
READY_TIMEOUT_S = 240.0  # a JVM starting on a busy machine


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def uptime() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])



def _left_to_us(rate: float | None, window: float, left: float) -> dict[str, Any]:
    """A batch rate per second of the work core that the hypervisor left (steal.py), with the
    wall-clock one and the stolen share beside it: both systems' batch runs on that core."""
    return {"batch_records_per_s": None if rate is None else rate * window / left,
            "batch_records_per_wall_s": rate,
            "work_core_steal_fraction": round(1 - left / window, 4)}

class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bootstrap: str = args.bootstrap
        self.cpus = _cpus()
        self.loops = calibrate()
        self.batch_records = records_for(args.batch_ms)
        self.logdir = tempfile.mkdtemp(prefix="kafka-bench-logs-")
        self.topics: list[str] = []
        self.exactly_once = getattr(args, "guarantee", GUARANTEES[0]) == "exactly-once"

    # -- plumbing ---------------------------------------------------------------------------

    def fresh(self, name: str, partitions: int = 1) -> tuple[str, str, str]:
        source, out = kp.unique(f"{name}-in"), kp.unique(f"{name}-out")
        kp.create_topics(self.bootstrap, [source], [out], partitions)
        self.topics += [source, out]
        return source, out, kp.unique(f"{name}-group")

    def start(self, name: str, topics: tuple[str, str], group: str,
              batch: bool = False, mode: str = "keyed") -> list[systems.Running]:
        """The system, and for a peer with `batch` its batch process beside it."""
        logfile = os.path.join(self.logdir, f"{name}.log")
        exactly_once = self.exactly_once
        if name == "neptune":
            return [systems.start_neptune(mode, topics, group, self.bootstrap, self.cpus, batch,
                                          self.loops, logfile, exactly_once)]
        if name == "quix":
            running = [systems.start_quix(mode, topics, group, self.bootstrap, self.cpus,
                                          logfile, exactly_once)]
        elif name == "spark":
            if exactly_once:
                raise ValueError("Spark Structured Streaming's Kafka sink is at least once "
                                 "only: no exactly-once run to compare")
            running = [systems.start_spark(topics, self.bootstrap, self.cpus, logfile)]
        else:
            raise ValueError(f"unknown system {name!r}")
        if batch:
            running.append(self.batch_process())
        return running

    def reader(self, topic: str) -> kp.OutputReader:
        """Exactly once: an output's latency ends when a read_committed reader gets it."""
        return kp.OutputReader(self.bootstrap, topic, received=self.exactly_once).start()

    def batch_process(self) -> systems.Running:
        path = os.path.join(self.logdir, f"batch-{time.monotonic_ns()}.log")
        running = systems.start_batch_process(path, self.batch_records, self.loops,
                                              self.cpus[1],
                                              os.path.join(self.logdir, "batch.err"))
        running.name = path  # where its tasks are logged
        return running

    @staticmethod
    def stop(running: list[systems.Running]) -> None:
        for r in running:
            r.stop()

    def wait_ready(self, topic: str, reader: kp.OutputReader, running: list[systems.Running]
                   ) -> float:
        """Produce a few probe events (negative ids) until one comes out; seconds taken."""
        started = time.monotonic()
        probe = -1
        while time.monotonic() - started < READY_TIMEOUT_S:
            if not all(r.alive() for r in running):
                raise RuntimeError("the system exited before it was ready")
            kp.produce_backlog(self.bootstrap, topic, [kp.event(probe)])
            probe -= 1
            if reader.wait(lambda rs: any(v.get("id", 0) < 0 for v, _ in rs), 3.0):
                return time.monotonic() - started
        raise RuntimeError(f"no output within {READY_TIMEOUT_S:.0f}s")

    def tail(self, name: str) -> str:
        try:
            with open(os.path.join(self.logdir, f"{name}.log"), errors="replace") as handle:
                lines = handle.readlines()[-12:]
        except OSError:
            return ""
        return " ".join(" ".join(lines).split())[-800:]

    def guarded(self, name: str, what: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        started = time.monotonic()
        log(f"  {name:<8} {what} ...")
        try:
            result = fn()
        except Exception as exc:
            result = {"failed": True, "error": f"{type(exc).__name__}: {exc}; log: "
                                               f"{self.tail(name)}"}
            log(f"  {name:<8} {what} FAILED: {result['error'][:300]}")
        result["elapsed_s"] = round(time.monotonic() - started, 1)
        return result

    # -- the measurements -------------------------------------------------------------------

    def drain(self, name: str) -> dict[str, Any]:
        backlog = self.args.backlog
        source, out, group = self.fresh(f"drain-{name}")
        kp.produce_backlog(self.bootstrap, source, (kp.event(i) for i in range(backlog)))
        # The processing rate: append times, under exactly once too (where the outputs become
        # visible in bursts, one per commit).
        reader = kp.OutputReader(self.bootstrap, out).start()
        running = self.start(name, (source, out), group)
        sampler = kp.CpuSampler([p for r in running for p in r.pids]).start()
        try:
            done = reader.wait(lambda rs: len(rs) >= backlog and reader.distinct_ids() >= backlog,
                               self.args.drain_timeout)
        finally:
            samples = sampler.stop()
            self.stop(running)
            records = reader.stop()
        first: dict[Any, int] = {}
        for value, stamp in records:
            first.setdefault(value.get("id"), stamp)
        rate = kp.drain_rate(list(first.values()))
        cpu = (kp.cpu_between(samples, rate["t_lo_ms"], rate["t_hi_ms"])
               if rate["rate"] else None)
        seconds = ((rate["t_hi_ms"] - rate["t_lo_ms"]) / 1000 if rate["rate"] else None)
        cores = cpu / seconds if cpu is not None and seconds else None
        result = {"events_per_s": rate["rate"], "outputs": len(records),
                  "distinct": len(first), "complete": done, "cpu_cores_used": cores,
                  "events_per_cpu_s": (rate["rate"] / cores) if cores and rate["rate"] else None}
        if not done:
            result["error"] = f"only {len(first)} of {backlog} events answered"
        return result

    def with_batch(self, name: str, batch: bool = True) -> dict[str, Any]:
        args = self.args
        source, out, group = self.fresh(f"lat-{name}")
        reader = self.reader(out)
        running = self.start(name, (source, out), group, batch=batch)
        try:
            ready_s = self.wait_ready(source, reader, running)
            producer = kp.RateProducer(self.bootstrap, source, args.rate).start()
            time.sleep(args.warmup)
            t0, w0 = time.monotonic(), time.time() * 1000
            start = running[0].status().get("jobs", {}).get("batch", {})
            stolen = steal.steal_seconds(self.cpus[1])
            time.sleep(args.measure)
            t1, w1 = time.monotonic(), time.time() * 1000
            left = steal.available(t1 - t0, stolen, steal.steal_seconds(self.cpus[1]))
            end = running[0].status().get("jobs", {}).get("batch", {})
            producer.stop()
            sent = [(i, ts) for i, ts in producer.sent if w0 <= ts < w1]
            wanted = {i for i, _ in sent}
            reader.wait(lambda rs: wanted <= {v.get("id") for v, _ in rs}, args.grace)
        finally:
            self.stop(running)
            records = reader.stop()
        figures = kp.latencies(records, w0, w1, sent)
        figures["ready_s"] = round(ready_s, 1)
        figures["rate"] = args.rate
        if batch:
            if name == "neptune":
                rate = ((end["records"] - start["records"]) / (t1 - t0)
                        if start and end else None)
            else:
                rate = kp.batch_rate(_read_log(running[-1].name), t0, t1)
            figures.update(_left_to_us(rate, t1 - t0, left))
        return figures

    def batch_alone(self, name: str) -> dict[str, Any]:
        """Ours: the app with only its batch job; "process": the peers' batch process."""
        if name == "neptune":
            running = [systems.start_neptune("batch", ("unused", "unused"), "unused",
                                             self.bootstrap, self.cpus, True, self.loops,
                                             os.path.join(self.logdir, "neptune.log"))]
        else:
            running = [self.batch_process()]
        try:
            time.sleep(self.args.warmup)
            t0 = time.monotonic()
            start = running[0].status().get("jobs", {}).get("batch", {})
            stolen = steal.steal_seconds(self.cpus[1])
            time.sleep(self.args.measure)
            t1 = time.monotonic()
            left = steal.available(t1 - t0, stolen, steal.steal_seconds(self.cpus[1]))
            end = running[0].status().get("jobs", {}).get("batch", {})
        finally:
            self.stop(running)
        rate = ((end["records"] - start["records"]) / (t1 - t0) if name == "neptune"
                else kp.batch_rate(_read_log(running[0].name), t0, t1))
        return _left_to_us(rate, t1 - t0, left)

    def checkpoint_probe(self) -> dict[str, Any]:
        """Ours: the stream p99 around a checkpoint of `--checkpoint-keys` keys."""
        args = self.args
        keys = args.checkpoint_keys
        source, out, group = self.fresh("ckpt-neptune", partitions=2)
        reader = self.reader(out)
        running = self.start("neptune", (source, out), group)
        window = args.checkpoint_window
        try:
            self.wait_ready(source, reader, running)
            producer = kp.RateProducer(self.bootstrap, source, args.rate, partition=0).start()
            time.sleep(args.warmup + window)
            bulk_at = time.time() * 1000
            bulk = {"id": -10**9, "key": "bulk", "v": 0, "ts": bulk_at, "bulk": keys}
            kp.produce_backlog(self.bootstrap, source, [bulk], partition=1)
            reader.wait(lambda rs: _bulk_done(rs) is not None, args.grace + 60)
            time.sleep(window)
            producer.stop()
            committed = _wait_committed(running[0], args.grace)
            reader.wait(lambda rs: False, 1.0)
        finally:
            self.stop(running)
            records = reader.stop()
        done_at = _bulk_done(records)
        if done_at is None:
            raise RuntimeError("the bulk task's output never came")
        before = kp.latencies(records, bulk_at - window * 1000, bulk_at, producer.sent)
        body = kp.latencies(records, bulk_at, done_at, producer.sent)
        during = kp.latencies(records, done_at, done_at + window * 1000, producer.sent)
        return {"keys": keys, "window_s": window, "body_ms": round(done_at - bulk_at, 1),
                "before": before, "body": body, "during": during,
                "p99_ratio": ratio(during["p99_ms"], before["p99_ms"]),
                "all_committed": committed, "commit_alone_ms": commit_alone(keys)}


def _bulk_done(records: list[tuple[dict[str, Any], int]]) -> float | None:
    """When the probe's bulk task had made its writes (wall-clock ms), once its output came."""
    return next((float(v["bulk_done"]) for v, _ in records if "bulk_done" in v), None)


def _read_log(path: str) -> list[tuple[float, int]]:
    from .peers.common import read_batch_log

    return read_batch_log(path)


def _wait_committed(running: systems.Running, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = running.status().get("jobs", {}).get("agg", {})
        if job.get("uncommitted") == 0:
            return True
        time.sleep(0.2)
    return False


def bulk_changes(keys: int) -> dict[tuple[str, int], list[list[Any]]]:
    """The changes of the probe's bulk task (neptune_app.keyed_task): `keys` new keys."""
    from neptune_runtime.keyed import packed

    return {("agg", 1): list(packed("agg", {f"bulk{i:07d}": [1, i] for i in range(keys)}))}


def commit_alone(keys: int, reps: int = 3) -> list[float]:
    """ms of a checkpoint of `keys` changed keys plus the lane's token (one synced RocksDB
    write batch) as the driver makes it: CheckpointWriter.commit, the write in the writer
    process (checkpoint_writer.py), in a fresh store each time: the checkpoint's own cost."""
    from pathlib import Path

    from neptune_runtime.checkpoint_writer import CheckpointWriter

    out = []
    for _ in range(reps):
        with tempfile.TemporaryDirectory(prefix="kafka-bench-ckpt-", dir="/var/tmp") as tmp:
            writer = CheckpointWriter(Path(tmp))
            writer.start()
            changes = bulk_changes(keys)
            started = time.perf_counter()
            writer.commit(changes, {("agg", 1): 12345})
            out.append(round((time.perf_counter() - started) * 1000, 1))
            writer.close()
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench(args)
    chosen = [s for s in args.systems.split(",") if s]
    result: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items() if k != "func"},
        "loops_per_record": bench.loops, "batch_records_per_task": bench.batch_records,
        "cpus": {"driver": bench.cpus[0], "executor": bench.cpus[1]},
        "uptime_start": uptime(), "rounds": [],
    }
    started = time.monotonic()
    try:
        for index in range(args.rounds):
            log(f"[round {index + 1}/{args.rounds}, {time.monotonic() - started:.0f}s elapsed]")
            rnd: dict[str, Any] = {"drain": {}, "with_batch": {}, "batch_alone": {}}
            for name in chosen:
                rnd["drain"][name] = bench.guarded(name, "drain", partial(bench.drain, name))
            for name in chosen:
                rnd["with_batch"][name] = bench.guarded(
                    name, "with batch", partial(bench.with_batch, name))
            if args.stream_alone:
                rnd["stream_alone"] = {name: bench.guarded(
                    name, "stream alone", partial(bench.with_batch, name, batch=False))
                    for name in chosen}
            for name in ("neptune", "process"):
                rnd["batch_alone"][name] = bench.guarded(
                    name, "batch alone", partial(bench.batch_alone, name))
            rnd["uptime"] = uptime()
            result["rounds"].append(rnd)
        if args.checkpoint_keys:
            result["checkpoint"] = bench.guarded("neptune", "checkpoint probe",
                                                 bench.checkpoint_probe)
    finally:
        kp.delete_topics(args.bootstrap, bench.topics)
    result["uptime_end"] = uptime()
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    result["machine"] = machine()
    result["summary"] = summarize(result["rounds"], chosen)
    result["targets"] = targets(result["summary"], result.get("checkpoint"))
    return result


def _get(row: dict[str, Any], field: str) -> float | None:
    value = row.get(field)
    return None if row.get("failed") else value


def summarize(rounds: list[dict[str, Any]], chosen: list[str]) -> dict[str, Any]:
    """Per system: median, min and max over the rounds of each figure, and batch throughput
    relative to batch alone (ours to ours, a peer to the batch process), per round."""
    out: dict[str, Any] = {}
    for name in chosen:
        alone_key = "neptune" if name == "neptune" else "process"
        rel = [ratio(_get(r["with_batch"].get(name, {}), "batch_records_per_s"),
                     _get(r["batch_alone"].get(alone_key, {}), "batch_records_per_s"))
               for r in rounds]
        errors = [r[phase][name]["error"] for r in rounds for phase in ("drain", "with_batch")
                  if r[phase].get(name, {}).get("failed")]
        row: dict[str, Any] = {
            "drain_events_per_s": spread(_get(r["drain"].get(name, {}), "events_per_s")
                                         for r in rounds),
            "drain_cpu_cores": spread(_get(r["drain"].get(name, {}), "cpu_cores_used")
                                      for r in rounds),
            "drain_events_per_cpu_s": spread(_get(r["drain"].get(name, {}), "events_per_cpu_s")
                                             for r in rounds),
            "p50_ms": spread(_get(r["with_batch"].get(name, {}), "p50_ms") for r in rounds),
            "p99_ms": spread(_get(r["with_batch"].get(name, {}), "p99_ms") for r in rounds),
            "batch_rel": spread(rel),
            "missing": sum(r["with_batch"].get(name, {}).get("missing") or 0 for r in rounds),
            "errors": errors,
        }
        if any("stream_alone" in r for r in rounds):
            row["alone_p50_ms"] = spread(_get(r.get("stream_alone", {}).get(name, {}), "p50_ms")
                                         for r in rounds)
            row["alone_p99_ms"] = spread(_get(r.get("stream_alone", {}).get(name, {}), "p99_ms")
                                         for r in rounds)
        out[name] = row
    return out


def _median(summary: dict[str, Any], name: str, field: str) -> float | None:
    value: float | None = summary.get(name, {}).get(field, {}).get("median")
    return value


def targets(summary: dict[str, Any], checkpoint: dict[str, Any] | None) -> dict[str, Any]:
    """Issue 11's targets on the medians: (value, bound, ok)."""
    def check(value: float | None, bound: float | None, op: str) -> dict[str, Any]:
        ok = value is not None and bound is not None and (
            value >= bound if op == ">=" else value <= bound)
        return {"value": value, "bound": bound, "op": op, "ok": ok}

    quix_rate = _median(summary, "quix", "drain_events_per_s")
    quix_cpu = _median(summary, "quix", "drain_events_per_cpu_s")
    spark_p99 = _median(summary, "spark", "p99_ms")
    out = {
        "stream-only throughput >= 1.0x Quix's (events/s, one executor core)": check(
            _median(summary, "neptune", "drain_events_per_s"),
            quix_rate, ">="),
        "stream-only throughput per CPU-second >= 1.0x Quix's": check(
            _median(summary, "neptune", "drain_events_per_cpu_s"), quix_cpu, ">="),
        "with batch: stream p99 <= 1/10 of Spark's": check(
            _median(summary, "neptune", "p99_ms"),
            None if spark_p99 is None else spark_p99 / 10, "<="),
        "with batch: stream p99 <= Quix's": check(
            _median(summary, "neptune", "p99_ms"), _median(summary, "quix", "p99_ms"), "<="),
    }
    if checkpoint and not checkpoint.get("failed"):
        alone = checkpoint.get("commit_alone_ms") or []
        out[f"checkpoint of {checkpoint['keys']:,} keys <= 1 s (ms, median of its commits)"] = \
            check(statistics.median(alone) if alone else None, 1000.0, "<=")
        out["stream p99 during that checkpoint <= 2x before it"] = check(
            checkpoint.get("p99_ratio"), 2.0, "<=")
    return out


def guarantee_sentence(guarantee: str) -> str:
    if guarantee == "exactly-once":
        return ("Guarantee: **exactly once** (ours: `sinks.Kafka(exactly_once=True)`, a "
                "transaction per commit, every 50 ms; Quix: "
                "`processing_guarantee=\"exactly-once\"`, its transaction per commit interval, "
                "5 s by default; Spark: none, its Kafka sink is at least once). Latency: each "
                "event's producer time (in the record) to the time the benchmark's "
                "`read_committed` reader received its output, i.e. after the transaction that "
                "holds it committed (an append time would hide that wait).")
    return ("Guarantee: **at least once** for every system (ours: `sinks.Kafka` without "
            "`exactly_once`; Quix: `processing_guarantee=\"at-least-once\"`; Spark's Kafka "
            "sink). Latency: each event's producer time (in the record) to its output record's "
            "broker append time (LogAppendTime, whole ms), read with `read_committed`.")


def _s(cell: dict[str, Any], digits: int = 1, scale: float = 1.0) -> str:
    if not cell or cell.get("median") is None:
        return "-"
    m, lo, hi = (cell[k] * scale for k in ("median", "min", "max"))
    fmt = f"{{:,.{digits}f}}"
    return f"{fmt.format(m)} ({fmt.format(lo)}-{fmt.format(hi)})"


COMMAND = ("PYTHONPATH=bench .venv/bin/python -m neptune_bench.kafka_bench --out bench/results "
           "--rounds {rounds} --backlog {backlog} --rate {rate} --warmup {warmup} "
           "--measure {measure} --checkpoint-keys {checkpoint_keys} --guarantee {guarantee}")


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    summary = result["summary"]
    lines = [
        "# Kafka in, keyed running aggregate, Kafka out (issue 11)", "",
        f"`{COMMAND.format(**{'guarantee': GUARANTEES[0], **cfg})}`", "",
        f"{len(result['rounds'])} rounds, systems interleaved in each; median (min-max) over the "
        f"rounds. Load average (uptime) at start {result['uptime_start']}, at end "
        f"{result['uptime_end']}; {result['elapsed_s'] / 60:.0f} min. "
        f"{result['machine']['cpus']} CPUs: driver side on CPU {result['cpus']['driver']}, "
        f"the work on CPU {result['cpus']['executor']}.", "",
        guarantee_sentence(cfg.get("guarantee", GUARANTEES[0])) + " One partition."
        f" {kp.KEYS} keys; per event the key's running [count, sum] in the "
        "system's keyed state and one output record. Drain: a backlog of "
        f"{cfg['backlog']:,} events, output rate between the 10th and 90th percentile of "
        "the outputs' times. With batch: events at "
        f"{cfg['rate']:g}/s, {cfg['warmup']:g} s warm-up, {cfg['measure']:g} s measured; the batch "
        f"job is tasks of {result['batch_records_per_task']:,} records of ~10 us "
        "(neptune_bench.work), ours in the same app, a peer's in a process of its own on the "
        "work's CPU.", "",
        "| system | drain events/s | CPU cores used in drain | drain events per CPU-s "
        "| with batch: p50 ms | with batch: p99 ms | batch throughput rel. to alone "
        + ("| stream alone: p50 ms | stream alone: p99 ms " if "alone_p99_ms" in next(
            iter(summary.values()), {}) else "") + "|",
        "|---|---|---|---|---|---|---|" + ("---|---|" if "alone_p99_ms" in next(
            iter(summary.values()), {}) else ""),
    ]
    for name, row in summary.items():
        cells = [name, _s(row["drain_events_per_s"], 0), _s(row["drain_cpu_cores"], 2),
                 _s(row["drain_events_per_cpu_s"], 0), _s(row["p50_ms"]), _s(row["p99_ms"]),
                 _s(row["batch_rel"], 2)]
        if "alone_p99_ms" in row:
            cells += [_s(row["alone_p50_ms"]), _s(row["alone_p99_ms"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| target (medians) | value | bound | met |", "|---|---|---|---|"]
    for name, t in result["targets"].items():
        value = "-" if t["value"] is None else f"{t['value']:,.2f}"
        bound = "-" if t["bound"] is None else f"{t['op']} {t['bound']:,.2f}"
        lines.append(f"| {name} | {value} | {bound} | {'yes' if t['ok'] else 'no'} |")
    ckpt = result.get("checkpoint")
    if ckpt:
        lines += ["", "### Checkpoint probe (ours)", ""]
        if ckpt.get("failed"):
            lines.append(f"Failed: {ckpt['error']}")
        else:
            def ms(window: str) -> str:
                figures = ckpt[window]
                return f"{figures['p50_ms']:,.1f} / {figures['p99_ms']:,.1f} ms"

            alone = ", ".join(f"{v:,.0f}" for v in ckpt["commit_alone_ms"])
            lines.append(
                f"One task writes {ckpt['keys']:,} keys (partition 1) while events flow at "
                f"{cfg['rate']:g}/s on partition 0, on the one executor. Stream p50/p99 in the "
                f"{ckpt['window_s']:g} s before it: {ms('before')}. The task's body (its writes, "
                f"user code that holds the executor: events meanwhile wait behind it) took "
                f"{ckpt['body_ms']:,.0f} ms; events produced then: {ms('body')}. In the "
                f"{ckpt['window_s']:g} s from its end (its changes shipped from the executor "
                f"between other tasks, merged there, written by the checkpoint writer): "
                f"{ms('during')} (max {ckpt['during']['max_ms']:,.1f} ms). The checkpoint's "
                f"write alone (CheckpointWriter.commit of {ckpt['keys']:,} changed keys and the "
                f"token, synced): {alone} ms.")
    failures = [(name, e) for name, row in summary.items() for e in row["errors"]]
    if failures:
        lines += ["", "### Failures", ""]
        lines += [f"- {name}: {' '.join(e.split())[:600]}" for name, e in failures[:6]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neptune_bench.kafka_bench",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--bootstrap", default=kp.BOOTSTRAP)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--measure", type=float, default=10.0)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--batch-ms", type=float, default=100.0)
    parser.add_argument("--stream-alone", action="store_true",
                        help="also measure the latency without the batch job")
    parser.add_argument("--checkpoint-keys", type=int, default=1_000_000, help="0: no probe")
    parser.add_argument("--checkpoint-window", type=float, default=5.0)
    parser.add_argument("--guarantee", choices=GUARANTEES, default=GUARANTEES[0])
    parser.add_argument("--no-write", action="store_true", help="print, write no files")
    args = parser.parse_args(argv)
    result = run(args)
    stem = "kafka" if args.guarantee == GUARANTEES[0] else "kafka_eos"
    publish(result, markdown(result), None if args.no_write else args.out, stem)
    return 0


def publish(result: dict[str, Any], report: str, out: str | None, stem: str) -> None:
    """Print the report; with `out`, write OUT/STEM.json and OUT/STEM.md."""
    print(report)
    if out is None:
        return
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{stem}.json"), "w") as handle:
        json.dump(result, handle, indent=1)
    with open(os.path.join(out, f"{stem}.md"), "w") as handle:
        handle.write(report)
    log(f"wrote {out}/{stem}.json and {stem}.md")


if __name__ == "__main__":
    sys.exit(main())
