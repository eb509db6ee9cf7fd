"""sinks.Kafka's exactly-once bookkeeping, on a stand-in producer (pure logic: the real broker's
tests, with a broker restarted mid-run, are in tests/kafka). Every record accepted before a
commit is in the transaction that commits, however often the producer was lost before it."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from neptune_runtime.kafka import sink as sink_module
from neptune_runtime.kafka.sink import KafkaSink


class Producer:
    """Records what a transactional producer was asked; fails where told to."""

    made: list[Producer] = []
    fail_init = 0  # this many next init_transactions calls time out

    def __init__(self, config: dict[str, Any]) -> None:
        self.open: list[bytes] = []
        self.committed: list[list[bytes]] = []
        self.hang_offsets = False
        Producer.made.append(self)

    def init_transactions(self, timeout: float) -> None:
        if Producer.fail_init:
            Producer.fail_init -= 1
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))

    def begin_transaction(self) -> None:
        self.open = []

    def produce(self, topic: str, value: bytes, key: bytes | None, on_delivery: Any) -> None:
        self.open.append(value)

    def poll(self, timeout: float) -> int:
        return 0

    def send_offsets_to_transaction(self, offsets: Any, metadata: Any, timeout: float) -> None:
        if self.hang_offsets:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))

    def commit_transaction(self, timeout: float) -> None:
        self.committed.append(self.open)
        self.open = []


@pytest.fixture()
def sink(monkeypatch: pytest.MonkeyPatch) -> KafkaSink:
    import confluent_kafka

    Producer.made, Producer.fail_init = [], 0
    monkeypatch.setattr(confluent_kafka, "Producer", Producer)
    return KafkaSink("out", bootstrap="b:9092", exactly_once=True, encode=lambda o: o)


def committed(sink: KafkaSink) -> list[bytes]:
    return [r for p in Producer.made for txn in p.committed for r in txn]


def test_records_accepted_with_no_producer_go_into_the_next_commit(sink: KafkaSink) -> None:
    Producer.fail_init = 1  # the broker is away at the first write
    sink.write("j", [b"a", b"b"])
    sink.write("j", [b"c"])  # a producer now: a, b must not be left behind
    sink.commit_transaction([], None)
    assert committed(sink) == [b"a", b"b", b"c"]


def test_a_stuck_commit_starts_over_with_every_record(sink: KafkaSink) -> None:
    sink.write("j", [b"a", b"b"])
    Producer.made[0].hang_offsets = True
    with pytest.raises(OSError, match="did not commit"):
        sink.commit_transaction([], None)
    Producer.fail_init = 1  # and the next producer cannot start at once either
    sink.write("j", [b"c"])
    sink.commit_transaction([], None)
    assert committed(sink) == [b"a", b"b", b"c"]


def test_a_call_past_its_own_timeout_is_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    release = threading.Event()
    monkeypatch.setattr(sink_module, "TXN_TIMEOUT", 0.0)
    with pytest.raises(TimeoutError, match="wait did not return"):
        sink_module._within(0.0, release.wait, 30)
    release.set()
    assert sink_module._within(1.0, lambda: 7) == 7


def test_lag_counts_what_the_source_has_not_read_and_the_runtime_not_handed_on() -> None:
    from types import SimpleNamespace

    from neptune_runtime.status import lag_of

    lanes = {0: SimpleNamespace(tracker=SimpleNamespace(unreleased=30_000)),
             1: SimpleNamespace(tracker=SimpleNamespace(unreleased=0))}
    # a prefetched backlog: the topic has nothing unread, the runtime holds it all
    assert lag_of({0: 0, 1: 0}, lanes) == {"0": 30_000, "1": 0}
    assert lag_of({0: 5, 2: 7}, lanes) == {"0": 30_005, "1": 0, "2": 7}
    assert lag_of({}, {}) == {}
    # HTTP ingest reports nothing itself: what the runtime holds is its lag
    assert lag_of({}, lanes) == {"0": 30_000, "1": 0}
    # a Kafka source before its first report: unknown, not "nothing waits"
    assert lag_of({}, lanes, source_reports=True) == {}
    assert lag_of({1: 4}, lanes, source_reports=True) == {"0": 30_000, "1": 4}
