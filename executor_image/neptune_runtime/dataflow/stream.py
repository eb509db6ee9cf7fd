"""Streams: a StreamingDataFrame-like builder that compiles to one low-level stream job.

    from neptune_runtime.dataflow import count, session, sum

    clicks = app.stream("clicks", sources.HttpIngest(), slo="200ms", on_bad="skip")
    (clicks.filter(lambda e: e["kind"] == "click")
           .key_by("user")
           .window(session("30s"), time="ts", grace="5s", late=sinks.JsonLines("late.jsonl"))
           .agg(clicks=count(), spent=sum("amount"))
           .final()
           .to(sinks.Log()))

`app.stream(...)` declares the job at once (`app.stream_job`); the operators chained on it
run, in that order, over each record of each of its tasks, in the task's greenlet, and every
record is a yield point: a stream task of this job preempts batch tasks, and is suspended by
nothing, as any other. A stream may branch (several operators, or several `to`, on one
`Stream`): each record goes down every branch, in the order they were declared.

A stream with a window is keyed (`keyed=True`): each source partition runs one task at a time,
on the executor holding its state, and a task takes every event that waits (`batchable`). The
windows, the watermark and the counters live in `ctx.keyed_state` (state.py): checkpointed with
the offsets, restored where the partition runs next, and a failed task's writes are dropped,
so no event counts twice. `key_by` groups records within their source partition; for one
result per key across partitions, partition the source by that key (a Kafka message key).
The watermark is the partition's too; a partition that receives nothing for a window's
`idle_timeout` closes that window's open windows (idle.py), so `final()` emits when input
stops.

Bad input: a function of an operator that raises, a key that cannot be hashed (or kept in keyed
state), and a record without the event-time field (or a value an aggregation cannot take) are
each a `DataflowError` naming the job, the operator and the record or field, which fails the
task (and the runtime's retries and dead letters take over: docs/architecture.md). With
`on_bad="skip"` (for the whole stream, or per operator) such a record is counted, logged (the
first, then every tenfold) and skipped. Late records are counted too; both counts are kept, in
a keyed stream, in the partition's keyed state "dataflow" (`OPERATOR.skipped`, `OPERATOR.late`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from ..app import STREAM_PRIORITY, OnError, StreamJob, TaskContext, Trigger
from ..kafka.sink import KafkaSink
from ..sinks import Sink
from ..sources import Source
from ..yieldpoint import checkpoint
from . import aggregate, idle
from .aggregate import Aggregation, Named, field_value
from .errors import BadRecord, DataflowError, shown
from .state import WindowState, decode_key, encode_key
from .windows import AUTO, Number, Session, TimeOf, Window, event_time, grace_of, idle_timeout_of

if TYPE_CHECKING:
    from ..app import App

OnBad = Literal["fail", "skip"]
META = "dataflow"  # the keyed state of a stream's clocks and counters
RESERVED = ("key", "start", "end")  # the fields of a window's result besides its aggregations

log = logging.getLogger("neptune.dataflow")
Push = Callable[["_Run", Any, Any], None]  # (run, key, record)
Idler = Callable[["_Run"], None]  # a window operator's answer to an idle lane
_process_counts: Counter[tuple[str, str, str]] = Counter()  # (job, operator, reason)


def _on_bad(value: Any, where: str) -> OnBad:
    if value not in get_args(OnBad):
        raise ValueError(f"{where}: on_bad must be 'fail' or 'skip', got {value!r}")
    on_bad: OnBad = value
    return on_bad


def _named(fn: Any) -> str:
    return repr(fn) if isinstance(fn, str) else getattr(fn, "__name__", type(fn).__name__)


@dataclass(frozen=True)
class Operator:
    """One operator of a stream: its kind, its place in the job (1, 2, ...) and what it
    applies, as error messages and state names show them."""

    kind: str
    index: int
    detail: str
    on_bad: OnBad

    @property
    def label(self) -> str:
        """kind#index, e.g. key_by#2: the name of its counters and state."""
        return f"{self.kind}#{self.index}"

    def __str__(self) -> str:
        return f"{self.label} ({self.detail})" if self.detail else self.label


