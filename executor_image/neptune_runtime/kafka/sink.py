"""sinks.Kafka: an idempotent, optionally transactional producer (see this package's doc)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..sinks import Sink
from . import CLIENT_LOG

if TYPE_CHECKING:
    import confluent_kafka

log = logging.getLogger("neptune.kafka")

TXN_TIMEOUT = 10.0  # per transactional call: a stuck one is given up and started over


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class KafkaSink(Sink):
    """Outputs to a Kafka topic as JSON (or `encode`), keyed by `key(output)` if given."""

    def __init__(self, topic: str, *, bootstrap: str, key: Callable[[Any], Any] | None = None,
                 exactly_once: bool = False, encode: Callable[[Any], bytes] = _dump,
                 config: dict[str, Any] | None = None, transactional_id: str | None = None) -> None:
        self.topic = topic
        self.bootstrap = bootstrap
        self.key = key
        self.exactly_once = exactly_once
        self.encode = encode
        self.config = dict(config or {})
        self.transactional_id = transactional_id
        self._producer: confluent_kafka.Producer | None = None
        self._failed: list[tuple[bytes | None, bytes | None]] = []  # to produce again
        self._lock = threading.Lock()  # a transaction's state: commits off the loop, writes on it
        # Exactly once: the records produced in the open transaction, and those accepted but
        # not produced yet (no producer now, or a transaction to start over): a commit
        # produces these first, so that every accepted record is in the commit of its offsets.
        self._batch: list[tuple[bytes | None, bytes]] = []
        self._waiting: list[tuple[bytes | None, bytes]] = []
        self._in_txn = False
        self._failures = 0  # commits failed in a row
        # From `seal` (the driver took the tokens to commit) until the commit is done, writes
        # wait here: their offsets are not in that commit, so neither may their records be.
        self._sealed = False
        self._after: list[tuple[bytes | None, bytes]] = []
        self._after_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"sinks.Kafka({self.topic!r})"

    def bind(self, app: str, job: str) -> None:
        """Called by the driver: the transactional id is stable per app and job, so that a new
        driver fences the one it replaces."""
        if self.transactional_id is None:
            self.transactional_id = f"neptune-{app}-{job}"

    def fence(self) -> None:
        """Take over the transactional id now (exactly once only): the broker then finishes a
        dead producer's open transaction at once (aborts it, or completes a commit it had
        begun) instead of after its timeout. Raises KafkaException if the brokers do not
        answer within TXN_TIMEOUT."""
        if self.exactly_once:
            with self._lock:
                self._client()

    def _client(self) -> confluent_kafka.Producer:
        if self._producer is None:
            from confluent_kafka import Producer

            config = {"bootstrap.servers": self.bootstrap, "enable.idempotence": True,
                      "acks": "all", "linger.ms": 1, "logger": CLIENT_LOG, **self.config}
            if self.exactly_once:
                config["transactional.id"] = self.transactional_id or f"neptune-{self.topic}"
                config["transaction.timeout.ms"] = int(TXN_TIMEOUT * 2000)
            producer = Producer(config)
            if self.exactly_once:  # kept only once initialised: a failed init is tried again
                producer.init_transactions(TXN_TIMEOUT)
            self._producer = producer
        return self._producer

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None and not self.exactly_once:  # a transaction's fail its commit
            self._failed.append((message.key(), message.value()))

    def _produce(self, key: bytes | None, value: bytes | None) -> None:
        producer = self._client()
        while True:
            try:
                producer.produce(self.topic, value=value, key=key, on_delivery=self._delivered)
                return
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.05)

    def write(self, job: str, outputs: list[Any]) -> None:
        """Produce the outputs (in the open transaction when exactly once)."""
        records = [(None if self.key is None else _bytes(self.key(o)), self.encode(o))
                   for o in outputs]
        if not self.exactly_once:  # the producer is thread-safe: no lock, no wait on a flush
            for key, value in records:
                self._produce(key, value)
            self._client().poll(0)
            return
        with self._after_lock:
            if self._sealed:
                self._after += records
                return
        with self._lock:
            self._waiting += records
            self._try_produce_waiting()

    def _produce_waiting(self) -> None:
        """Produce the waiting records in the open transaction (begun if none is); a record
        moves to the transaction's batch once produced. Raises KafkaException when that cannot
        be done now: what is left waits."""
        producer = self._client()
        if not self._in_txn:
            producer.begin_transaction()
            self._in_txn = True
        produced = 0
        try:
            for key, value in self._waiting:
                self._produce(key, value)
                produced += 1
        finally:
            self._batch += self._waiting[:produced]
            del self._waiting[:produced]
        producer.poll(0)

    def _try_produce_waiting(self) -> None:
        """`_produce_waiting`, or, with no producer now (a broker away), leave the records
        waiting for the next write or commit."""
        try:
            self._produce_waiting()
        except Exception as exc:
            log.warning("%r: %d records wait for a producer: %s", self, len(self._waiting), exc)
            self._start_over()

    def _start_over(self) -> None:
        """Drop the producer (its open transaction aborts with it, or times out on the broker):
        the transaction's records wait to be produced again in the next one."""
        self._producer, self._in_txn = None, False
        self._waiting, self._batch = self._batch + self._waiting, []

    def seal(self) -> None:
        """The driver took the tokens of its next commit: later writes wait for it."""
        with self._after_lock:
            self._sealed = True

    def seal_off(self) -> None:
        """No commit after all: the writes that waited go on."""
        with self._lock:
            self._unseal()

    def _unseal(self) -> None:
        with self._after_lock:
            self._sealed, after, self._after = False, self._after, []
        if after:
            self._waiting += after
            self._try_produce_waiting()

    def sync(self) -> None:
        """Every record written so far is acknowledged by the broker (failures produced again);
        OSError if that cannot be done now (the driver then commits nothing and tries later).
        Off the event loop; writes go on meanwhile (the records they add are flushed too)."""
        if self.exactly_once or self._producer is None:
            return  # a transaction's records are made durable by its commit
        for _ in range(3):
            left = self._producer.flush(10)
            failed, self._failed = self._failed, []
            if left == 0 and not failed:
                return
            for key, value in failed:
                self._produce(key, value)
        raise OSError(f"{self!r}: records not acknowledged by {self.bootstrap}")

    def commit_transaction(self, offsets: list[Any], group_metadata: Any) -> None:
        """Commit the open transaction, with every record accepted before the seal, and the
        source's offsets. On a failure the records wait to be produced again in a new
        transaction (after an abort, or with a new producer when the old one keeps timing out
        or is fenced: a broker that restarted can leave it waiting on a coordinator for good),
        and OSError is raised: the driver tries the commit again. Runs off the event loop."""
        from confluent_kafka import KafkaException

        with self._lock:
            try:
                self._produce_waiting()
                producer = self._producer
                assert producer is not None
                _within(TXN_TIMEOUT, producer.send_offsets_to_transaction, offsets,
                        group_metadata, TXN_TIMEOUT)
                _within(TXN_TIMEOUT, producer.commit_transaction, TXN_TIMEOUT)
                self._in_txn, self._batch, self._failures = False, [], 0
            except (KafkaException, TimeoutError) as exc:
                error = exc.args[0] if isinstance(exc, KafkaException) else None
                self._failures += 1
                producer = self._producer
                if producer is not None and error is not None and error.txn_requires_abort() \
                        and self._failures < 3:
                    with contextlib.suppress(KafkaException, TimeoutError):
                        _within(TXN_TIMEOUT, producer.abort_transaction, TXN_TIMEOUT)
                    self._in_txn = False
                    self._waiting, self._batch = self._batch + self._waiting, []
                else:  # stuck, or fatal (fenced): a new producer fences this one and its txn
                    self._start_over()
                cause = error.str() if error is not None else str(exc)
                raise OSError(f"{self!r}: the transaction did not commit: {cause}") from None
            finally:
                self._unseal()

    def close(self) -> None:
        """Flush, or abort an open transaction (the next driver replays it)."""
        if self._producer is not None:
            if self.exactly_once and self._in_txn:
                # the commit did not come: whatever it held is replayed by the next driver
                try:
                    self._producer.abort_transaction(5)
                except Exception as exc:
                    log.warning("%r: abort at close: %s", self, exc)
            else:
                self._producer.flush(10)


def _within(seconds: float, call: Callable[..., Any], *args: Any) -> Any:
    """`call(*args)` in a thread of its own, waited for at most `seconds` more than its own
    timeout: librdkafka's transactional calls can block past their timeout while the group
    coordinator is away (librdkafka#5456, seen here after a broker restart). TimeoutError
    then; the caller drops the producer, and the new one's init fences it."""
    done = threading.Event()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, call(*args)))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=run, name="kafka-transaction", daemon=True).start()
    if not done.wait(seconds + 5):
        raise TimeoutError(f"{getattr(call, '__name__', 'the call')} did not return in "
                           f"{seconds + 5:.0f} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _bytes(key: Any) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode()
