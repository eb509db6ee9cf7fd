"""sources.Kafka: a topic's partitions onto a stream job's lanes (see this package's doc)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..sources import Saved, Source, SourceOutput
from . import CLIENT_LOG

if TYPE_CHECKING:
    import confluent_kafka

log = logging.getLogger("neptune.kafka")

POLL_BATCH = 500
POLL_SECONDS = 0.1
LAG_EVERY = 1.0  # seconds between two lag reports
RETRY_SECONDS = 2.0  # between two tries of a broker or topic that did not answer


def _json(data: bytes | None) -> Any:
    return None if data is None else json.loads(data)


def _fetch(consumer: confluent_kafka.Consumer) -> list[Any]:
    """The messages that wait, up to POLL_BATCH, as soon as there is one (or none after
    POLL_SECONDS). Not `consume(POLL_BATCH, POLL_SECONDS)`: it waits for POLL_BATCH messages
    or the whole timeout, which held every event of a slow stream for up to 100 ms."""
    first = consumer.poll(POLL_SECONDS)
    if first is None:
        return []
    return [first, *consumer.consume(POLL_BATCH - 1, 0)]


class KafkaSourceError(Exception):
    """The broker or the topic cannot be used; the message names both."""


class Kafka(Source):
    """Events from a Kafka topic. `decode` turns a record's value (bytes) into the event
    (default: JSON); `config` adds librdkafka settings (e.g. SASL from a Secret's files)."""

    kind = "kafka"
    reports_lag = True

    def __init__(self, topic: str, *, bootstrap: str, group: str,
                 decode: Callable[[bytes | None], Any] = _json,
                 dead_letter_topic: str | None = None,
                 config: dict[str, Any] | None = None) -> None:
        self.topic = topic
        self.bootstrap = bootstrap
        self.group = group
        # Saved tokens are offsets of this topic for this group: another topic or group (the
        # resource changed) must not resume from them.
        self.kind = f"kafka:{topic}:{group}"
        self.decode = decode
        self.dead_letter_topic = dead_letter_topic
        self.config = dict(config or {})
        self.consumer: confluent_kafka.Consumer | None = None
        self._resume: dict[int, int] = {}  # partition -> next offset, from the driver's tokens
        self._next: dict[int, int] = {}  # partition -> next offset after what was read
        self._problem: str | None = None
        self._dlq: confluent_kafka.Producer | None = None
        self.job = ""

    def where(self) -> str:
        """The topic and the bootstrap servers, as errors name them."""
        return f"topic {self.topic!r} on bootstrap servers {self.bootstrap}"

    def restore(self, saved: Saved) -> None:
        self.job = saved.job
        self._resume = {p: int(t) + 1 for p, t in saved.partitions.items() if t is not None}

    def _consumer(self) -> confluent_kafka.Consumer:
        from confluent_kafka import Consumer

        def on_error(error: Any) -> None:  # librdkafka's: brokers down, authentication, ...
            self._problem = f"kafka: {error.str()} ({self.where()})"

        return Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": self.group,
            "enable.auto.commit": False, "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest", "isolation.level": "read_committed",
            "topic.metadata.refresh.interval.ms": 5000, "error_cb": on_error,
            "logger": CLIENT_LOG, **self.config})

    def _check_topic(self, consumer: confluent_kafka.Consumer) -> int:
        """The topic's partitions; KafkaSourceError if the broker or the topic is not there."""
        from confluent_kafka import KafkaException

        try:
            metadata = consumer.list_topics(self.topic, timeout=5)
        except KafkaException as exc:
            raise KafkaSourceError(f"cannot reach the brokers for {self.where()}: "
                                   f"{exc.args[0]}") from None
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            why = topic.error.str() if topic is not None and topic.error else "no partitions"
            raise KafkaSourceError(f"{self.where()} cannot be read: {why}")
        return len(topic.partitions)

    async def run(self, out: SourceOutput) -> None:
        """Consume the topic into `out` (see the module's documentation)."""
        consumer = self.consumer = self._consumer()
        while True:
            try:
                await asyncio.to_thread(self._check_topic, consumer)
                break
            except KafkaSourceError as exc:
                out.degraded(str(exc))
                await asyncio.sleep(RETRY_SECONDS)
        out.degraded(None)
        consumer.subscribe([self.topic], on_assign=self._on_assign)
        lag_at = 0.0
        while True:
            messages = await asyncio.to_thread(_fetch, consumer)
            if self._problem is not None and not messages:
                out.degraded(self._problem)
            elif messages or self._problem is None:
                self._problem = None
                out.degraded(None)
            self._emit(messages, out)
            if time.monotonic() - lag_at > LAG_EVERY:
                lag_at = time.monotonic()
                await asyncio.to_thread(self._report_lag, consumer, out)
            if messages:
                await out.room()

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        # Where to read on: after what this source already emitted (a rebalance, e.g. after a
        # broker restart, would otherwise go back to the group's committed offsets and emit
        # events again that are in flight), else after the driver's restored tokens.
        for tp in partitions:
            offset = self._next.get(tp.partition, self._resume.get(tp.partition))
            if offset is not None:
                tp.offset = offset
        consumer.assign(partitions)
        log.info("job %s: %s: assigned partitions %s", self.job, self.where(),
                 sorted(tp.partition for tp in partitions))

    def _emit(self, messages: list[Any], out: SourceOutput) -> None:
        from confluent_kafka import KafkaError

        by_partition: dict[int, list[tuple[Any, Any]]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    self._problem = f"kafka: {error.str()} ({self.where()})"
                continue
            where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
            try:
                value = self.decode(message.value())
            except Exception as exc:
                from .. import metrics  # the driver's: executors import sources, never this

                metrics.SOURCE_BAD_RECORDS.labels(self.job).inc()
                out.malformed(f"{where}: {type(exc).__name__}: {exc}")
                self._dead_letter(message, exc)
                continue
            by_partition.setdefault(message.partition(), []).append((value, message.offset()))
        for message in messages:
            if message.error() is None:
                self._next[message.partition()] = message.offset() + 1
        for partition, events in by_partition.items():
            out.emit_all(events, partition)

    def _dead_letter(self, message: Any, exc: Exception) -> None:
        if self.dead_letter_topic is None:
            return
        if self._dlq is None:
            from confluent_kafka import Producer

            self._dlq = Producer({"bootstrap.servers": self.bootstrap, "logger": CLIENT_LOG,
                                  "enable.idempotence": True, **self.config})
        self._dlq.produce(self.dead_letter_topic, value=message.value(), key=message.key(),
                          headers={"neptune-error": f"{type(exc).__name__}: {exc}",
                                   "neptune-source": f"{message.topic()}[{message.partition()}]"
                                                     f"@{message.offset()}"})
        self._dlq.poll(0)

    def _report_lag(self, consumer: confluent_kafka.Consumer, out: SourceOutput) -> None:
        try:
            # From what this source emitted, not the consumer's position: librdkafka
            # prefetches (a 30k backlog is fetched in seconds), and the fetched but not
            # emitted records are lag too.
            for tp in consumer.position(consumer.assignment()):
                _, high = consumer.get_watermark_offsets(tp, timeout=1)
                if high >= 0:
                    position = self._next.get(tp.partition, self._resume.get(tp.partition))
                    if position is None:
                        position = tp.offset if tp.offset >= 0 else high
                    out.lag(tp.partition, max(0, high - position))
        except Exception as exc:  # a lag report is information: never a reason to stop
            log.debug("job %s: no lag report: %s", self.job, exc)

    def commit(self, token: Any, partition: int = 0) -> None:
        from confluent_kafka import TopicPartition

        if self.consumer is not None:
            self.consumer.commit(offsets=[TopicPartition(self.topic, partition, int(token) + 1)],
                                 asynchronous=True)

    def offsets(self, tokens: dict[int, Any]) -> list[Any]:
        """The Kafka offsets (the next to read) that the tokens of partitions stand for."""
        from confluent_kafka import TopicPartition

        return [TopicPartition(self.topic, p, int(t) + 1) for p, t in tokens.items()]

    def committed_offsets(self, timeout: float = 10.0) -> dict[int, int]:
        """The group's committed offsets (the next offset to read) of every partition."""
        consumer = self.consumer or self._consumer()
        partitions = self._check_topic(consumer)
        from confluent_kafka import TopicPartition

        found = consumer.committed([TopicPartition(self.topic, p) for p in range(partitions)],
                                   timeout=timeout)
        return {tp.partition: tp.offset for tp in found if tp.offset >= 0}


