"""What the Kafka and window benchmarks share (issues 11 and 12): the events, the per-event
work, topics, producers, the output reader, the figures (pure) and the CPU sampler.

Every system of `neptune_bench.kafka_bench` and `neptune_bench.window_bench` runs in its own
process(es) and reads one input topic and writes one output topic of the shared broker. What is
measured is read back from the output topic by a `read_committed` consumer, the same way for
every system:
- an input event carries its producer's wall-clock time `ts` (ms, taken just before produce);
- the output topic is created with `message.timestamp.type=LogAppendTime`, so an output
  record's timestamp is the broker's time of appending it (ms): end-to-end latency is that
  minus the event's `ts` (the broker stamps whole milliseconds: figures under ~2 ms are coarse);
- drain throughput (a backlog produced before the system starts) is the rate between the 10th
  and the 90th percentile of the outputs' append times, so start-up and the tail do not count.

This module imports only the standard library and confluent_kafka (imported when used): the
Quix Streams peer runs it from its own virtualenv (Quix pins confluent-kafka < 2.13; the
project needs >= 2.16).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

BOOTSTRAP = os.environ.get("NEPTUNE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
KEYS = 1000  # distinct keys of the keyed aggregate
WINDOW_KEYS = 100  # distinct keys of the window count
WINDOW_MS = 1000  # tumbling window length, event-time ms
EVENTS_PER_MS = 10  # window events: event i has event time i // EVENTS_PER_MS (ms)


# ---- the events and the per-event work (the same function in every system) --------------------

def event(i: int, keys: int = KEYS, now_ms: float | None = None) -> dict[str, Any]:
    """Event i of the keyed aggregate: its key, a value to sum and its producer's time (ms)."""
    return {"id": i, "key": f"k{i % keys:06d}", "v": i % 100,
            "ts": time.time() * 1000 if now_ms is None else now_ms}


def aggregate(state: list[int] | None, ev: dict[str, Any]) -> tuple[list[int], dict[str, Any]]:
    """One event into its key's running [count, sum]: the new state and the output record."""
    n, total = state if state is not None else (0, 0)
    n, total = n + 1, total + ev["v"]
    return [n, total], {"id": ev["id"], "key": ev["key"], "n": n, "sum": total, "ts": ev["ts"]}


def window_event(i: int, keys: int = WINDOW_KEYS) -> dict[str, Any]:
    """Event i of the window count: event time i // EVENTS_PER_MS (ms)."""
    return {"id": i, "key": f"w{i % keys:04d}", "ts": i // EVENTS_PER_MS}


def window_events_before(end_ms: float) -> float:
    """How many window events have an event time before `end_ms`."""
    return end_ms * EVENTS_PER_MS


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# ---- topics, producers, the output reader -----------------------------------------------------

def unique(prefix: str) -> str:
    return f"neptune-bench-{prefix}-{uuid.uuid4().hex[:8]}"


def create_topics(bootstrap: str, inputs: Sequence[str], outputs: Sequence[str],
                  partitions: int = 1) -> None:
    """Input topics, and output topics stamped by the broker (LogAppendTime)."""
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(t, partitions, 1) for t in inputs]
    new += [NewTopic(t, partitions, 1, config={"message.timestamp.type": "LogAppendTime"})
            for t in outputs]
    for topic, future in admin.create_topics(new, operation_timeout=30).items():
        try:
            future.result(30)
        except Exception as exc:
            raise RuntimeError(f"cannot create topic {topic} on {bootstrap}: {exc}") from None


def delete_topics(bootstrap: str, topics: Sequence[str]) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(list(topics), operation_timeout=30).values():
        with contextlib.suppress(Exception):  # best effort: a leftover topic is only disk
            future.result(30)


def _producer(bootstrap: str) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                     "linger.ms": 1, "queue.buffering.max.messages": 1_000_000})