class RoutedSink(Sink):
    """The job's sink when a stream writes to several sinks (its `to`s and its late side
    outputs): each output is [route, value], and goes to `sinks[route]`. A sink that raises
    has the whole delivery written again, so the sinks before it may see it twice (the
    runtime's sinks are at least once)."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    def write(self, job: str, outputs: list[Any]) -> None:
        """Hand each sink its outputs, in order."""
        batches: dict[int, list[Any]] = {}
        for route, value in outputs:
            batches.setdefault(route, []).append(value)
        for route in sorted(batches):
            self.sinks[route].write(job, batches[route])

    def sync(self) -> None:
        """Sync every sink."""
        for sink in self.sinks:
            sink.sync()

    def close(self) -> None:
        """Close every sink."""
        for sink in self.sinks:
            sink.close()

    def __repr__(self) -> str:
        return f"RoutedSink({self.sinks!r})"


class _Flow:
    """What the streams of one job share: the job, its operators and sinks, its plan."""

    def __init__(self, job: StreamJob, on_bad: OnBad) -> None:
        self.job = job
        self.on_bad = on_bad
        self.operators = 0
        self.routes: list[Sink] = []
        self.root: Stream | None = None
        self.plan: Push | None = None
        self.routed = False
        self.state_names: set[str] = {META}
        self.idle_timeouts: list[float] = []  # its windows' (the driver's watch: idle.py)
        # (operator index, timeout, idler), once compiled: upstream windows first, so what
        # they close on a tick reaches the windows after them before those close too
        self.idlers: list[tuple[int, float, Idler]] = []

    def operator(self, kind: str, detail: str, on_bad: OnBad | None) -> Operator:
        self.frozen_check()
        self.operators += 1
        chosen = self.on_bad if on_bad is None else _on_bad(on_bad, f"job {self.job.name}")
        return Operator(kind, self.operators, detail, chosen)

    def frozen_check(self) -> None:
        if self.plan is not None:
            raise RuntimeError(f"job {self.job.name}: its stream already runs; declare every "
                               "operator when the app module is imported")

    def route(self, sink: Sink) -> int:
        if not isinstance(sink, Sink):
            raise TypeError(f"job {self.job.name}: {sink!r} is not a sink (neptune_runtime."
                            "sinks)")
        self.frozen_check()
        self.routes.append(sink)
        if len(self.routes) > 1 and any(isinstance(s, KafkaSink) and s.exactly_once
                                        for s in self.routes):
            raise ValueError(f"job {self.job.name}: an exactly-once Kafka sink must be the "
                             "stream's only sink (its transactions hold the job's outputs)")
        self.job.sink = self.routes[0] if len(self.routes) == 1 else RoutedSink(self.routes)
        return len(self.routes) - 1

    def compiled(self) -> Push:
        if self.plan is None:
            assert self.root is not None
            self.routed = len(self.routes) > 1
            self.plan = self.root._compile()
            self.idlers.sort(key=lambda entry: entry[0])
        return self.plan

    def task(self, ctx: TaskContext, records: Iterator[Any]) -> list[Any]:
        """The job's task function: the operators over each record, then the state written."""
        push = self.compiled()
        run = _Run(self, ctx)
        if self.job.keyed:  # a window's lane: ticks are no records (even with no timeout now)
            idle_of, idlers = idle.idle_of, self.idlers
            for record in records:  # each next() is a yield point
                seconds = idle_of(record)
                if seconds is None:
                    push(run, None, record)
                    continue
                for _, timeout, idler in idlers:  # a tick: the lane was idle
                    if seconds >= timeout:
                        idler(run)
        else:
            for record in records:  # each next() is a yield point
                push(run, None, record)
        run.finish()
        return run.outputs


