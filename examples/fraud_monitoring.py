"""Fraud monitoring: card transactions from Kafka, per-card statistics in keyed state, per-merchant
baselines from a batch job, alerts to Kafka.

- `score` (a keyed stream job) reads the transactions topic. Its keyed state `cards` holds each
  card's running statistics (count, total, sum of squares, largest amount, in cents), restored
  wherever the card's partition runs next and checkpointed with the offsets. A transaction is
  an alert when it is far above the card's own mean so far (rule `card`) or far above its
  merchant's baseline (rule `merchant`); alerts go to the alerts topic, keyed by card, each
  with the card's figures after it. With exactly-once (the default), alerts and the consumed
  offsets commit in one Kafka transaction: a `read_committed` reader sees each alert once,
  whatever executor or driver was lost on the way.
- `baselines` (a batch job, every FRAUD_BASELINE_EVERY) re-reads the recent history of the same
  topic on the executors, computes each merchant's median amount and its spread, and publishes
  them as shared state `baselines`, which `score` reads with `ctx.state("baselines")`.

Configuration (environment; defaults in brackets):
  FRAUD_BOOTSTRAP      [127.0.0.1:9092; in a pod: kafka:9092, a Service named kafka]
  FRAUD_TRANSACTIONS   [card-transactions]     the topic transactions arrive on
  FRAUD_ALERTS         [fraud-alerts]          the topic alerts go to
  FRAUD_GROUP          [fraud-monitoring]      the consumer group (committed offsets)
  FRAUD_EXACTLY_ONCE   [1]                     0: at-least-once alerts (no transactions)
  FRAUD_PARTITIONS     [3]                     tasks of the baselines job (Kafka partition p is
                                               read by task p % FRAUD_PARTITIONS)
  FRAUD_HISTORY        [20000]                 records per Kafka partition the baselines read
  FRAUD_BASELINE_EVERY [10s]                   how often the baselines are recomputed
  FRAUD_EVENT_MS       [0]                     extra work per transaction (to see backpressure)

Try it with the broker `make kafka-up` starts:

    .venv/bin/python examples/fraud_monitoring.py produce --create-topics --count 20000
    .venv/bin/neptunectl run examples/fraud_monitoring.py --duration 30s
    .venv/bin/python examples/fraud_monitoring.py alerts     # the alerts, read_committed

`produce` writes synthetic transactions: CARDS cards take turns (transaction i is card i % 50's),
each at a random merchant of MERCHANTS, and every tenth transaction of a card is a large one.
The stream is a pure function of the transaction number, so `produce --first N` continues it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

from neptune_runtime import App, TaskContext, checkpoint, sinks, sources

IN_POD = "KUBERNETES_SERVICE_HOST" in os.environ
BOOTSTRAP = os.environ.get("FRAUD_BOOTSTRAP", "kafka:9092" if IN_POD else "127.0.0.1:9092")
TRANSACTIONS = os.environ.get("FRAUD_TRANSACTIONS", "card-transactions")
ALERTS = os.environ.get("FRAUD_ALERTS", "fraud-alerts")
GROUP = os.environ.get("FRAUD_GROUP", "fraud-monitoring")
EXACTLY_ONCE = os.environ.get("FRAUD_EXACTLY_ONCE", "1") != "0"
BASELINE_PARTITIONS = int(os.environ.get("FRAUD_PARTITIONS", "3"))
HISTORY = int(os.environ.get("FRAUD_HISTORY", "20000"))
BASELINE_EVERY = os.environ.get("FRAUD_BASELINE_EVERY", "10s")
EVENT_MS = float(os.environ.get("FRAUD_EVENT_MS", "0"))
READ_STALL_SECONDS = 30  # the baselines' reader gives up (and its task is retried) after that

# The rules. Card: at least CARD_HISTORY earlier transactions and an amount above CARD_FACTOR
# times the card's mean so far. Merchant: a baseline of at least MERCHANT_SAMPLES amounts and an
# amount above its median plus MERCHANT_SPREADS robust spreads (1.4826 x the median absolute
# deviation: a standard deviation that the large amounts themselves do not inflate).
CARD_HISTORY = 5
CARD_FACTOR = 4
MERCHANT_SAMPLES = 30
MERCHANT_SPREADS = 6.0

# The synthetic transactions (amounts in cents: totals stay exact).
CARDS = 50
MERCHANTS = 20
SPIKE_EVERY = 10  # every tenth transaction of a card is a large one
EPOCH = 1_767_225_600.0  # 2026-01-01 00:00 UTC

# librdkafka's own log (every failed connection, many times a second while a broker is away):
# only with DEBUG logging; the reader's errors reach the task as exceptions.
CLIENT_LOG = logging.getLogger("fraud.kafka")
CLIENT_LOG.addFilter(lambda record: logging.getLogger().isEnabledFor(logging.DEBUG))


def merchant_price(merchant: int) -> int:
    """A merchant's typical amount, in cents: 5.00 to 150.00."""
    return 500 + merchant * (15_000 - 500) // (MERCHANTS - 1)