def produce_backlog(bootstrap: str, topic: str, records: Iterable[dict[str, Any]],
                    partition: int | None = None) -> int:
    """Produce every record (keyed by its "key"; to `partition` if given, else by the key),
    wait until the broker has them; the count."""
    producer = _producer(bootstrap)
    where = {} if partition is None else {"partition": partition}
    n = 0
    for record in records:
        while True:
            try:
                producer.produce(topic, key=record["key"].encode(), value=dumps(record),
                                 **where)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if n % 10_000 == 0:
            producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError(f"backlog to {topic}: records left unacknowledged")
    return n


@dataclass
class RateProducer:
    """Produce event(i) at `rate` per second from a thread (each stamped just before produce),
    from `first`, until `stop()`; `produced` counts them; to `partition` if given."""

    bootstrap: str
    topic: str
    rate: float
    first: int = 0
    keys: int = KEYS
    partition: int | None = None  # None: by the key
    produced: int = 0
    sent: list[tuple[int, float]] = field(default_factory=list)  # (id, ts) of every event
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RateProducer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        producer = _producer(self.bootstrap)
        where = {} if self.partition is None else {"partition": self.partition}
        start = time.monotonic()
        i = self.first
        while not self._stop.is_set():
            due = start + (i - self.first) / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ev = event(i, self.keys)
            producer.produce(self.topic, key=ev["key"].encode(), value=dumps(ev), **where)
            producer.poll(0)
            self.sent.append((i, ev["ts"]))
            self.produced += 1
            i += 1
        producer.flush(30)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