class _Run:
    """One task's run of a stream: its context, outputs, window states and counts."""

    def __init__(self, flow: _Flow, ctx: TaskContext) -> None:
        self.flow = flow
        self.ctx = ctx
        self.job = flow.job.name
        self.outputs: list[Any] = []
        self.states: dict[int, WindowState] = {}
        self.counts: Counter[str] = Counter()
        self.meta = ctx.keyed_state(META) if flow.job.keyed else None

    def window(self, op: Operator, build: Callable[[_Run], WindowState]) -> WindowState:
        state = self.states.get(op.index)
        if state is None:
            state = self.states[op.index] = build(self)
        return state

    def bad(self, op: Operator, record: Any, detail: str, cause: BaseException | None = None
            ) -> None:
        """A record `op` cannot handle: skipped and counted, or the task fails."""
        if op.on_bad == "fail":
            raise DataflowError(f"job {self.job}, operator {op}: {detail} (record "
                                f"{shown(record)})") from cause
        self._count(op, "skipped", f"skipped a bad record: {detail} (record {shown(record)})")

    def late(self, op: Operator, t: Number, mark: Number) -> None:
        self._count(op, "late", f"a late record (its time {t!r} is below the watermark "
                    f"{mark!r}): counted and left out")

    def _count(self, op: Operator, reason: str, said: str) -> None:
        self.counts[f"{op.label}.{reason}"] += 1
        where = (self.job, op.label, reason)
        _process_counts[where] += 1
        seen = _process_counts[where]
        if seen in (1, 10, 100, 1000) or seen % 10_000 == 0:
            log.warning("job %s, operator %s: %s [%d so far in this process]", self.job, op,
                        said, seen)

    def finish(self) -> None:
        for state in self.states.values():
            state.flush()
        if self.meta is not None:
            for name, n in self.counts.items():
                self.meta[name] = self.meta.get(name, 0) + n


def _fan(pushes: list[Push]) -> Push:
    if len(pushes) == 1:
        return pushes[0]
    if not pushes:
        return lambda run, key, value: None

    def fan(run: _Run, key: Any, value: Any) -> None:
        for push in pushes:
            push(run, key, value)
    return fan


