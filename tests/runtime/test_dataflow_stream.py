"""The Stream builder and its operators, run as the runtime runs a task (pure): what each
operator does, what the job it compiles to looks like, bad input (each error names the job,
the operator and the record or field; or the record is counted and skipped), late records and
their side output, and shared state joined in."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest

from neptune_runtime import App, sinks, sources
from neptune_runtime.app import StreamJob, TaskContext
from neptune_runtime.dataflow import (
    DataflowError,
    RoutedSink,
    Stream,
    count,
    hopping,
    mean,
    reduce,
    session,
    sliding,
    tumbling,
)
from neptune_runtime.dataflow import sum as total
from neptune_runtime.keyed import PartitionState


class Collect(sinks.Sink):
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def write(self, job: str, outputs: list[Any]) -> None:
        self.seen += outputs


def new(on_bad: Any = "fail") -> tuple[App, Stream]:
    app = App("t")
    return app, app.stream("j", sources.HttpIngest(), slo="1s", on_bad=on_bad)


def job_of(app: App) -> StreamJob:
    job = app.job("j")
    assert isinstance(job, StreamJob)
    return job


class Lane:
    def __init__(self, app: App) -> None:
        self.job = job_of(app)
        self.state = PartitionState()
        self.states: dict[str, tuple[int, Any]] = {}

    def run(self, records: list[Any]) -> list[Any]:
        keyed = self.state.begin() if self.job.keyed else None
        ctx = TaskContext("t1", "j", 0, 0, 0, self.states, frozenset({"model"}), keyed)
        out = self.job.task(ctx, iter(records))
        if keyed is not None:
            keyed.changes()
            keyed.commit()
        return list(out or [])

    def counters(self) -> dict[Any, Any]:
        return dict(self.state.maps.get("dataflow", {}))


# -- the job it compiles to ---------------------------------------------------------------------
def test_a_stateless_stream_is_one_unkeyed_batchable_job_with_its_sink() -> None:
    app, stream = new()
    out = Collect()
    (stream.map(lambda x: x * 10).filter(lambda x: x != 20).flat_map(lambda x: [x, x + 1])
     .to(out))
    job = job_of(app)
    assert list(app.jobs) == ["j"] and not job.keyed and job.batchable and job.sink is out
    assert isinstance(job.source, sources.HttpIngest) and job.slo == 1.0
    assert Lane(app).run([1, 2, 3]) == [10, 11, 30, 31]


def test_a_window_makes_the_job_keyed() -> None:
    app, stream = new()
    stream.window(tumbling(10), time="ts").count().final()
    assert job_of(app).keyed


def test_branches_and_side_outputs_route_to_their_sinks() -> None:
    app, stream = new()
    evens, odds, late = Collect(), Collect(), Collect()
    stream.filter(lambda e: e["ts"] % 2 == 0).to(evens)
    stream.filter(lambda e: e["ts"] % 2 == 1).to(odds)
    stream.window(tumbling(10), time="ts", late=late).count().final().to(evens)
    job = job_of(app)
    assert isinstance(job.sink, RoutedSink) and job.sink.sinks == [evens, odds, late, evens]
    lane = Lane(app)
    job.sink.write("j", lane.run([{"ts": 1}, {"ts": 12}, {"ts": 2}]))
    assert odds.seen == [{"ts": 1}]
    assert evens.seen == [{"ts": 12}, {"ts": 2}, {"key": None, "start": 0, "end": 10, "count": 1}]
    assert late.seen == [{"record": {"ts": 2}, "key": None, "time": 2, "watermark": 12,
                          "operator": "window#3"}]
    assert lane.counters()["window#3.late"] == 1


def test_to_returns_the_same_stream_so_more_may_follow() -> None:
    app, stream = new()
    a, b = Collect(), Collect()
    stream.to(a).map(str).to(b)
    job = job_of(app)
    assert isinstance(job.sink, RoutedSink)
    job.sink.write("j", Lane(app).run([1, 2]))
    assert a.seen == [1, 2] and b.seen == ["1", "2"]


def test_an_exactly_once_kafka_sink_must_be_the_only_sink() -> None:
    _app, stream = new()
    stream.to(sinks.Kafka("t", bootstrap="localhost:9092", exactly_once=True))
    with pytest.raises(ValueError, match="exactly-once Kafka sink must be the stream's only"):
        stream.to(Collect())


def test_operators_cannot_be_added_once_the_stream_runs() -> None:
    app, stream = new()
    stream.to(Collect())
    Lane(app).run([1])
    with pytest.raises(RuntimeError, match="job j: its stream already runs"):
        stream.map(str)


def test_declaration_mistakes_are_refused_with_the_job_named() -> None:
    _app, stream = new()
    with pytest.raises(ValueError, match="job j: on_bad must be 'fail' or 'skip'"):
        stream.map(str, on_bad="ignore")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="window\\(\\) takes tumbling"):
        stream.window(10, time="ts")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key_by takes a field name or a function"):
        stream.key_by(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'start' is a field of every window's result"):
        stream.window(tumbling(5), time="ts").agg(start=count())
    with pytest.raises(ValueError, match="cannot merge two sessions: give reduce"):
        stream.window(session(5), time="ts").agg(r=reduce(lambda a, v: a + v, initial=0))
    windowed = stream.window(tumbling(5), time="ts", name="mine").count()
    windowed.final()
    with pytest.raises(ValueError, match="state name 'mine' is taken"):
        windowed.current()
    with pytest.raises(ValueError, match="state name 'dataflow' is taken"):
        stream.window(tumbling(5), time="ts", name="dataflow").count().final()
    with pytest.raises(ValueError, match="step 20 is longer than size 10"):
        hopping(10, 20)
    with pytest.raises(ValueError, match="grace"):
        stream.window(tumbling(5), time="ts", grace=-1)
    with pytest.raises(ValueError, match="size"):
        tumbling("soon")
    with pytest.raises(ValueError, match="job j: on_bad"):
        App("u").stream("j", sources.HttpIngest(), slo="1s", on_bad="maybe")  # type: ignore[arg-type]
    assert tumbling("1m").size == 60 and session("1.5s").gap == 1.5


# -- keys, event times, aggregations ------------------------------------------------------------
def test_keys_of_every_storable_kind_come_back_as_they_went_in() -> None:
    app, stream = new()
    out = Collect()
    stream.key_by(lambda e: e["k"]).window(tumbling(10), time="ts").agg(
        n=count(), amount=total("v"), avg=mean("v")).final().to(out)
    lane = Lane(app)
    keys: list[Any] = ["a", 7, ("u", 1), None, b"raw", 2.5, True, 2**70 // 2**10]
    out.write("j", lane.run([{"k": k, "ts": i, "v": i} for i, k in enumerate(keys)]))
    out.write("j", lane.run([{"k": "a", "ts": 10, "v": 0}]))
    assert sorted(((r["key"], r["n"], r["amount"]) for r in out.seen), key=repr) == sorted(
        ((k, 1, i) for i, k in enumerate(keys)), key=repr)
    assert {type(r["key"]) for r in out.seen} >= {tuple, bytes, type(None), float, bool}


def test_event_time_from_a_function_or_a_datetime() -> None:
    app, stream = new()
    out = Collect()
    stream.window(tumbling(60), time=lambda e: e["at"]).count().final().to(out)
    lane = Lane(app)
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    out.write("j", lane.run([{"at": start}, {"at": start + datetime.timedelta(seconds=61)}]))
    assert out.seen == [{"key": None, "start": start.timestamp(),
                         "end": start.timestamp() + 60, "count": 1}]


def test_a_window_of_window_results_and_the_aggregations_at_once() -> None:
    app, stream = new()
    out = Collect()
    minutes = stream.key_by("k").window(tumbling(10), time="ts").agg(
        n=count(), amount=total("v"), first=reduce(lambda a, b: a, "v"),
        hi=reduce(max, "v", initial=-1, merge=max)).final()
    minutes.window(tumbling(20), time="start").agg(windows=count(), n=total("n")).final().to(out)
    lane = Lane(app)
    rows = [{"k": "a", "ts": t, "v": t} for t in (1, 2, 11, 25, 33, 45, 61)]
    for row in rows:
        out.write("j", lane.run([row]))
    # the 10-windows close at 11, 25, 33, 45 and 61: starts 0, 10, 20, 30, 40; the 20-windows
    # over those starts close as start 20 and start 40 arrive
    assert out.seen == [{"key": "a", "start": 0, "end": 20, "windows": 2, "n": 3},
                        {"key": "a", "start": 20, "end": 40, "windows": 2, "n": 2}]


def test_sliding_and_session_current_results() -> None:
    app, stream = new()
    slid, sess = Collect(), Collect()
    keyed = stream.key_by("k")
    keyed.window(sliding(5), time="ts").count().current().to(slid)
    keyed.window(session(3), time="ts").agg(n=count()).current().to(sess)
    job = job_of(app)
    assert isinstance(job.sink, RoutedSink)
    job.sink.write("j", Lane(app).run([{"k": "a", "ts": t} for t in (0, 2, 4, 9)]))
    assert [(r["start"], r["end"], r["count"]) for r in slid.seen] == [
        (-5, 0, 1), (-3, 2, 2), (-1, 4, 3), (4, 9, 1)]  # (4, 9]: 9 alone
    assert [(r["start"], r["end"], r["n"]) for r in sess.seen] == [
        (0, 3, 1), (0, 5, 2), (0, 7, 3), (9, 12, 1)]


def test_join_state_enriches_with_the_published_value() -> None:
    app, stream = new()
    out = Collect()
    stream.join_state("model").to(out)
    stream.join_state("model", lambda e, m: e * m, default=1).to(out)
    job = job_of(app)
    assert isinstance(job.sink, RoutedSink) and not job.keyed
    lane = Lane(app)
    job.sink.write("j", lane.run([3]))  # nothing published yet
    lane.states["model"] = (4, 10)
    job.sink.write("j", lane.run([3]))
    assert out.seen == [(3, None), 3, (3, 10), 30]


# -- bad input ----------------------------------------------------------------------------------
def user_of(event: dict[str, Any]) -> Any:
    return event["user"]


def test_a_key_function_that_raises_names_the_job_operator_and_record() -> None:
    app, stream = new()
    stream.map(lambda e: e).key_by(user_of).window(tumbling(5), time="ts").count().final()
    with pytest.raises(DataflowError) as info:
        Lane(app).run([{"user": "a", "ts": 1}, {"ts": 2, "id": 17}])
    message = str(info.value)
    assert message.startswith("job j, operator key_by#2 (user_of): the key function raised "
                              "KeyError: 'user'")
    assert "(record {'ts': 2, 'id': 17})" in message


def test_an_unhashable_key_names_the_job_operator_and_record() -> None:
    app, stream = new()
    stream.key_by("tags").window(tumbling(5), time="ts").count().final()
    with pytest.raises(DataflowError, match=r"job j, operator key_by#1 \('tags'\): key \['x'\] "
                       r"is unhashable \(a list\).*\(record \{'tags': \['x'\], 'ts': 1\}\)"):
        Lane(app).run([{"tags": ["x"], "ts": 1}])


def test_a_key_keyed_state_cannot_hold_names_the_window() -> None:
    app, stream = new()
    stream.key_by(lambda e: object.__new__(Opaque)).window(tumbling(5), time="ts").count() \
        .final()
    with pytest.raises(DataflowError, match=r"operator window#2 \(tumbling\(5\), final\): key "
                       r"<opaque> \(a Opaque\) cannot be kept in keyed state"):
        Lane(app).run([{"ts": 1}])


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


def test_a_record_without_the_event_time_field_names_the_field() -> None:
    app, stream = new()
    stream.key_by("k").window(sliding(5), time="ts").count().final()
    with pytest.raises(DataflowError, match=r"job j, operator window#2 \(sliding\(5\), final\): "
                       r"record has no event-time field 'ts' \(record \{'k': 'a', 'time': 3\}\)"):
        Lane(app).run([{"k": "a", "time": 3}])
    with pytest.raises(DataflowError, match="event-time field 'ts' is 'noon' \\(a str\\), not a "
                       "number"):
        Lane(app).run([{"k": "a", "ts": "noon"}])
    app2, stream2 = new()
    stream2.window(tumbling(5), time="ts").count().final()
    with pytest.raises(DataflowError, match=r"operator window#1 \(tumbling\(5\), final\): record "
                       r"is not a mapping \(it is a int\), so it has no event-time field 'ts'"):
        Lane(app2).run([5])


def test_an_aggregation_without_its_field_names_the_field() -> None:
    app, stream = new()
    stream.window(tumbling(5), time="ts").agg(spent=total("amount")).current()
    with pytest.raises(DataflowError, match=r"operator window#1 \(tumbling\(5\), current\): "
                       "record has no field 'amount'"):
        Lane(app).run([{"ts": 1}])
    with pytest.raises(DataflowError, match=r"sum\('amount'\): the value 'x' is a str, not a "
                       "number"):
        Lane(app).run([{"ts": 1, "amount": "x"}])


def test_a_failing_map_names_the_function_and_the_record() -> None:
    app, stream = new()
    stream.map(lambda e: 1 / e).to(Collect())
    with pytest.raises(DataflowError, match=r"job j, operator map#1 \(<lambda>\): the function "
                       r"raised ZeroDivisionError: division by zero \(record 0\)"):
        Lane(app).run([1, 0])


def test_long_records_are_cut_in_messages() -> None:
    app, stream = new()
    stream.key_by("missing").to(Collect())
    with pytest.raises(DataflowError) as info:
        Lane(app).run([{"x": "y" * 1000}])
    assert len(str(info.value)) < 400 and str(info.value).endswith("...)")


def test_skipped_records_are_counted_in_keyed_state_and_the_rest_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    app, stream = new(on_bad="skip")
    out = Collect()
    stream.key_by(user_of).window(tumbling(5), time="ts").agg(n=count()).final().to(out)
    lane = Lane(app)
    with caplog.at_level(logging.WARNING, "neptune.dataflow"):
        out.write("j", lane.run([{"user": "a", "ts": 1}, {"ts": 2}, {"user": ["x"], "ts": 2},
                                 {"user": "a"}, {"user": "a", "ts": 3}]))
        out.write("j", lane.run([{"user": "b", "ts": 7}, {"ts": 8}]))
    assert out.seen == [{"key": "a", "start": 0, "end": 5, "n": 2}]
    assert lane.counters() == {"key_by#1.skipped": 3, "window#2.skipped": 1,
                               "window#2.clock": 7}
    said = [r.getMessage() for r in caplog.records]
    assert any("job j, operator key_by#1 (user_of): skipped a bad record: the key function "
               "raised KeyError" in s for s in said)
    assert any("window#2" in s and "no event-time field 'ts'" in s for s in said)


def test_on_bad_per_operator_overrides_the_stream_s() -> None:
    app, stream = new(on_bad="fail")
    out = Collect()
    stream.map(int, on_bad="skip").to(out)
    lane = Lane(app)
    assert lane.run(["1", "x", "3"]) == [1, 3]
    app2, stream2 = new(on_bad="skip")
    stream2.map(int, on_bad="fail").to(out)
    with pytest.raises(DataflowError, match="map#1 \\(int\\)"):
        Lane(app2).run(["x"])


def test_a_failed_task_leaves_the_window_state_as_it_was() -> None:
    app, stream = new()
    out = Collect()
    stream.key_by("k").window(tumbling(10), time="ts").agg(n=count()).final().to(out)
    lane = Lane(app)
    lane.run([{"k": "a", "ts": 1}, {"k": "a", "ts": 2}])
    before = {name: dict(values) for name, values in lane.state.maps.items()}
    with pytest.raises(DataflowError):
        lane.run([{"k": "a", "ts": 3}, {"k": "a", "ts": 30}, {"ts": 31}])  # fails at the last
    assert {name: dict(values) for name, values in lane.state.maps.items()
            if values} == {n: v for n, v in before.items() if v}
    out.write("j", lane.run([{"k": "a", "ts": 3}, {"k": "a", "ts": 30}]))
    assert out.seen == [{"key": "a", "start": 0, "end": 10, "n": 3}]