def transaction(i: int, seed: int = 1) -> dict[str, Any]:
    """The i-th synthetic transaction (a pure function of i and seed)."""
    rng = random.Random(seed * 1_000_003 + i)
    merchant = rng.randrange(MERCHANTS)
    if (i // CARDS) % SPIKE_EVERY == SPIKE_EVERY - 1:
        amount = rng.randint(150_000, 300_000)
    else:
        amount = int(merchant_price(merchant) * rng.uniform(0.5, 1.5))
    return {"id": i, "card": f"card-{i % CARDS:03d}", "merchant": f"m{merchant:02d}",
            "amount": amount, "ts": round(EPOCH + i * 0.01, 3)}


def card_rule(stats: dict[str, int] | None, amount: int) -> bool:
    """Far above the card's own mean so far (exact: integers only)."""
    return (stats is not None and stats["n"] >= CARD_HISTORY
            and amount * stats["n"] > CARD_FACTOR * stats["total"])


def merchant_rule(baseline: dict[str, float] | None, amount: int) -> bool:
    return (baseline is not None and baseline["n"] >= MERCHANT_SAMPLES
            and amount > baseline["median"] + MERCHANT_SPREADS * baseline["spread"])


def updated(stats: dict[str, int] | None, amount: int) -> dict[str, int]:
    """A card's statistics after one more transaction."""
    s = stats or {"n": 0, "total": 0, "sumsq": 0, "max": 0}
    return {"n": s["n"] + 1, "total": s["total"] + amount, "sumsq": s["sumsq"] + amount * amount,
            "max": max(s["max"], amount)}


# -- the stream job: score every transaction against its card and its merchant ------------------

def score(ctx: TaskContext, transactions: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
    cards = ctx.keyed_state("cards")
    baselines: dict[str, dict[str, float]] = ctx.state("baselines") or {}
    version = ctx.state_version("baselines")
    alerts = []
    for tx in transactions:
        if EVENT_MS:
            deadline = time.perf_counter() + EVENT_MS / 1000
            while time.perf_counter() < deadline:
                checkpoint()  # a yield point: a higher-priority task may run meanwhile
        before = cards.get(tx["card"])
        baseline = baselines.get(tx["merchant"])
        reasons = [name for name, hit in (("card", card_rule(before, tx["amount"])),
                                          ("merchant", merchant_rule(baseline, tx["amount"])))
                   if hit]
        after = updated(before, tx["amount"])
        cards[tx["card"]] = after
        if reasons:
            alerts.append({
                "id": tx["id"], "card": tx["card"], "merchant": tx["merchant"],
                "amount": tx["amount"], "ts": tx["ts"], "reasons": reasons,
                "card_mean_before": round(before["total"] / before["n"]) if before else None,
                "card_n": after["n"], "card_total": after["total"],
                "merchant_median": round(baseline["median"]) if baseline else None,
                "baselines_version": version,
            })
    return alerts


# -- the batch job: per-merchant baselines from the topic's recent history ---------------------

def read_history(partition: int, epoch: int) -> Iterator[dict[str, Any]]:
    """The last HISTORY transactions of each Kafka partition this task reads (runs on an
    executor: a consumer that only reads, assigned by hand, committing nothing)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"{GROUP}-baselines",
                         "logger": CLIENT_LOG,
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "enable.partition.eof": False})
    try:
        topic = consumer.list_topics(TRANSACTIONS, timeout=10).topics[TRANSACTIONS]
        if topic.error is not None:
            raise RuntimeError(f"baselines: topic {TRANSACTIONS!r} on {BOOTSTRAP}: "
                               f"{topic.error.str()}")
        for kp in sorted(topic.partitions):
            if kp % BASELINE_PARTITIONS != partition:
                continue
            low, high = consumer.get_watermark_offsets(TopicPartition(TRANSACTIONS, kp),
                                                       timeout=10)
            if high <= low:
                continue
            start = max(low, high - HISTORY)
            consumer.assign([TopicPartition(TRANSACTIONS, kp, start)])
            progress = time.monotonic()
            while True:
                batch = consumer.consume(500, timeout=0.01)  # short waits: yield points between
                if batch:
                    progress = time.monotonic()
                elif time.monotonic() - progress > READ_STALL_SECONDS:  # the task fails: retried
                    raise RuntimeError(f"baselines: nothing read from {TRANSACTIONS}[{kp}] on "
                                       f"{BOOTSTRAP} for {READ_STALL_SECONDS}s")
                for msg in batch:
                    if msg.error() is None:
                        try:
                            yield json.loads(msg.value() or b"null")
                        except ValueError:
                            continue
                checkpoint()
                if not batch:  # caught up with the end seen at the start?
                    done = consumer.position([TopicPartition(TRANSACTIONS, kp)])[0].offset
                    if done >= high:
                        break
                if batch and (batch[-1].offset() or 0) + 1 >= high:
                    break
            consumer.unassign()
    finally:
        consumer.close()


def merchant_amounts(ctx: TaskContext,
                     transactions: Iterator[dict[str, Any]]) -> dict[str, list[int]]:
    """merchant -> the amounts of this task's history."""
    amounts: dict[str, list[int]] = {}
    for tx in transactions:  # every record is a yield point
        if isinstance(tx, dict) and "merchant" in tx and "amount" in tx:
            amounts.setdefault(tx["merchant"], []).append(int(tx["amount"]))
    return amounts


def baselines_of(results: list[dict[str, list[int]]],
                 previous: Any) -> dict[str, dict[str, float]]:
    """The tasks' amounts -> merchant -> {n, median, spread} (on the driver)."""
    merged: dict[str, list[int]] = {}
    for amounts in results:
        for merchant, values in amounts.items():
            merged.setdefault(merchant, []).extend(values)
    out = {}
    for merchant, values in merged.items():
        median = statistics.median(values)
        mad = statistics.median(abs(v - median) for v in values)
        out[merchant] = {"n": len(values), "median": float(median), "spread": 1.4826 * mad}
    return out


app = App("fraud-monitoring")
app.batch_job("baselines", read=read_history, task=merchant_amounts, partitions=BASELINE_PARTITIONS,
              combine=baselines_of, publishes="baselines", initial_state={},
              schedule=BASELINE_EVERY, cache_partitions=False)  # the history moves on
app.stream_job(
    "score", keyed=True, task=score, slo="500ms", trigger="50ms",
    source=sources.Kafka(TRANSACTIONS, bootstrap=BOOTSTRAP, group=GROUP),
    sink=sinks.Kafka(ALERTS, bootstrap=BOOTSTRAP, key=lambda alert: alert["card"],
                     exactly_once=EXACTLY_ONCE))


# -- python examples/fraud_monitoring.py produce | alerts ---------------------------------------

def create_topics(bootstrap: str, partitions: int) -> None:
    """The transactions and alerts topics, unless they exist (brokers may not auto-create)."""
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=10).topics
    wanted = [NewTopic(t, num_partitions=partitions, replication_factor=1)
              for t in (TRANSACTIONS, ALERTS) if t not in existing]
    for name, future in (admin.create_topics(wanted) if wanted else {}).items():
        future.result(timeout=60)
        print(f"created topic {name} ({partitions} partitions)", file=sys.stderr)


def produce(bootstrap: str, first: int, count: int, rate: float = 0.0, seed: int = 1) -> None:
    """Transactions first .. first+count-1, keyed by card (a card's go to one partition, in
    order); `rate` per second, 0: as fast as the broker takes them."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 5})
    began = time.monotonic()
    for n, i in enumerate(range(first, first + count)):
        tx = transaction(i, seed)
        while True:
            try:
                producer.produce(TRANSACTIONS, key=tx["card"].encode(),
                                 value=json.dumps(tx, separators=(",", ":")).encode())
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.1)
        producer.poll(0)
        if rate > 0 and (ahead := (n + 1) / rate - (time.monotonic() - began)) > 0:
            time.sleep(ahead)
    left = producer.flush(60)
    if left:
        raise SystemExit(f"{left} transactions not delivered to {TRANSACTIONS} on {bootstrap}")


def print_alerts(bootstrap: str, timeout: float) -> None:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap,
                         "group.id": f"{GROUP}-reader-{os.getpid()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe([ALERTS])
    quiet_until = time.monotonic() + timeout
    try:
        while time.monotonic() < quiet_until:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            print((msg.value() or b"").decode())
            quiet_until = time.monotonic() + timeout
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fraud_monitoring.py", description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=BOOTSTRAP)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("produce", help=f"synthetic transactions to {TRANSACTIONS}")
    p.add_argument("--count", type=int, default=10_000)
    p.add_argument("--first", type=int, default=0, help="the first transaction's number")
    p.add_argument("--rate", type=float, default=0.0, help="per second (0: as fast as it can)")
    p.add_argument("--create-topics", action="store_true",
                   help=f"create {TRANSACTIONS} and {ALERTS} if they do not exist")
    p.add_argument("--partitions", type=int, default=3, help="of the topics it creates")
    a = sub.add_parser("alerts", help=f"print the alerts of {ALERTS} (read_committed)")
    a.add_argument("--idle", type=float, default=5.0, help="stop after this many quiet seconds")
    args = parser.parse_args(argv)
    if args.command == "produce":
        if args.create_topics:
            create_topics(args.bootstrap, args.partitions)
        began = time.monotonic()
        produce(args.bootstrap, args.first, args.count, args.rate)
        print(f"produced transactions {args.first}..{args.first + args.count - 1} to "
              f"{TRANSACTIONS} on {args.bootstrap} in {time.monotonic() - began:.1f}s",
              file=sys.stderr)
    else:
        print_alerts(args.bootstrap, args.idle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