class Stream:
    """A stream of records, as the operators so far made them; each method adds an operator
    and returns the stream after it (`to` returns this one). See the module."""

    def __init__(self, flow: _Flow, make: Callable[[Push], Push] | None = None) -> None:
        self._flow = flow
        self._make = make
        self._children: list[Stream] = []

    @classmethod
    def declare(cls, app: App, name: str, source: Source, *, slo: str | float,
                trigger: str | Trigger | None = None, on_bad: OnBad = "fail",
                priority: int = STREAM_PRIORITY, max_retries: int = 3,
                on_error: OnError = "dead_letter", dead_letter: Sink | None = None) -> Stream:
        """Declare stream job `name` of `app` over `source`; its operators come after
        (app.stream calls this)."""
        chosen = _on_bad(on_bad, f"job {name}")
        flow: _Flow | None = None

        def task(ctx: TaskContext, records: Iterator[Any]) -> list[Any]:
            assert flow is not None
            return flow.task(ctx, records)

        job = app.stream_job(name, source=source, task=task, slo=slo, trigger=trigger,
                             priority=priority, max_retries=max_retries, on_error=on_error,
                             dead_letter=dead_letter, batchable=True)
        flow = _Flow(job, chosen)
        root = flow.root = cls(flow)
        idle.install(source, lambda: list(flow.idle_timeouts) if flow is not None else [])
        return root

    @property
    def job(self) -> StreamJob:
        """The low-level stream job this stream compiles to."""
        return self._flow.job

    def _then(self, make: Callable[[Push], Push]) -> Stream:
        child = Stream(self._flow, make)
        self._children.append(child)
        return child

    def _compile(self) -> Push:
        nxt = _fan([child._compile() for child in self._children])
        return nxt if self._make is None else self._make(nxt)

    # -- records ----------------------------------------------------------------------------
    def map(self, fn: Callable[[Any], Any], *, on_bad: OnBad | None = None) -> Stream:
        """`fn(record)` for every record."""
        op = self._flow.operator("map", _named(fn), on_bad)

        def make(nxt: Push) -> Push:
            def push(run: _Run, key: Any, record: Any) -> None:
                try:
                    out = fn(record)
                except Exception as exc:
                    return run.bad(op, record, _raised(exc), exc)
                nxt(run, key, out)
            return push
        return self._then(make)

    def filter(self, fn: Callable[[Any], Any], *, on_bad: OnBad | None = None) -> Stream:
        """The records for which `fn(record)` is true."""
        op = self._flow.operator("filter", _named(fn), on_bad)

        def make(nxt: Push) -> Push:
            def push(run: _Run, key: Any, record: Any) -> None:
                try:
                    keep = fn(record)
                except Exception as exc:
                    return run.bad(op, record, _raised(exc), exc)
                if keep:
                    nxt(run, key, record)
            return push
        return self._then(make)

    def flat_map(self, fn: Callable[[Any], Iterable[Any]], *,
                 on_bad: OnBad | None = None) -> Stream:
        """Every item of `fn(record)`, for every record (with the record's key)."""
        op = self._flow.operator("flat_map", _named(fn), on_bad)

        def make(nxt: Push) -> Push:
            def push(run: _Run, key: Any, record: Any) -> None:
                try:
                    items = list(fn(record))
                except Exception as exc:
                    return run.bad(op, record, _raised(exc), exc)
                for item in items:
                    nxt(run, key, item)
            return push
        return self._then(make)

    def key_by(self, key: str | Callable[[Any], Any], *,
               on_bad: OnBad | None = None) -> Stream:
        """Key the records by `key` (a field name, or a function of the record) for the
        windows after it; the records themselves stay as they are. A key must be hashable
        (a str, int, float, bool, bytes, None or a tuple of them)."""
        if not isinstance(key, str) and not callable(key):
            raise TypeError(f"job {self.job.name}: key_by takes a field name or a function, "
                            f"got {key!r}")
        op = self._flow.operator("key_by", _named(key), on_bad)

        def make(nxt: Push) -> Push:
            def push(run: _Run, _: Any, record: Any) -> None:
                try:
                    value = field_value(record, key, "key field") if isinstance(key, str) \
                        else key(record)
                except BadRecord as exc:
                    return run.bad(op, record, str(exc), exc)
                except Exception as exc:
                    return run.bad(op, record, f"the key function raised {type(exc).__name__}: "
                                   f"{exc}", exc)
                try:
                    hash(value)
                except TypeError:
                    return run.bad(op, record, f"key {shown(value)} is unhashable (a "
                                   f"{type(value).__name__}): use a str, int, float, bool, "
                                   "bytes or a tuple of them")
                nxt(run, value, record)
            return push
        return self._then(make)

    def join_state(self, name: str, fn: Callable[[Any, Any], Any] | None = None, *,
                   default: Any = None, on_bad: OnBad | None = None) -> Stream:
        """Enrich each record with shared state `name` as last published (ctx.state): each
        becomes `fn(record, value)`, or (record, value) without `fn`; `default` before the
        first publication."""
        op = self._flow.operator("join_state", repr(name), on_bad)

        def make(nxt: Push) -> Push:
            def push(run: _Run, key: Any, record: Any) -> None:
                value = run.ctx.state(name, default)
                if fn is None:
                    return nxt(run, key, (record, value))
                try:
                    out = fn(record, value)
                except Exception as exc:
                    return run.bad(op, record, _raised(exc), exc)
                nxt(run, key, out)
            return push
        return self._then(make)

    def to(self, sink: Sink) -> Stream:
        """Write each record to `sink` (on the driver, as every job's outputs); returns this
        stream, which more operators (or more `to`) may follow."""
        route = self._flow.route(sink)
        flow = self._flow

        def make(nxt: Push) -> Push:
            if flow.routed:
                def routed(run: _Run, key: Any, record: Any) -> None:
                    run.outputs.append([route, record])
                return routed

            def plain(run: _Run, key: Any, record: Any) -> None:
                run.outputs.append(record)
            return plain
        self._then(make)
        return self

    # -- windows ----------------------------------------------------------------------------
    def window(self, window: Window, *, time: TimeOf, grace: Any = 0, late: Sink | None = None,
               name: str | None = None, on_bad: OnBad | None = None,
               idle_timeout: Any = AUTO) -> WindowedStream:
        """Windows of `window` (windows.py: tumbling, hopping, sliding, session) over the
        event time `time` (a field name, or a function of the record), per key (`key_by`
        before it; one key, None, without). The watermark is the highest event time this
        window has seen in the source partition, minus `grace` (a number in the event times'
        unit, or a duration string); a late record (below it) is counted and, with `late`,
        written to
        that sink as {"record", "key", "time", "watermark", "operator"}. `name` names the
        window's keyed state (default: its operator, e.g. window#3): give one to keep the
        state when operators before it are added or removed. Follow it with an aggregation.

        `idle_timeout`: once the source partition sent nothing for this long (seconds of wall
        time, or a duration string), its watermark rises to close every window it has open,
        and `final()` emits them; a later record below that watermark is late. "auto" (the
        default): the window's size (a session's gap) plus `grace`, read as seconds, at
        least 1 s; None: never (an idle partition's windows wait for its next record)."""
        if not isinstance(window, Window):
            raise TypeError(f"job {self.job.name}: window() takes tumbling(...), hopping(...), "
                            f"sliding(...) or session(...), got {window!r}")
        if not isinstance(time, str) and not callable(time):
            raise TypeError(f"job {self.job.name}: window(time=) takes a field name or a "
                            f"function, got {time!r}")
        chosen = grace_of(grace)
        try:
            timeout = idle_timeout_of(idle_timeout, window, chosen)
        except ValueError as exc:
            raise ValueError(f"job {self.job.name}: {exc}") from None
        return WindowedStream(self, window, time, chosen, late, name, on_bad, timeout)


