"""The test broker itself (e2e/kafka.sh, `make kafka-up`): a real Kafka, with confluent-kafka.

Produce and consume, exactly-once transactions seen through read_committed, the script's
idempotence, and data that survives a stop and a start. The restart tests stop the shared
broker for a few seconds and always leave it running.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from .kafka_helpers import (
    BOOTSTRAP,
    PID_FILE,
    broker_error,
    broker_pid,
    committed,
    consume_to_end,
    kafka_sh,
    process_gone,
    unique,
    wait_until,
)


def produce(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> None:
    """Idempotent producer, acks=all; fails on any delivery error."""
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5})
    for k, v in items:
        p.produce(topic, key=k, value=v, on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(30) == 0, "records still in flight after 30 s"
    p.close()
    assert not errors, errors[:3]


def test_produce_and_consume_on_a_fresh_topic(
    bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("pc", partitions=3)
    items = [(f"k{i % 17}".encode(), f"v{i}".encode()) for i in range(2000)]
    produce(bootstrap, topic, items)

    got = consume_to_end(bootstrap, topic, isolation="read_uncommitted")
    assert sorted((r.key, r.value) for r in got) == sorted(items)
    # one key, one partition, in production order
    for key in {k for k, _ in items}:
        mine = [r for r in got if r.key == key]
        assert len({r.partition for r in mine}) == 1
        assert [r.value for r in sorted(mine, key=lambda r: r.offset)] == [
            v for k, v in items if k == key]


def test_an_unknown_topic_is_an_error(bootstrap: str) -> None:
    """auto.create.topics.enable=false: the broker answers UNKNOWN_TOPIC_OR_PART, makes nothing."""
    name = unique("missing")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for _ in range(2):  # asking twice must not create it either
        t = admin.list_topics(topic=name, timeout=10).topics[name]
        assert t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert name not in admin.list_topics(timeout=10).topics


def transactional(bootstrap: str, tid: str) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid,
                  "transaction.timeout.ms": 60000})
    p.init_transactions(60)
    return p


def test_read_committed_sees_committed_transactions_only(
    bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("txn", partitions=2)
    p = transactional(bootstrap, unique("tid"))

    p.begin_transaction()
    for i in range(50):
        p.produce(topic, key=f"a{i}".encode(), value=b"aborted")
    p.flush(30)  # written to the log, then aborted
    p.abort_transaction(30)

    p.begin_transaction()
    for i in range(70):
        p.produce(topic, key=f"c{i}".encode(), value=b"committed")
    p.commit_transaction(30)

    p.begin_transaction()  # left open: its records are beyond the last stable offset
    for i in range(10):
        p.produce(topic, key=f"o{i}".encode(), value=b"open")
    p.flush(30)

    seen = consume_to_end(bootstrap, topic, isolation="read_committed")
    assert sorted(r.key or b"" for r in seen) == sorted(f"c{i}".encode() for i in range(70))
    assert {r.value for r in seen} == {b"committed"}

    # the aborted and open records are in the log: read_uncommitted shows them
    everything = consume_to_end(bootstrap, topic, isolation="read_uncommitted")
    assert [sum(r.value == v for r in everything) for v in (b"aborted", b"committed", b"open")] \
        == [50, 70, 10]
    p.abort_transaction(30)
    p.close()


def test_offsets_commit_inside_the_transaction(
    bootstrap: str, new_topic: Callable[..., str]
) -> None:
    """Consume-transform-produce: the group's offsets move only when the transaction commits."""
    source, sink = new_topic("src"), new_topic("sink")
    produce(bootstrap, source, [(b"k", f"{i}".encode()) for i in range(20)])
    group = unique("eos")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    p = transactional(bootstrap, unique("tid"))
    try:
        consumer.assign([TopicPartition(source, 0, 0)])
        batch = consumer.consume(20, timeout=30)
        assert len(batch) == 20 and all(m.error() is None for m in batch)
        offsets = [TopicPartition(source, 0, (batch[-1].offset() or 0) + 1)]

        for outcome in ("abort", "commit"):
            p.begin_transaction()
            for m in batch:
                p.produce(sink, key=m.key(), value=b"out-" + (m.value() or b""))
            p.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            if outcome == "abort":
                p.abort_transaction(30)
                assert committed(bootstrap, group, source) < 0
            else:
                p.commit_transaction(30)
                assert committed(bootstrap, group, source) == 20
    finally:
        consumer.close()
        p.close()
    out = consume_to_end(bootstrap, sink, isolation="read_committed")
    assert sorted(r.value or b"" for r in out) == sorted(f"out-{i}".encode() for i in range(20))


