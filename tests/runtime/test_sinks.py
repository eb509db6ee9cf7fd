from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from neptune_runtime import sinks


def test_jsonlines_appends_one_line_per_output(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = sinks.JsonLines(path)
    sink.write("score", [{"id": 1}, {"id": 2}])
    sink.write("score", [{"id": 3}])
    sink.close()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"id": 1}, {"id": 2}, {"id": 3}]


def test_callback_receives_job_and_outputs() -> None:
    got: list[tuple[str, list[Any]]] = []
    sinks.Callback(lambda job, outputs: got.append((job, outputs))).write("score", [1, 2])
    assert got == [("score", [1, 2])]


def test_log_sink_logs_each_output(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="neptune.sink"):
        sinks.Log().write("score", ["a", "b"])
    assert [r.getMessage() for r in caplog.records] == ["score: a", "score: b"]