@dataclass
class OutputReader:
    """Reads an output topic from its start with read_committed, in a thread: per record its
    decoded value and its timestamp (ms): LogAppendTime on our output topics, or with
    `received` the wall time this reader got it. A transactional producer's record is appended
    at once but seen only once its transaction commits: under exactly once, only the time
    received is the latency that a read_committed consumer sees."""

    bootstrap: str
    topic: str
    received: bool = False
    records: list[tuple[dict[str, Any], int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> OutputReader:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        from confluent_kafka import Consumer

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": unique("reader"),
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "isolation.level": "read_committed"})
        consumer.subscribe([self.topic])
        try:
            while not self._stop.is_set():
                # Not consume(1000, 0.2): it waits for 1000 records or the whole 0.2 s.
                first = consumer.poll(0.2)
                now = int(time.time() * 1000)
                for message in [first, *consumer.consume(999, 0)] if first else []:
                    data = message.value()
                    if message.error() is not None or data is None:
                        continue
                    try:
                        value = json.loads(data)
                    except ValueError:
                        continue
                    self.records.append((value, now if self.received else
                                         message.timestamp()[1]))
        finally:
            consumer.close()

    def wait(self, ready: Callable[[list[tuple[dict[str, Any], int]]], bool],
             timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready(self.records):
                return True
            time.sleep(0.2)
        return ready(self.records)

    def distinct_ids(self) -> int:
        return len({v.get("id") for v, _ in self.records})

    def stop(self) -> list[tuple[dict[str, Any], int]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        return list(self.records)


# ---- figures (pure) ---------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (the runtime's /status definition); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(rank) - 1]


def latencies(outputs: Sequence[tuple[dict[str, Any], int]], t0_ms: float, t1_ms: float,
              sent: Iterable[tuple[int, float]] = ()) -> dict[str, Any]:
    """End-to-end figures of the events produced in [t0_ms, t1_ms] (wall clock, ms): per event
    its first output's timestamp minus its producer time. An event of `sent` (id, ts) without
    an output is counted as missing; outputs of one id beyond the first as duplicates."""
    first: dict[Any, float] = {}
    duplicates = 0
    for value, stamp in outputs:
        i = value.get("id")
        if i is None or "ts" not in value:
            continue
        if i in first:
            duplicates += 1
            continue
        first[i] = stamp - float(value["ts"])
    window: list[float] = []
    seen: set[Any] = set()
    for value, _stamp in outputs:
        i = value.get("id")
        if i in seen or i not in first:
            continue
        seen.add(i)
        if t0_ms <= float(value["ts"]) < t1_ms:
            window.append(first[i])
    sent_window = [i for i, ts in sent if t0_ms <= ts < t1_ms]
    missing = sum(1 for i in sent_window if i not in first)
    return {"events": len(window), "p50_ms": percentile(window, 50),
            "p99_ms": percentile(window, 99), "max_ms": max(window) if window else None,
            "duplicates": duplicates, "missing": missing if sent_window else None}


def drain_rate(stamps: Sequence[float], lo: float = 0.1, hi: float = 0.9) -> dict[str, Any]:
    """Outputs per second between the `lo` and `hi` quantiles of their times (ms)."""
    ordered = sorted(stamps)
    if len(ordered) < 20:
        return {"rate": None, "t_lo_ms": None, "t_hi_ms": None, "outputs": len(ordered)}
    a, b = int(len(ordered) * lo), int(len(ordered) * hi) - 1
    span = (ordered[b] - ordered[a]) / 1000
    return {"rate": (b - a) / span if span > 0 else None, "t_lo_ms": ordered[a],
            "t_hi_ms": ordered[b], "outputs": len(ordered)}


def window_rate(outputs: Sequence[tuple[float, float]], lo: float = 0.1,
                hi: float = 0.9) -> dict[str, Any]:
    """Input events per second of a window count, from its outputs (window end in event-time
    ms, append time ms): between the outputs at the `lo` and `hi` quantiles of append time,
    the events whose windows closed (window_events_before of their ends) over the time."""
    ordered = sorted(outputs, key=lambda o: o[1])
    if len(ordered) < 20:
        return {"rate": None, "outputs": len(ordered)}
    a, b = ordered[int(len(ordered) * lo)], ordered[int(len(ordered) * hi) - 1]
    span = (b[1] - a[1]) / 1000
    events = window_events_before(b[0]) - window_events_before(a[0])
    return {"rate": events / span if span > 0 and events > 0 else None,
            "outputs": len(ordered), "events_between": events, "seconds_between": span}


def batch_rate(log: Sequence[tuple[float, int]], t0: float, t1: float) -> float | None:
    """Records per second of the batch tasks that ended in [t0, t1] (CLOCK_MONOTONIC)."""
    if t1 <= t0:
        return None
    return sum(n for end, n in log if t0 <= end < t1) / (t1 - t0)


# ---- CPU of a system's processes --------------------------------------------------------------

def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out.setdefault(int(fields[1]), []).append(int(name))
    return out


def tree(roots: Iterable[int]) -> list[int]:
    """The roots and every process below them."""
    children = _children()
    out: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime of the processes (their threads included), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


@dataclass
class CpuSampler:
    """Samples (wall ms, CPU s) of the process trees under `roots` every `every` seconds."""

    roots: list[int]
    every: float = 0.2
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> CpuSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        pids: list[int] = []
        rescan = 0.0
        while not self._stop.is_set():
            if time.monotonic() > rescan:  # new worker processes (Spark's) join the tree
                pids, rescan = tree(self.roots), time.monotonic() + 2
            self.samples.append((time.time() * 1000, cpu_seconds(pids)))
            self._stop.wait(self.every)

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return self.samples


def cpu_between(samples: Sequence[tuple[float, float]], t0_ms: float,
                t1_ms: float) -> float | None:
    """CPU seconds used between two wall times (ms), from the samples nearest inside."""
    inside = [s for s in samples if t0_ms <= s[0] <= t1_ms]
    if len(inside) < 2:
        return None
    (a_t, a_c), (b_t, b_c) = inside[0], inside[-1]
    if b_t <= a_t:
        return None
    return (b_c - a_c) * (t1_ms - t0_ms) / (b_t - a_t)  # scaled to the whole interval
