"""The runtime on a real broker: Kafka in, keyed state, Kafka out, with an executor, the driver
or the broker killed mid-run. Read with read_committed, the output holds exactly one result per
event with exactly_once=True and at least one without; the state's totals are exact."""

from __future__ import annotations

import contextlib
import json
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from neptune_runtime.processes import LocalCluster

from .kafka_helpers import ROOT, consume_to_end, kafka_sh, unique, wait_until

APP = str(ROOT / "tests" / "apps" / "kafka_app.py")
CARDS = 6


def produce(bootstrap: str, topic: str, first: int, count: int, raw: bytes | None = None,
            partitions: int | None = None) -> None:
    """Events keyed by card; with `partitions`, card c goes to partition c % partitions."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(first, first + count):
        card = f"c{i % CARDS}"
        value = raw if raw is not None else json.dumps({"id": i, "card": card, "amount": i % 7})
        if partitions is None:
            producer.produce(topic, key=card.encode(), value=value)
        else:
            producer.produce(topic, key=card.encode(), value=value,
                             partition=(i % CARDS) % partitions)
    assert producer.flush(30) == 0


def results(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [json.loads(r.value or b"null") for r in consume_to_end(bootstrap, topic)]


def check(bootstrap: str, out: str, sent: int, exactly_once: bool) -> None:
    rows = results(bootstrap, out)
    counts = Counter(r["id"] for r in rows)
    assert set(counts) == set(range(sent)), f"missing: {sorted(set(range(sent)) - set(counts))}"
    if exactly_once:
        assert max(counts.values()) == 1, f"duplicates: {[i for i, n in counts.items() if n > 1]}"
    best: dict[str, int] = {}
    for row in rows:
        best[row["card"]] = max(best.get(row["card"], 0), row["total"])
    truth: Counter[str] = Counter()
    for i in range(sent):
        truth[f"c{i % CARDS}"] += i % 7
    assert best == dict(truth), "an event was counted twice, or not at all, in state"


def cluster(bootstrap: str, topics: tuple[str, str], tmp_path: Path, eos: bool,
            executors: int = 2, **env: str) -> LocalCluster:
    return LocalCluster(APP, executors=executors, state_dir=str(tmp_path / "state"), env={
        "KAFKA_BOOTSTRAP": bootstrap, "KAFKA_IN": topics[0], "KAFKA_OUT": topics[1],
        "KAFKA_GROUP": unique("g"), "KAFKA_EOS": "1" if eos else "0", "KAFKA_EVENT_MS": "1",
        **env})


def wait_results(bootstrap: str, out: str, count: int, timeout: float = 120) -> None:
    wait_until(lambda: len({r["id"] for r in results(bootstrap, out)}) >= count, timeout,
               f"{count} results in {out}")


def totals(c: LocalCluster) -> dict[str, Any]:
    figures: dict[str, Any] = c.status()["jobs"]["totals"]
    return figures


def degraded(c: LocalCluster, seen: list[dict[str, Any]]) -> bool:
    seen.append(totals(c))
    return bool(seen[-1]["state"] == "degraded")


@pytest.mark.parametrize("eos", [True, False], ids=["exactly_once", "at_least_once"])
@pytest.mark.parametrize("fault", ["executor", "driver", "broker"])
def test_kill_mid_run_loses_nothing_and_counts_state_once(
        bootstrap: str, new_topic: Callable[..., str], tmp_path: Path, eos: bool,
        fault: str) -> None:
    source, out = new_topic("in", partitions=3), new_topic("out", partitions=3)
    produce(bootstrap, source, 0, 300)
    with cluster(bootstrap, (source, out), tmp_path, eos) as c:
        wait_until(lambda: totals(c)["records"] >= 60, 60, "some events processed")
        if fault == "executor":
            # one status read: a task may finish between two
            busy = next((e["id"] for e in c.status()["executors"]["list"] if e["running"]),
                        "exec-0")
            c.procs[busy].send_signal(signal.SIGKILL)
        elif fault == "driver":
            c.kill_driver()
            c.start_driver()
            c.wait_for_executors(2)
        else:
            seen: list[dict[str, Any]] = []
            try:
                assert kafka_sh("down").returncode == 0
                with contextlib.suppress(AssertionError):
                    wait_until(lambda: degraded(c, seen), 20,
                               "the job to say that its broker is away")
            finally:
                assert kafka_sh("up").returncode == 0
            assert seen[-1]["state"] == "degraded", "the job never said its broker was away"
            assert "127.0.0.1:9092" in seen[-1]["error"]
        produce(bootstrap, source, 300, 200)
        wait_results(bootstrap, out, 500)
        wait_until(lambda: totals(c)["uncommitted"] == 0, 60, "everything committed")
    check(bootstrap, out, 500, eos)


def test_lag_bad_records_and_a_dead_letter_topic(
        bootstrap: str, new_topic: Callable[..., str], tmp_path: Path) -> None:
    source, out, dlq = new_topic("in"), new_topic("out"), new_topic("dlq")
    produce(bootstrap, source, 0, 20)
    produce(bootstrap, source, 20, 1, raw=b"not json")
    produce(bootstrap, source, 21, 19)
    with cluster(bootstrap, (source, out), tmp_path, eos=False, executors=1,
                 KAFKA_DLQ=dlq) as c:
        wait_results(bootstrap, out, 39)
        with __import__("urllib.request").request.urlopen(c.http + "/metrics") as response:
            text = response.read().decode()
        assert 'neptune_source_bad_records_total{job="totals"} 1.0' in text
        wait_until(lambda: totals(c)["lag"] == {"0": 0}, 30, "a lag of 0 reported")
        assert 'neptune_source_lag_records{job="totals",partition="0"}' in text
    letters = consume_to_end(bootstrap, dlq)
    assert [r.value for r in letters] == [b"not json"]
    assert {r["id"] for r in results(bootstrap, out)} == set(range(40)) - {20}


def test_an_unknown_topic_degrades_the_job_naming_topic_and_brokers(
        bootstrap: str, new_topic: Callable[..., str], tmp_path: Path) -> None:
    missing = unique("missing")
    with cluster(bootstrap, (missing, new_topic("out")), tmp_path, eos=False,
                 executors=1) as c:
        seen: list[dict[str, Any]] = []
        wait_until(lambda: degraded(c, seen), 30, "the job to be degraded")
        figures = seen[-1]
        assert missing in figures["error"] and bootstrap in figures["error"]
        assert c.status()["phase"] == "Degraded"


def test_partitions_added_to_the_topic_are_picked_up(
        bootstrap: str, new_topic: Callable[..., str], tmp_path: Path) -> None:
    from confluent_kafka.admin import AdminClient, NewPartitions  # type: ignore[attr-defined]

    source, out = new_topic("in", partitions=1), new_topic("out")
    produce(bootstrap, source, 0, 30, partitions=1)
    with cluster(bootstrap, (source, out), tmp_path, eos=False, executors=1) as c:
        wait_results(bootstrap, out, 30)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_partitions([NewPartitions(source, 3)])[source].result(30)
        produce(bootstrap, source, 30, 60, partitions=3)  # now on three partitions
        wait_results(bootstrap, out, 90, timeout=60)
        wait_until(lambda: set(totals(c)["lag"]) == {"0", "1", "2"}, 20,
                   "the lag of all three partitions")
    # Keyed state lives with a partition: cards that moved to a new partition count anew
    # there (as in Kafka Streams, adding partitions re-keys a stateful job).
    assert {r["id"] for r in results(bootstrap, out)} == set(range(90))


def test_a_new_sink_fences_a_dead_drivers_open_transaction(
        bootstrap: str, new_topic: Callable[..., str]) -> None:
    """A driver that died inside its transaction leaves the group's offsets unstable until the
    broker ends that transaction (its timeout, then a cleanup round). The new driver's sink
    takes over the transactional id first, which ends it at once, so that the new driver can
    tell whether that transaction committed without waiting out the old one's timeout."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from neptune_runtime.kafka.sink import KafkaSink
    from neptune_runtime.kafka.source import Kafka

    topic, out = new_topic("fence-in"), new_topic("fence-out")
    group, tid = unique("fence"), unique("tid")
    member = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    dead = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid,
                     "transaction.timeout.ms": 60_000})
    dead.init_transactions(30)
    dead.begin_transaction()
    dead.produce(out, value=b"never committed")
    dead.send_offsets_to_transaction([TopicPartition(topic, 0, 3)],
                                     member.consumer_group_metadata(), 30)
    dead.flush(30)  # and then it says nothing more, as a killed driver would
    source = Kafka(topic, bootstrap=bootstrap, group=group)
    try:
        with pytest.raises(KafkaException):  # unstable for as long as the transaction is open
            source.committed_offsets(timeout=3)
        KafkaSink(out, bootstrap=bootstrap, exactly_once=True, transactional_id=tid).fence()
        assert source.committed_offsets(timeout=10) == {}, "the dead transaction was aborted"
        assert consume_to_end(bootstrap, out, isolation="read_committed") == []
    finally:
        member.close()