def _raised(exc: BaseException) -> str:
    return f"the function raised {type(exc).__name__}: {exc}"


class WindowedStream:
    """A stream split into windows: choose what to aggregate (`count`, `sum`, `mean`, `min`,
    `max`, `reduce`, or several with `agg`)."""

    def __init__(self, stream: Stream, window: Window, time: TimeOf, grace: Number,
                 late: Sink | None, name: str | None, on_bad: OnBad | None,
                 idle_timeout: float | None = None) -> None:
        self.stream = stream
        self.window = window
        self.time = time
        self.grace = grace
        self.late = late
        self.name = name
        self.on_bad = on_bad
        self.idle_timeout = idle_timeout  # seconds, or None: never

    def agg(self, **aggregations: Aggregation) -> Aggregated:
        """Several aggregations at once, each a field of the result: e.g.
        `.agg(n=count(), total=sum("amount"))` gives {"key", "start", "end", "n", "total"}."""
        where = f"job {self.stream.job.name}, {self.window}"
        if not aggregations:
            raise ValueError(f"{where}: agg() needs at least one aggregation")
        for field, agg in aggregations.items():
            if field in RESERVED:
                raise ValueError(f"{where}: {field!r} is a field of every window's result; "
                                 "name the aggregation otherwise")
            if not isinstance(agg, Aggregation):
                raise TypeError(f"{where}: {field}={agg!r} is not an aggregation (count(), "
                                "sum(of), mean(of), min(of), max(of), reduce(fn))")
            if isinstance(self.window, Session) and not agg.merges:
                raise ValueError(f"{where}: {field}={agg.describe()} cannot merge two "
                                 "sessions: give reduce(..., merge=fn)")
        return Aggregated(self, tuple(aggregations.items()))

    def count(self) -> Aggregated:
        """The number of records per window, as the result's field "count"."""
        return self.agg(count=aggregate.Count())

    def sum(self, of: aggregate.Of) -> Aggregated:
        """The sum of `of` (a field name or a function) per window, as field "sum"."""
        return self.agg(sum=aggregate.Sum(of))

    def mean(self, of: aggregate.Of) -> Aggregated:
        """The mean of `of` (a field name or a function) per window, as field "mean"."""
        return self.agg(mean=aggregate.Mean(of))

    def min(self, of: aggregate.Of = None) -> Aggregated:
        """The smallest `of` (or record) per window, as field "min"."""
        return self.agg(min=aggregate.Min(of))

    def max(self, of: aggregate.Of = None) -> Aggregated:
        """The largest `of` (or record) per window, as field "max"."""
        return self.agg(max=aggregate.Max(of))

    def reduce(self, fn: Callable[[Any, Any], Any], of: aggregate.Of = None, *,
               initial: Any = aggregate._NO_INITIAL,
               merge: Callable[[Any, Any], Any] | None = None) -> Aggregated:
        """`fn(accumulator, value)` per window (aggregate.Reduce), as field "reduce"."""
        return self.agg(reduce=aggregate.Reduce(fn, of, initial=initial, merge=merge))


