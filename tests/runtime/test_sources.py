from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from neptune_runtime import sources


class Collect:
    def __init__(self) -> None:
        self.events: list[tuple[Any, Any]] = []
        self.bad: list[str] = []
        self.rooms = 0  # how often a source waited for room
        self.problems: list[str | None] = []
        self.lags: dict[int, int] = {}

    def emit(self, value: Any, token: Any, partition: int = 0) -> None:
        self.events.append((value, token))

    def emit_all(self, events: list[tuple[Any, Any]], partition: int = 0) -> None:
        self.events += events

    def malformed(self, reason: str) -> None:
        self.bad.append(reason)

    async def room(self) -> None:
        self.rooms += 1

    def degraded(self, cause: str | None) -> None:
        self.problems.append(cause)

    def lag(self, partition: int, records: int) -> None:
        self.lags[partition] = records


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


def test_jsonl_tail_skips_malformed_and_resumes_from_commit(tmp_path: Path) -> None:
    data = tmp_path / "events"
    data.mkdir()
    lines = [json.dumps({"n": 1}), "not json", json.dumps({"n": 2})]
    (data / "a.jsonl").write_text("\n".join(lines) + "\n" + '{"n": 3')  # last line incomplete
    src = sources.JsonLinesTail(data)
    out = Collect()
    end = asyncio.run(src._read_new(data / "a.jsonl", 0, out))
    assert [v for v, _ in out.events] == [{"n": 1}, {"n": 2}]
    assert len(out.bad) == 1 and "a.jsonl at byte" in out.bad[0]
    src.commit(out.events[0][1])  # only the first event's task finished
    assert src.committed() == {"a.jsonl": out.events[0][1][1]}
    again = Collect()
    asyncio.run(sources.JsonLinesTail._read_new(data / "a.jsonl", src.committed()["a.jsonl"],
                                                again))
    assert [v for v, _ in again.events] == [{"n": 2}]
    assert end == len(("\n".join(lines) + "\n").encode())


def test_a_long_file_is_emitted_in_chunks_waiting_for_room(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    count = 3 * sources.REPLAY_CHUNK + 5
    path.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(count)))
    out = Collect()
    end = asyncio.run(sources.JsonLinesTail._read_new(path, 0, out))
    assert [v["n"] for v, _ in out.events] == list(range(count))
    assert out.rooms == 4, "the source must wait for room after every chunk"
    assert end == path.stat().st_size
