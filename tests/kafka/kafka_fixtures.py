"""The fixtures of tests/kafka (imported by conftest.py when confluent-kafka is installed)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # not re-exported in its stubs
    AdminClient,
    NewTopic,
)

from .kafka_helpers import broker_error, require_broker, topic_partitions, unique, wait_until


@pytest.fixture(scope="session")
def bootstrap() -> str:
    return require_broker()


@pytest.fixture
def new_topic(bootstrap: str) -> Iterator[Callable[..., str]]:
    """Creates fresh topics (auto-creation is off on the test broker); deletes them after."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    made: list[str] = []

    def create(prefix: str = "t", partitions: int = 1) -> str:
        name = unique(prefix)
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)],
            operation_timeout=30,
        )
        futures[name].result(timeout=60)
        made.append(name)
        wait_until(lambda: topic_partitions(bootstrap, name) == partitions, 30,
                   f"topic {name} in the metadata")
        return name

    yield create
    if made and broker_error(bootstrap, timeout=5) is None:
        for f in admin.delete_topics(made, operation_timeout=30).values():
            with contextlib.suppress(KafkaException):
                f.result(timeout=60)
