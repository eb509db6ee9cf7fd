"""Helpers for the tests against the real broker that `make kafka-up` starts (e2e/kafka.sh)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "e2e" / "kafka.sh"
BOOTSTRAP = os.environ.get("NEPTUNE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
STATE = Path(os.environ.get("NEPTUNE_KAFKA_STATE", "/var/lib/neptune-kafka"))
PID_FILE = STATE / "run" / "kafka.pid"


def broker_error(bootstrap: str = BOOTSTRAP, timeout: float = 10.0) -> str | None:
    """None when a broker at `bootstrap` answers a metadata request, else why not."""
    admin = AdminClient({"bootstrap.servers": bootstrap,
                         "socket.connection.setup.timeout.ms": 3000})
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as e:
        return str(e.args[0])
    return None if md.brokers else "the metadata answer names no broker"


def require_broker(timeout: float = 10.0) -> str:
    why = broker_error(timeout=timeout)
    if why is not None:
        pytest.fail(
            f"no Kafka broker answers at {BOOTSTRAP} ({why}): run `make kafka-up` "
            "(or set NEPTUNE_KAFKA_BOOTSTRAP to a broker's address)",
            pytrace=False,
        )
    return BOOTSTRAP


def kafka_sh(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run e2e/kafka.sh with this test's environment; output captured (progress on stderr)."""
    return subprocess.run(
        [str(KAFKA_SH), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def broker_pid() -> int:
    """The pid of the broker that e2e/kafka.sh started (it must have been started by it)."""
    if not PID_FILE.exists():
        pytest.fail(
            f"no {PID_FILE}: the broker at {BOOTSTRAP} was not started by e2e/kafka.sh; "
            "run `make kafka-up`",
            pytrace=False,
        )
    return int(PID_FILE.read_text().split()[0])


def process_gone(pid: int) -> bool:
    """The process exited (a zombie not yet reaped by init has exited too)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def unique(prefix: str) -> str:
    return f"neptune-test-{prefix}-{uuid.uuid4().hex[:10]}"


def topic_partitions(bootstrap: str, topic: str) -> int:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic=topic, timeout=10)
    t = md.topics[topic]
    return 0 if t.error is not None else len(t.partitions)


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def consume_to_end(
    bootstrap: str,
    topic: str,
    *,
    group: str | None = None,
    isolation: str = "read_committed",
    commit: bool = False,
    timeout: float = 60,
) -> list[Record]:
    """Every record of `topic` from the start (or the group's committed offsets) to its end.

    The end is the partition EOF that the consumer reports per partition: the high watermark,
    or the last stable offset under read_committed. With commit=True the offsets are committed
    synchronously before the consumer closes.
    """
    n = topic_partitions(bootstrap, topic)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group or unique("group"),
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": isolation,
    })
    records: list[Record] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        consumer.subscribe([topic])
        while len(at_end) < n:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{topic}: reached the end of {sorted(at_end)} of {n} partitions in "
                    f"{timeout}s ({len(records)} records)")
            msg: Message | None = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition() or 0)
                    continue
                raise KafkaException(err)
            at_end.discard(msg.partition() or 0)
            records.append(Record(msg.partition() or 0, msg.offset() or 0, msg.key(), msg.value()))
        if commit and records:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return records


def committed(bootstrap: str, group: str, topic: str, partition: int = 0) -> int:
    """The group's committed offset for one partition (-1001: none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tp = consumer.committed([TopicPartition(topic, partition)], timeout=15)[0]
        return int(tp.offset)
    finally:
        consumer.close()
