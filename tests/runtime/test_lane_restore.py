"""A keyed lane placed anew (driver/streams.py): its new owner gets the checkpoint store's state
(read by the writer process) and the changes finished since the lane's last commit, as the
executor applies `restore` messages; a commit trims those changes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from neptune_runtime import App, sinks, sources
from neptune_runtime.bodies import IngestLimits
from neptune_runtime.checkpoint_writer import CheckpointWriter
from neptune_runtime.checkpoints import CheckpointStore
from neptune_runtime.driver.figures import JobStats
from neptune_runtime.driver.streams import RESTORE_CHUNK, Streams
from neptune_runtime.keyed import CHUNK, Key, PartitionState, packed
from neptune_runtime.tasks import Task

from .changes import load, pack


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[CheckpointWriter]:
    w = CheckpointWriter(tmp_path)
    w.start()
    yield w
    w.close()


def _streams(writer: CheckpointWriter | None) -> Streams:
    app = App("restore")
    app.stream_job("agg", source=sources.HttpIngest(), task=lambda ctx, events: [], slo="1s",
                   keyed=True, sink=sinks.JsonLines("/dev/null"))
    return Streams(host=None, jobs=list(app.stream_jobs()),  # type: ignore[arg-type]
                   stats={"agg": JobStats()}, saved={}, state_dir=None, limits=IngestLimits(),
                   checkpoint_store=writer)


def _owner(messages: list[dict[str, Any]],
           held: PartitionState | None = None) -> dict[str, dict[Any, Any]]:
    """What an executor holds after the `restore` messages, sent through msgpack."""
    state = held or PartitionState()
    for message in messages:
        wire = msgpack.unpackb(msgpack.packb(message, use_bin_type=True), raw=False)
        if not wire["add"]:
            state = PartitionState()
        state.restore(wire["changes"])
    return state.maps


def _task() -> Task:
    return Task(id="t", job="agg", kind="stream", priority=1, ready_at=0.0, partition=0)


def test_the_store_gives_a_lane_its_state_packed_and_no_other_lanes(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    big: dict[Key, Any] = {f"k{i}": [i, "x"] for i in range(2 * CHUNK + 7)}
    store.commit({("agg", 1): [*packed("n", big), *pack([["m", 1.5, {"a": 1}], ["m", 2, None],
                                                         ["m", b"b", True]])],
                  ("agg", 10): pack([["n", "other", 1]]), ("ag", 1): pack([["n", "o", 1]])},
                 {("agg", 1): 3})
    changes = store.changes(("agg", 1))
    assert len(changes) == 4, "CHUNK keys a map, and a name's rows never share a map"
    restored = PartitionState()
    restored.restore(changes)
    assert restored.maps == load(store)[0][("agg", 1)] == {"n": big, "m": {1.5: {"a": 1},
                                                                         b"b": True}}
    assert store.changes(("agg", 2)) == []
    store.close()


def test_a_lane_placed_anew_gets_the_store_then_the_changes_since(
        writer: CheckpointWriter) -> None:
    streams = _streams(writer)
    writer.commit({("agg", 0): pack([["n", "old", [0]], ["n", "gone", [1]], ["n", "kept", 2]])},
                  {("agg", 0): 1})
    lane = streams.jobs["agg"].lane(0)
    lane.since = [*pack([["n", "gone", None], ["n", "old", [5]]]),
                  *packed("n", {i: [i] for i in range(RESTORE_CHUNK * CHUNK)})]
    messages = streams.placing(_task(), "exec-1")
    assert len(messages) == 2, "RESTORE_CHUNK packed maps a message"
    expected: dict[Key, Any] = {i: [i] for i in range(RESTORE_CHUNK * CHUNK)}
    assert _owner(messages) == {"n": {"old": [5], "kept": 2, **expected}}
    assert streams.placing(_task(), "exec-1") == [], "its owner holds it now"
    assert _owner(streams.placing(_task(), "exec-2"),
                  held=PartitionState({"n": {"stale": 1}}))["n"]["old"] == [5], \
        "another owner: the first message replaces what it held"


def test_changes_that_the_store_has_already_change_nothing_applied_again(
        writer: CheckpointWriter) -> None:
    """A commit that ended while the lane was placed: the store has the changes, and the lane
    still lists them (trimmed once the commit's answer is back)."""
    streams = _streams(writer)
    lane = streams.jobs["agg"].lane(0)
    lane.since = pack([["n", "a", 1], ["n", "b", 2], ["n", "a", None], ["n", "c", 3]])
    writer.commit({("agg", 0): lane.since[:3]}, {("agg", 0): 1})
    assert _owner(streams.placing(_task(), "exec-1")) == {"n": {"b": 2, "c": 3}}


def test_an_empty_lane_and_a_driver_without_a_store_restore_nothing_stale() -> None:
    streams = _streams(None)
    lane = streams.jobs["agg"].lane(0)
    assert _owner(streams.placing(_task(), "exec-1"),
                  held=PartitionState({"n": {"stale": 1}})) == {}
    lane.since = pack([["n", "a", 1]])
    lane.owner = None
    assert _owner(streams.placing(_task(), "exec-2")) == {"n": {"a": 1}}


def test_a_commit_trims_the_changes_since_by_what_it_wrote(writer: CheckpointWriter) -> None:
    streams = _streams(writer)
    st = streams.jobs["agg"]
    lane = st.lane(0)
    first, later = pack([["n", "a", 1], ["n", "b", 2]]), pack([["n", "c", 3]])
    lane.since = first + later  # `later` finished, not handed on yet
    lane.unsaved = list(first)
    lane.handed_on = 7
    asyncio.run(streams._commit([(st, lane)], None))
    assert lane.since == later and lane.unsaved == [] and lane.committed == 7
    stored = PartitionState()
    stored.restore(writer.changes(("agg", 0)))
    assert stored.maps == {"n": {"a": 1, "b": 2}}
    streams.lost("exec-1")
    assert _owner(streams.placing(_task(), "exec-1")) == {"n": {"a": 1, "b": 2, "c": 3}}


def test_a_lane_whose_store_cannot_be_read_stops_the_driver_not_on_an_empty_state(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = CheckpointWriter(tmp_path / "file")
    (tmp_path / "file").write_text("not a directory")
    streams = _streams(writer)
    with pytest.raises(SystemExit) as stopped:
        streams.placing(_task(), "exec-1")
    assert stopped.value.code == 2
    assert "cannot read its keyed state from the checkpoint store" in caplog.text
    assert streams.jobs["agg"].lane(0).owner is None
