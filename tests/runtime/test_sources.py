from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from neptune_runtime import sources


class Collect:
    def __init__(self) -> None:
        self.events: list[tuple[Any, Any]] = []
        self.bad: list[str] = []

    def emit(self, value: Any, token: Any) -> None:
        self.events.append((value, token))

    def emit_all(self, events: list[tuple[Any, Any]]) -> None:
        self.events += events

    def malformed(self, reason: str) -> None:
        self.bad.append(reason)


def test_synthetic_is_deterministic_per_partition() -> None:
    async def take(seed: int) -> list[Any]:
        out = Collect()
        src = sources.Synthetic(rate=10_000.0, partitions=3, seed=seed, limit=30)
        await src.run(out)
        return [v for v, _ in out.events]

    first, again, other = (asyncio.run(take(s)) for s in (1, 1, 2))
    assert first == again
    assert first != other
    assert [e["partition"] for e in first[:4]] == [0, 1, 2, 0]


@pytest.mark.parametrize(("body", "ctype", "expected"), [
    (b'{"a": 1}', "application/json", [{"a": 1}]),
    (b'[1, 2, 3]', "application/json", [1, 2, 3]),
    (b'{"a": 1}\n\n{"a": 2}\n', "application/x-ndjson", [{"a": 1}, {"a": 2}]),
])
def test_parse_body(body: bytes, ctype: str, expected: list[Any]) -> None:
    assert sources.parse_body(body, ctype) == expected


@pytest.mark.parametrize(("body", "ctype", "message"), [
    (b"", "application/json", "empty body"),
    (b'{"a": ', "application/json", "invalid JSON at line 1"),
    (b'{"a": 1}\n{oops}\n', "application/x-ndjson", "line 2: invalid JSON"),
])
def test_parse_body_names_the_problem(body: bytes, ctype: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sources.parse_body(body, ctype)


def test_jsonl_tail_skips_malformed_and_resumes_from_commit(tmp_path: Path) -> None:
    data = tmp_path / "events"
    data.mkdir()
    lines = [json.dumps({"n": 1}), "not json", json.dumps({"n": 2})]
    (data / "a.jsonl").write_text("\n".join(lines) + "\n" + '{"n": 3')  # last line incomplete
    src = sources.JsonLinesTail(data)
    out = Collect()
    end = src._read_new(data / "a.jsonl", 0, out)
    assert [v for v, _ in out.events] == [{"n": 1}, {"n": 2}]
    assert len(out.bad) == 1 and "a.jsonl at byte" in out.bad[0]
    src.commit(out.events[0][1])  # only the first event's task finished
    assert src.committed() == {"a.jsonl": out.events[0][1][1]}
    again = Collect()
    sources.JsonLinesTail._read_new(data / "a.jsonl", src.committed()["a.jsonl"], again)
    assert [v for v, _ in again.events] == [{"n": 2}]
    assert end == len(("\n".join(lines) + "\n").encode())