# ---- the script: idempotence, and data that survives a restart ------------------------------

@pytest.fixture
def broker_left_running() -> Iterator[None]:
    """Whatever a restart test does, the broker runs again afterwards."""
    yield
    if broker_error(timeout=5) is not None:
        r = kafka_sh("up")
        assert r.returncode == 0, r.stderr[-3000:]


def test_up_twice_is_idempotent(bootstrap: str) -> None:
    pid = broker_pid()
    for _ in range(2):
        r = kafka_sh("up")
        assert r.returncode == 0, r.stderr[-3000:]
        assert "already running" in r.stderr
        assert f"export NEPTUNE_KAFKA_BOOTSTRAP={BOOTSTRAP}" in r.stdout
        assert broker_pid() == pid
    os.kill(pid, 0)
    env = kafka_sh("env")
    assert env.stdout.strip() == f"export NEPTUNE_KAFKA_BOOTSTRAP={BOOTSTRAP}"


def test_down_then_up_keeps_the_data(
    bootstrap: str, new_topic: Callable[..., str], broker_left_running: None
) -> None:
    topic = new_topic("durable", partitions=2)
    items = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(500)]
    produce(bootstrap, topic, items)
    group = unique("durable")
    first = consume_to_end(bootstrap, topic, group=group, commit=True)
    assert len(first) == 500
    txn = transactional(bootstrap, unique("tid"))
    txn.begin_transaction()
    txn.produce(topic, key=b"txn", value=b"committed before the restart", partition=0)
    txn.commit_transaction(30)
    txn.close()
    before = {p: committed(bootstrap, group, topic, p) for p in (0, 1)}
    old_pid = broker_pid()

    r = kafka_sh("down")
    assert r.returncode == 0, r.stderr[-3000:]
    assert not PID_FILE.exists()
    assert process_gone(old_pid), f"pid {old_pid} still runs after down"
    assert broker_error(timeout=3) is not None, "a broker still answers after down"
    again = kafka_sh("down")  # idempotent
    assert again.returncode == 0 and "not running" in again.stderr

    r = kafka_sh("up")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "formatted already" in r.stderr and broker_pid() != old_pid
    wait_until(lambda: broker_error(timeout=5) is None, 60, "the broker after the restart")
    everything = consume_to_end(bootstrap, topic, isolation="read_committed")
    assert sorted((r.key, r.value) for r in everything) == sorted(
        [*items, (b"txn", b"committed before the restart")])
    assert {p: committed(bootstrap, group, topic, p) for p in (0, 1)} == before
    # the group resumes where it was: only the record written after its commit
    rest = consume_to_end(bootstrap, topic, group=group)
    assert [(r.key, r.value) for r in rest] == [(b"txn", b"committed before the restart")]


def test_produce_to_an_unknown_topic_fails_delivery(bootstrap: str) -> None:
    """A producer's record for a topic that does not exist is a delivery error, not a new topic."""
    errors: list[KafkaError] = []
    p = Producer({"bootstrap.servers": bootstrap, "topic.metadata.propagation.max.ms": 2000,
                  "message.timeout.ms": 10000})
    p.produce(unique("nowhere"), value=b"x",
              on_delivery=lambda err, _m: errors.append(err) if err is not None else None)
    p.flush(20)
    p.close()
    assert len(errors) == 1
    assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), errors