class Aggregated:
    """Windows with their aggregations: emit on every update (`current`) or when each window
    closes (`final`). Each result is {"key", "start", "end", NAME: value, ...}, keyed by the
    window's key."""

    def __init__(self, windowed: WindowedStream, aggs: Named) -> None:
        self.windowed = windowed
        self.aggs = aggs

    def current(self) -> Stream:
        """A result for every window each record updates, as soon as it does."""
        return self._compile(final=False)

    def final(self) -> Stream:
        """A result for each window once it closes (the watermark passes its end), and the
        window is then forgotten."""
        return self._compile(final=True)

    def _compile(self, final: bool) -> Stream:
        w = self.windowed
        stream, window, time, grace, aggs = w.stream, w.window, w.time, w.grace, self.aggs
        flow = stream._flow
        detail = f"{window}, {'final' if final else 'current'}"
        op = flow.operator("window", detail, w.on_bad)
        state_name = w.name or op.label
        if not isinstance(state_name, str) or state_name in flow.state_names:
            raise ValueError(f"job {flow.job.name}, operator {op}: state name {state_name!r} "
                             "is taken (each window, and each of current() and final(), needs "
                             "a name of its own)")
        flow.state_names.add(state_name)
        late = None if w.late is None else flow.route(w.late)
        flow.job.keyed = True
        timeout = w.idle_timeout
        if timeout is not None:
            flow.idle_timeouts.append(timeout)

        def build(run: _Run) -> WindowState:
            assert run.meta is not None
            return WindowState(state_name, window, grace, aggs, run.ctx.keyed_state, run.meta)

        def result(key: Any, entry: list[Any]) -> dict[str, Any]:
            out = {"key": key, "start": entry[0], "end": entry[1]}
            out.update(aggregate.results(aggs, entry[2:]))
            return out

        index = op.index

        def make(nxt: Push) -> Push:
            routed = flow.routed

            def emit(run: _Run, key: Any, enc: Any,
                     closes: Iterator[tuple[Any, list[list[Any]]]]) -> None:
                for closed_enc, closed in closes:
                    if final:
                        closed_key = key if closed_enc == enc else decode_key(closed_enc)
                        for entry in closed:
                            nxt(run, closed_key, result(closed_key, entry))
                    checkpoint()  # many windows may close at once: stay preemptible

            if timeout is not None:
                def on_idle(run: _Run) -> None:
                    state = run.states.get(index) or run.window(op, build)
                    emit(run, None, None, state.idle())
                flow.idlers.append((index, timeout, on_idle))

            def push(run: _Run, key: Any, record: Any) -> None:
                state = run.states.get(index) or run.window(op, build)
                try:
                    t = event_time(record, time)
                    vals = aggregate.values(aggs, record)
                    enc = encode_key(key)
                except BadRecord as exc:
                    return run.bad(op, record, str(exc), exc)
                mark = state.mark
                if mark is not None and t < mark:
                    run.late(op, t, mark)
                    if late is not None:
                        letter = {"record": record, "key": key, "time": t, "watermark": mark,
                                  "operator": op.label}
                        run.outputs.append([late, letter] if routed else letter)
                    return
                try:
                    updated = state.add(enc, t, vals)
                except BadRecord as exc:
                    return run.bad(op, record, str(exc), exc)
                if not final:
                    for entry in updated:
                        nxt(run, key, result(key, entry))
                clock = state.clock
                if clock is not None and t <= clock:
                    return  # the watermark stays: nothing closes
                emit(run, key, enc, state.advance(t))
            return push
        return stream._then(make)


__all__ = ["Aggregated", "DataflowError", "OnBad", "Operator", "RoutedSink", "Stream",
           "WindowedStream"]
