"""A real Kafka broker for the tests that claim Kafka: the one `make kafka-up` starts.

Nothing here mocks a broker and nothing is skipped: when no broker answers, every test that
needs one fails and says how to start it. Without confluent-kafka in the environment, this
directory collects to one failing test that says so (rather than an import error that would
stop the whole pytest session).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

MISSING = (
    None if importlib.util.find_spec("confluent_kafka") is not None else
    "confluent-kafka is not installed in this environment: the Kafka tests need it "
    "(`.venv/bin/pip install confluent-kafka`, or the project's own dependency once it lists it)"
)

if MISSING is None:
    from .kafka_fixtures import bootstrap, new_topic

    __all__ = ["bootstrap", "new_topic"]
else:

    class ClientMissing(pytest.Item):
        def runtest(self) -> None:
            pytest.fail(str(MISSING), pytrace=False)

        def reportinfo(self) -> tuple[Path, int, str]:
            return self.path, 0, "tests/kafka needs confluent-kafka"

    class ClientMissingFile(pytest.File):
        def collect(self) -> Iterator[pytest.Item]:
            yield ClientMissing.from_parent(self, name="confluent_kafka_installed")

    def pytest_ignore_collect(collection_path: Path) -> bool | None:
        return collection_path.name.startswith("test_") or None

    def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.File | None:
        if file_path.name == "conftest.py" and file_path.parent == Path(__file__).parent:
            return ClientMissingFile.from_parent(parent, path=file_path)
        return None
