"""The state directory: the ingest log, the offset store, and the sources restoring from them."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from neptune_runtime import App, sources
from neptune_runtime.driver import Driver
from neptune_runtime.durable import IngestLog, OffsetStore, StateDirError, open_state_dir
from neptune_runtime.sources import HttpIngest, Saved

from .test_sources import Collect


def replay(state_dir: Path, committed: int | None, job: str = "j") -> Collect:
    """What a restarted HttpIngest emits before taking new events."""
    async def go() -> Collect:
        source = HttpIngest()
        source.restore(Saved(job, committed, state_dir))
        out = Collect()
        task = asyncio.create_task(source.run(out))
        for _ in range(10_000):  # the replay yields between its chunks
            if source.accepting:
                break
            await asyncio.sleep(0)
        assert source.accepting
        task.cancel()
        return out

    return asyncio.run(go())


def segment_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.jsonl"))


def test_log_appends_and_replays_after_the_committed_token(tmp_path: Path) -> None:
    log = IngestLog(tmp_path / "ingest" / "j")
    assert log.append([{"n": 0}, {"n": 1}]) == 2
    assert log.append([{"n": 2}]) == 3
    log.syncer()()
    out = replay(tmp_path, None)
    assert out.events == [({"n": 0}, 1), ({"n": 1}, 2), ({"n": 2}, 3)]
    assert replay(tmp_path, 2).events == [({"n": 2}, 3)]
    assert replay(tmp_path, 3).events == []
    assert out.bad == []


def test_log_rolls_segments_by_size_and_numbers_events_across_them(tmp_path: Path) -> None:
    directory = tmp_path / "ingest" / "j"
    log = IngestLog(directory, segment_bytes=40)
    for n in range(10):
        log.append([{"n": n}])  # 8 bytes a line: a new segment every 5 events
    assert segment_files(directory) == [f"{base:020d}.jsonl" for base in (0, 5)]
    for n in range(10, 12):
        log.append([{"n": n}, {"n": n + 100}])
    assert segment_files(directory)[-1] == f"{10:020d}.jsonl"
    assert [b for b, _ in log.segments(after=7)] == [5, 10]
    events = replay(tmp_path, 3).events
    assert [token for _, token in events] == list(range(4, 15))
    assert events[0] == ({"n": 3}, 4) and events[-1] == ({"n": 111}, 14)


def test_log_deletes_only_fully_committed_finished_segments(tmp_path: Path) -> None:
    directory = tmp_path / "ingest" / "j"
    log = IngestLog(directory, segment_bytes=40)
    for n in range(12):
        log.append([{"n": n}])
    assert len(segment_files(directory)) == 3  # events 1-5, 6-10, 11-12 by token
    log.compact(4)
    assert len(segment_files(directory)) == 3, "segment 1-5 still holds token 5"
    log.compact(5)
    assert segment_files(directory) == [f"{base:020d}.jsonl" for base in (5, 10)]
    log.compact(12)  # everything committed: the active segment stays, it numbers what follows
    assert segment_files(directory) == [f"{10:020d}.jsonl"]
    assert IngestLog(directory).accepted == 12
    assert replay(tmp_path, 5).events == [({"n": 10}, 11), ({"n": 11}, 12)]


def test_log_cuts_a_torn_last_line_and_appends_after_the_whole_ones(tmp_path: Path) -> None:
    directory = tmp_path / "ingest" / "j"
    IngestLog(directory).append([{"n": 0}, {"n": 1}])
    segment = directory / f"{0:020d}.jsonl"
    with segment.open("ab") as handle:
        handle.write(b'{"n": 2, "tr')  # the driver died in the middle of this write
    out = replay(tmp_path, None)
    assert out.events == [({"n": 0}, 1), ({"n": 1}, 2)]
    assert len(out.bad) == 1 and "torn last line of 12 bytes" in out.bad[0]
    log = IngestLog(directory)
    assert (log.accepted, log.torn) == (2, 0), "cut once, at the first reopen"
    assert log.append([{"n": 2}]) == 3
    assert segment.read_bytes().splitlines()[-1] == b'{"n":2}'
    assert replay(tmp_path, 2).events == [({"n": 2}, 3)]


def test_log_counts_tokens_across_reopens(tmp_path: Path) -> None:
    directory = tmp_path / "ingest" / "j"
    assert IngestLog(directory).append(["a", "b", "c"]) == 3
    again = IngestLog(directory)
    assert again.accepted == 3
    assert again.append(["d"]) == 4
    assert IngestLog(directory, segment_bytes=1).append(["e"]) == 5  # rolls: base 4
    assert IngestLog(directory).accepted == 5
    assert [t for _, t in replay(tmp_path, 1).events] == [2, 3, 4, 5]


def test_log_write_failure_leaves_no_partial_batch(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "ingest" / "j"
    log = IngestLog(directory)
    log.append(["kept"])
    real_write = os.write

    def disk_full_halfway(fd: int, data: Any) -> int:
        real_write(fd, bytes(data[:3]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full_halfway)
    with pytest.raises(OSError, match="No space"):
        log.append(["lost", "too"])
    monkeypatch.undo()
    assert log.accepted == 1
    assert log.append(["next"]) == 2
    assert (directory / f"{0:020d}.jsonl").read_bytes() == b'"kept"\n"next"\n'


def test_http_ingest_with_a_state_dir_emits_durable_events_in_order(tmp_path: Path) -> None:
    async def go() -> tuple[HttpIngest, Collect]:
        source = HttpIngest()
        source.restore(Saved("j", None, tmp_path))
        out = Collect()
        task = asyncio.create_task(source.run(out))
        await asyncio.sleep(0)
        counts = await asyncio.gather(*(source.ingest([i, i + 100]) for i in range(20)))
        assert counts == [2] * 20
        task.cancel()
        return source, out

    source, out = asyncio.run(go())
    assert source.accepted == 40
    assert [token for _, token in out.events] == list(range(1, 41))
    assert [value for value, _ in out.events][:4] == [0, 100, 1, 101]
    assert IngestLog(tmp_path / "ingest" / "j").accepted == 40
    source.commit(40)  # one segment only: nothing to delete, nothing broken
    assert [t for _, t in replay(tmp_path, 38).events] == [39, 40]


def test_http_ingest_without_a_state_dir_numbers_events_from_one() -> None:
    async def go() -> Collect:
        source = HttpIngest()
        out = Collect()
        task = asyncio.create_task(source.run(out))
        await asyncio.sleep(0)
        await source.ingest(["a", "b"])
        await source.ingest(["c"])
        task.cancel()
        return out

    assert asyncio.run(go()).events == [("a", 1), ("b", 2), ("c", 3)]


def test_offset_store_round_trip_and_atomic_replace(tmp_path: Path) -> None:
    store = OffsetStore(tmp_path)
    assert store.load() == {}
    store.save({"a": ("http", {0: 3}), "tail": ("jsonl", {0: ("x.jsonl", 120)}),
                "none": ("http", {}), "kafka": ("kafka", {0: 5, 2: 7})})
    store.save({"a": ("http", {0: 4}), "tail": ("jsonl", {0: ("x.jsonl", 240)}),
                "none": ("http", {}), "kafka": ("kafka", {0: 6, 2: 7})})
    assert OffsetStore(tmp_path).load() == {
        "a": ("http", {0: 4}), "tail": ("jsonl", {0: ["x.jsonl", 240]}), "none": ("http", {}),
        "kafka": ("kafka", {0: 6, 2: 7})}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["offsets.json"]


def test_offset_store_reads_the_single_token_files_of_earlier_drivers(tmp_path: Path) -> None:
    (tmp_path / "offsets.json").write_text(json.dumps({
        "a": {"source": "http", "committed": 9}, "b": {"source": "http", "committed": None}}))
    assert OffsetStore(tmp_path).load() == {"a": ("http", {0: 9}), "b": ("http", {})}


def test_driver_restores_a_job_only_from_a_token_of_the_same_kind_of_source(
        tmp_path: Path) -> None:
    OffsetStore(tmp_path).save({"same": ("synthetic", {0: 41}),
                                "changed": ("jsonl", {0: ["x", 9]})})
    app = App("t")
    same = sources.Synthetic(rate=1e6, limit=44)
    app.stream_job("same", source=same, task=lambda c, r: [], slo="1s")
    for name in ("changed", "new"):
        app.stream_job(name, source=sources.Synthetic(rate=1e6), task=lambda c, r: [], slo="1s")
    driver = Driver(app, "secret", state_dir=tmp_path)
    assert {name: {p: lane.resumed_from for p, lane in job.lanes.items()}
            for name, job in driver.streams.jobs.items()} == {
        "same": {0: 41}, "changed": {}, "new": {}}
    out = Collect()
    asyncio.run(same.run(out))
    assert [token for _, token in out.events] == [42, 43]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"a": 3}'])
def test_offset_store_names_an_unreadable_file(tmp_path: Path, content: str) -> None:
    (tmp_path / "offsets.json").write_text(content)
    with pytest.raises(StateDirError, match=str(tmp_path / "offsets.json")):
        OffsetStore(tmp_path).load()


def test_state_dir_is_created_or_refused_by_name(tmp_path: Path) -> None:
    made = open_state_dir(tmp_path / "a" / "b")
    assert [p.name for p in made.iterdir()] == ["lock"], "the write probe is gone"
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateDirError, match=f"state directory {blocker / 'state'} is not usable"):
        open_state_dir(blocker / "state")


def test_synthetic_resumes_after_the_committed_index_with_the_same_events() -> None:
    def take(committed: int | None, tmp: Path) -> list[tuple[Any, Any]]:
        source = sources.Synthetic(rate=100_000.0, partitions=3, seed=5, limit=30_000)
        if committed is not None:
            source.restore(Saved("s", committed, tmp))
        out = Collect()
        asyncio.run(source.run(out))
        return out.events

    whole = take(None, Path("."))
    rest = take(20_000, Path("."))
    assert rest == whole[20_001:]
    assert rest[0][1] == 20_001


def test_jsonl_tail_keeps_its_offsets_in_the_state_dir(tmp_path: Path) -> None:
    data, state = tmp_path / "data", tmp_path / "state"
    data.mkdir()
    state.mkdir()
    tail = sources.JsonLinesTail(data)
    tail.restore(Saved("lines", None, state))
    tail.commit(("a.jsonl", 42))
    assert json.loads((state / "tail" / "lines.json").read_text()) == {"a.jsonl": 42}
    assert list(data.iterdir()) == [], "nothing written beside the data"
    given = tmp_path / "given.json"
    explicit = sources.JsonLinesTail(data, offsets_file=given)
    explicit.restore(Saved("lines", None, state))
    explicit.commit(("a.jsonl", 7))
    assert json.loads(given.read_text()) == {"a.jsonl": 7}


def test_state_dir_is_held_by_one_process_at_a_time(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(tmp_path / 'lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(StateDirError, match=f"{tmp_path} is in use by another driver"):
            open_state_dir(tmp_path, lock_wait=0.3)
    finally:
        holder.kill()  # the kernel releases a killed holder's lock
        holder.wait()
    assert open_state_dir(tmp_path, lock_wait=5) == tmp_path
    assert open_state_dir(tmp_path, lock_wait=0) == tmp_path, "this process holds it already"


def test_a_kafka_job_whose_topic_changed_does_not_resume_from_the_old_topic_s_offsets(
        tmp_path: Path) -> None:
    OffsetStore(tmp_path).save({"k": ("kafka:old:g", {0: 41, 1: 7})})
    app = App("t")
    app.stream_job("k", source=sources.Kafka("new", bootstrap="127.0.0.1:1", group="g"),
                   task=lambda c, r: [], slo="1s")
    driver = Driver(app, "secret", state_dir=tmp_path)
    assert {p: lane.resumed_from for p, lane in driver.streams.jobs["k"].lanes.items()} == {}
    OffsetStore(tmp_path).save({"k": ("kafka:new:g", {0: 41, 1: 7})})
    again = Driver(app, "secret", state_dir=tmp_path)
    assert {p: lane.resumed_from for p, lane in again.streams.jobs["k"].lanes.items()} == {
        0: 41, 1: 7}
