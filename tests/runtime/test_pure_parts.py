"""Durations, offsets, windows, the task state machine and the app API's validation."""

from __future__ import annotations

import logging

import pytest

from neptune_runtime import App, sources
from neptune_runtime.driver.streams import Lane
from neptune_runtime.durations import parse_duration
from neptune_runtime.offsets import OffsetTracker
from neptune_runtime.stats import Rate, Window, percentile, summary
from neptune_runtime.tasks import InvalidTransition, Task, TaskTable


@pytest.mark.parametrize(("text", "seconds"), [
    ("50ms", 0.05), ("1.5s", 1.5), ("250us", 250e-6), ("2m", 120.0), (3, 3.0), (" 10 ms ", 0.01)])
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "10", "ms", "-5ms", "0s", "1.5 parsecs", True])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="slo"):
        parse_duration(bad, what="slo")  # type: ignore[arg-type]


def test_offsets_commit_only_contiguous_done_prefix() -> None:
    tracker = OffsetTracker()
    seqs = [tracker.track(("f", pos)) for pos in (10, 20, 30, 40)]
    assert tracker.done([seqs[1]]) is None  # 0 not done yet: nothing may be committed
    assert tracker.done([seqs[0]]) == ("f", 20)
    assert tracker.done([seqs[3]]) is None
    assert tracker.unreleased == 2 and tracker.released == 2
    assert tracker.done([seqs[2]]) == ("f", 40)
    assert tracker.unreleased == 0 and tracker.released == 4


def test_percentiles_and_windows() -> None:
    assert percentile([], 99) == 0.0
    values = sorted(float(v) for v in range(1, 101))
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert summary([3.0, 1.0, 2.0])["max"] == 3.0
    window = Window(seconds=10.0)
    window.add(0.0, 1.0)
    window.add(5.0, 2.0)
    assert window.values(12.0) == [2.0]
    rate = Rate(seconds=10.0)
    rate.add(1.0, 10)
    rate.add(2.0, 10)
    assert rate.per_second(5.0, started=0.0) == pytest.approx(4.0)


def test_task_state_machine_counts_and_refuses_bad_moves() -> None:
    table = TaskTable()
    task = Task("t1", "train", "batch", 0, 0.0)
    table.add(task)
    table.move(task, "running")
    table.move(task, "suspended")
    table.move(task, "running")
    table.move(task, "finished")
    assert table.counts[("finished", "batch")] == 1
    assert table.counts[("running", "batch")] == 0
    with pytest.raises(InvalidTransition, match="finished -> running"):
        table.move(task, "running")


def test_app_validation_messages_name_the_problem() -> None:
    app = App("demo")
    src = sources.Synthetic(rate=1.0)
    app.stream_job("s", source=src, task=lambda c, r: [], slo="10ms")
    with pytest.raises(ValueError, match="duplicate job name 's'"):
        app.stream_job("s", source=src, task=lambda c, r: [], slo="10ms")
    with pytest.raises(ValueError, match="job b: partitions must be at least 1"):
        app.batch_job("b", read=lambda p, e: [], task=lambda c, r: 0, partitions=0)
    with pytest.raises(ValueError, match="needs a combine function"):
        app.batch_job("b", read=lambda p, e: [], task=lambda c, r: 0, partitions=1,
                      publishes="m")
    with pytest.raises(ValueError, match="job x: slo"):
        app.stream_job("x", source=src, task=lambda c, r: [], slo="fast")
    with pytest.raises(ValueError, match="app name"):
        App("Not Valid")


def test_queue_head_keeps_what_any_policy_could_place() -> None:
    table = TaskTable()
    for i in range(100):
        kind, priority = ("stream", 10) if i % 10 == 9 else ("batch", 0)
        table.add(Task(f"t{i}", "j", kind, priority, ready_at=float(i)))  # type: ignore[arg-type]
    head = {t.id for t in table.queue_head(3)}
    assert head == {"t9", "t19", "t29", "t0", "t1", "t2"}
    table.move(table.tasks["t9"], "running")
    assert "t9" not in {t.id for t in table.queue_head(3)}
    assert len(table.queue_head(60)) == 99  # small queues are passed whole


def test_ctx_state_of_a_name_no_job_publishes_warns_once_naming_the_published(
        caplog: pytest.LogCaptureFixture) -> None:
    from neptune_runtime.app import TaskContext

    ctx = TaskContext("t-1", "score", -1, 0, 0, {"model": (1, [0.5])}, frozenset({"model"}))
    with caplog.at_level(logging.WARNING, logger="neptune.app"):
        assert ctx.state("model") == [0.5]
        assert ctx.state("modle", "fallback") == "fallback"
        assert ctx.state("modle") is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, "warn once per name, not per task"
    assert "ctx.state('modle')" in warnings[0] and "published: model" in warnings[0]


def test_a_lane_counts_events_handed_on_as_uncommitted_until_their_commit() -> None:
    # /status `uncommitted` == 0 is what a user (and the fraud test) reads as "every output is
    # committed": an exactly-once sink's records stay invisible to read_committed until then
    lane = Lane(0)
    seqs = [lane.tracker.track(("t", i)) for i in range(3)]
    assert lane.uncommitted == 3
    lane.tracker.done(seqs)
    assert lane.tracker.unreleased == 0 and lane.uncommitted == 3  # handed on, not committed
    lane.committed_released = lane.tracker.released  # what _commit records with its token
    assert lane.uncommitted == 0
