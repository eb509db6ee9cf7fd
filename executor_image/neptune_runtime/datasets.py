"""Datasets: Spark's RDD operators over the runtime's suspendable batch tasks.

`app.dataset(name, read=..., partitions=N)` returns a `Dataset`: a lazy plan that `collect` or
`publish` compiles to one batch job of several stages (app.Stage), split at shuffles:

    counts = (app.dataset("wordcount", read=lines, partitions=4)
              .flat_map(str.split).key_by(lambda w: w).map(lambda kv: (kv[0], 1))
              .reduce_by_key(operator.add)
              .collect("counts"))

Narrow operators (`map`, `filter`, `flat_map`, `map_partitions`, `key_by`, `map_batches`) run
in the same task, record by record, each record a yield point: a stream task suspends a shuffle
map task as it does any batch task. Wide operators (`reduce_by_key`, `aggregate_by_key`,
`group_by_key`, `join`, `distinct`, `sort_by`) end a stage: its tasks split their output by a
stable hash of the key (combining on the map side where the operator allows) and keep it on
their executor until the next stage fetches it (shuffle.py); a lost output is computed again.
Keyed records are (key, value) pairs; keys are numbers, strings, bytes or tuples of them.

Columnar records (columnar.py, with pyarrow): a read may yield pyarrow RecordBatches (or
Tables, pandas or Polars DataFrames), each one record and so one yield point; `arrow` makes
every record RecordBatches, `rows` makes them dict rows, and `aggregate_columns` (wide) groups
and aggregates columns with pyarrow.compute on both sides of its shuffle.

Every error in a user function, a key that cannot be hashed, and a record that is not a pair
where a pair is needed names the job, the operator and the record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .app import BatchJob, ReadFn, Stage, TaskContext
from .shuffle import ShuffleOutput, buckets_of

if TYPE_CHECKING:
    from .app import App


class DatasetError(Exception):
    """A record an operator cannot handle; the message names the job, operator and record."""


Op = Callable[[Iterator[Any]], Iterator[Any]]


@dataclass(frozen=True)
class _Narrow:
    name: str
    apply: Callable[[str, Iterator[Any], TaskContext], Iterator[Any]]  # job, records, ctx


@dataclass(frozen=True)
class _Wide:
    """A shuffle: how its map side writes, and how its reduce side reads."""

    name: str
    partitions: int
    write: Callable[[str, Iterator[Any], int, int], ShuffleOutput]  # job, records, side, n
    read: Callable[[str, Iterator[Any]], Iterator[Any]]
    parents: tuple[Dataset, ...]
    ranged: bool = False


@dataclass
class _StagePlan:
    read: ReadFn | None
    wide: _Wide | None  # the shuffle this stage reads (its reduce side), if any
    ops: list[_Narrow] = field(default_factory=list)
    writes: tuple[_Wide, int] | None = None  # the shuffle it writes, and its side
    inputs: tuple[int, ...] = ()
    partitions: int = 1


def _pair(job: str, op: str, record: Any) -> tuple[Any, Any]:
    if not isinstance(record, tuple | list) or len(record) != 2:
        raise DatasetError(f"job {job}, {op}: record {record!r} is not a (key, value) pair; "
                           "use key_by or map to make one")
    return record[0], record[1]


def _key(job: str, op: str, key: Any, record: Any) -> Any:
    """The key as it hashes the same after a shuffle (msgpack gives tuples back as lists)."""
    key = _frozen(key)
    try:
        hash(key)
    except TypeError:
        raise DatasetError(f"job {job}, {op}: key {key!r} of record {record!r} is unhashable "
                           f"({type(key).__name__})") from None
    return key


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, list | tuple) else value


# Keys that are already what _key makes of them (hashable, unchanged by _frozen): the per-record
# loops of the wide operators take them as they are, and call _key only for the others.
_PLAIN = frozenset({int, str, bytes, float})


def _failed(job: str, op: str, exc: Exception, record: Any) -> DatasetError:
    return DatasetError(f"job {job}, {op}: {type(exc).__name__}: {exc} (record {record!r})")


def _call(job: str, op: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except DatasetError:
        raise
    except Exception as exc:
        raise _failed(job, op, exc, args[-1]) from exc


class Dataset:
    """A lazy, partitioned collection; see the module's documentation."""

    def __init__(self, app: App, name: str, *, read: ReadFn | None = None,
                 partitions: int = 1, parent: Dataset | None = None,
                 narrow: _Narrow | None = None, wide: _Wide | None = None) -> None:
        if partitions < 1:
            raise ValueError(f"dataset {name}: partitions must be at least 1, got {partitions}")
        self.app = app
        self.name = name
        self.partitions = partitions
        self._read = read
        self._parent = parent
        self._narrow = narrow
        self._wide = wide

    # -- narrow operators: same task, record by record --------------------------------------
    def _then(self, name: str,
              apply: Callable[[str, Iterator[Any], TaskContext], Iterator[Any]]) -> Dataset:
        return Dataset(self.app, self.name, partitions=self.partitions, parent=self,
                       narrow=_Narrow(name, apply))

    def map(self, fn: Callable[[Any], Any]) -> Dataset:
        """fn(record) for every record."""
        return self._then("map", lambda job, it, ctx: (_call(job, "map", fn, r) for r in it))

    def filter(self, fn: Callable[[Any], Any]) -> Dataset:
        """The records for which fn(record) is true."""
        return self._then("filter", lambda job, it, ctx: (
            r for r in it if _call(job, "filter", fn, r)))

    def flat_map(self, fn: Callable[[Any], Iterable[Any]]) -> Dataset:
        """Every item of fn(record), for every record."""
        return self._then("flat_map", lambda job, it, ctx: (
            x for r in it for x in _call(job, "flat_map", fn, r)))

    def map_partitions(self, fn: Callable[..., Iterable[Any]],
                       state: str | None = None) -> Dataset:
        """fn(records of a partition): an iterator in, an iterable out; with `state`,
        fn(records, value) gets the latest published value of that shared state too."""
        if state is None:
            return self._then("map_partitions", lambda job, it, ctx: iter(fn(it)))
        return self._then("map_partitions", lambda job, it, ctx: iter(fn(it, ctx.state(state))))

    def key_by(self, fn: Callable[[Any], Any]) -> Dataset:
        """(fn(record), record) pairs."""
        return self._then("key_by", lambda job, it, ctx: (
            (_key(job, "key_by", _call(job, "key_by", fn, r), r), r) for r in it))

    def map_batches(self, fn: Callable[[Any], Any]) -> Dataset:
        """fn(batch) for records that are batches (pyarrow RecordBatches, frames): a yield
        point comes between batches, so keep them small enough (10^4-10^5 rows)."""
        return self._then("map_batches", lambda job, it, ctx: (_call(job, "map_batches", fn, b)
                                                          for b in it))

    def arrow(self) -> Dataset:
        """Every record as pyarrow RecordBatches: a RecordBatch stays, a pyarrow Table or a
        pandas or Polars DataFrame becomes its batches (columnar.py; needs pyarrow)."""
        from . import columnar

        def batches(job: str, record: Any) -> list[Any]:
            try:
                return columnar.as_batches(record)
            except columnar.ColumnarError as exc:
                raise DatasetError(f"job {job}, arrow: {exc}") from None

        return self._then("arrow", lambda job, it, ctx: (
            b for r in it for b in batches(job, r)))

    def rows(self) -> Dataset:
        """Each batch (see `arrow`) as its rows, dicts of column -> value (columnar.py)."""
        from . import columnar

        def rows(job: str, record: Any) -> Iterator[Any]:
            try:
                batches = columnar.as_batches(record)
            except columnar.ColumnarError as exc:
                raise DatasetError(f"job {job}, rows: {exc}") from None
            return (row for batch in batches for row in columnar.rows(batch))

        return self._then("rows", lambda job, it, ctx: (x for r in it for x in rows(job, r)))

    # -- wide operators: a shuffle ends the stage -------------------------------------------
    def _shuffle(self, name: str, partitions: int | None,
                 write: Callable[[str, Iterator[Any], int, int], ShuffleOutput],
                 read: Callable[[str, Iterator[Any]], Iterator[Any]],
                 others: tuple[Dataset, ...] = (), ranged: bool = False) -> Dataset:
        n = partitions or self.partitions
        return Dataset(self.app, self.name, partitions=n, wide=_Wide(
            name, n, write, read, (self, *others), ranged))

    def reduce_by_key(self, fn: Callable[[Any, Any], Any],
                      partitions: int | None = None) -> Dataset:
        """(key, fn-reduced value) per key, combined on the map side first."""
        return self._by_key("reduce_by_key", _FIRST, fn, fn, partitions)

    def aggregate_by_key(self, zero: Any, seq: Callable[[Any, Any], Any],
                         comb: Callable[[Any, Any], Any], partitions: int | None = None,
                         *, name: str = "aggregate_by_key") -> Dataset:
        """(key, value): seq folds a partition's values into zero, comb merges those."""
        return self._by_key(name, zero, seq, comb, partitions)

    def _by_key(self, name: str, zero: Any, seq: Callable[[Any, Any], Any],
                comb: Callable[[Any, Any], Any], partitions: int | None) -> Dataset:
        """aggregate_by_key; zero _FIRST (reduce_by_key's): a key's first value is its
        accumulator. The loops run once a record (10^7 in a large job): the common case, a
        tuple pair with a plain key, is checked inline, and only the others go through
        _pair and _key (which say what is wrong)."""
        first = zero is _FIRST

        def write(job: str, records: Iterator[Any], side: int, n: int) -> ShuffleOutput:
            accs: dict[Any, Any] = {}
            get = accs.get
            for record in records:
                if type(record) is tuple:
                    try:
                        key, value = record
                    except ValueError:  # not two items
                        key, value = _pair(job, name, record)
                else:
                    key, value = _pair(job, name, record)
                if type(key) not in _PLAIN:
                    key = _key(job, name, key, record)
                try:
                    if not first:
                        accs[key] = seq(get(key, zero), value)
                    elif key in accs:
                        accs[key] = seq(accs[key], value)
                    else:
                        accs[key] = value
                except DatasetError:
                    raise
                except Exception as exc:
                    raise _failed(job, name, exc, value) from exc
            return _bucketed(job, name, [[k, a] for k, a in accs.items()], n)

        def read(job: str, records: Iterator[Any]) -> Iterator[Any]:
            accs: dict[Any, Any] = {}
            for key, acc in records:
                if type(key) not in _PLAIN:
                    key = _frozen(key)
                if key not in accs:
                    accs[key] = acc
                    continue
                try:
                    accs[key] = comb(accs[key], acc)
                except DatasetError:
                    raise
                except Exception as exc:
                    raise _failed(job, name, exc, acc) from exc
            return iter(accs.items())

        return self._shuffle(name, partitions, write, read)

    def group_by_key(self, partitions: int | None = None) -> Dataset:
        """(key, [values]) per key."""
        def write(job: str, records: Iterator[Any], side: int, n: int) -> ShuffleOutput:
            pairs = ([_key(job, "group_by_key", k, r), v]
                     for r in records for k, v in [_pair(job, "group_by_key", r)])
            return _bucketed(job, "group_by_key", pairs, n)

        def read(job: str, records: Iterator[Any]) -> Iterator[Any]:
            groups: dict[Any, list[Any]] = {}
            for key, value in records:
                groups.setdefault(_frozen(key), []).append(value)
            return iter(groups.items())

        return self._shuffle("group_by_key", partitions, write, read)

    def distinct(self, partitions: int | None = None) -> Dataset:
        """Each record once."""
        def write(job: str, records: Iterator[Any], side: int, n: int) -> ShuffleOutput:
            seen = {_key(job, "distinct", r, r) for r in records}
            return _bucketed(job, "distinct", ([r, None] for r in seen), n)

        def read(job: str, records: Iterator[Any]) -> Iterator[Any]:
            return iter({_frozen(r): None for r, _ in records})

        return self._shuffle("distinct", partitions, write, read)

    def join(self, other: Dataset, partitions: int | None = None) -> Dataset:
        """(key, (left value, right value)) for every pair of values of a key in both."""
        if other.partitions != self.partitions:
            raise DatasetError(f"job {self.name}, join: datasets of {self.partitions} and "
                               f"{other.partitions} partitions; repartition one "
                               "(e.g. with reduce_by_key(partitions=...)) first")

        def write(job: str, records: Iterator[Any], side: int, n: int) -> ShuffleOutput:
            tagged = ([_key(job, "join", k, r), [side, v]]
                      for r in records for k, v in [_pair(job, "join", r)])
            return _bucketed(job, "join", tagged, n)

        def read(job: str, records: Iterator[Any]) -> Iterator[Any]:
            sides: dict[Any, tuple[list[Any], list[Any]]] = {}
            for key, (side, value) in records:
                sides.setdefault(_frozen(key), ([], []))[side].append(value)
            return ((k, (a, b)) for k, (left, right) in sides.items()
                    for a in left for b in right)

        return self._shuffle("join", partitions, write, read, others=(other,))

    def sort_by(self, fn: Callable[[Any], Any], partitions: int | None = None) -> Dataset:
        """The records in order of fn(record), across partitions (range-partitioned)."""
        def write(job: str, records: Iterator[Any], side: int, n: int) -> ShuffleOutput:
            return ShuffleOutput({0: [[_call(job, "sort_by", fn, r), r] for r in records]})

        def read(job: str, records: Iterator[Any]) -> Iterator[Any]:
            return (r for _, r in sorted(records, key=lambda kr: kr[0]))

        return self._shuffle("sort_by", partitions, write, read, ranged=True)

    def aggregate_columns(self, by: str | Sequence[str] = (), partitions: int | None = None,
                          *, rows_per_call: int | None = None,
                          **outputs: tuple[str, str]) -> Dataset:
        """Column aggregations of batch records by pyarrow.compute: `by` a column or columns
        (none: the whole dataset), each output `name=(column, fn)`, fn one of sum, count, min,
        max, mean; one dict per key, of the `by` columns and the outputs. Each map task
        aggregates its batches with Arrow and shuffles the partial aggregates as rows; the
        reduce side merges them (columnar.py; needs pyarrow)."""
        from . import columnar

        agg = columnar.compile_aggregation(self.name, by, outputs,
                                           rows_per_call or columnar.ROWS_PER_CALL)
        return self._shuffle(columnar.OP, partitions, columnar.map_side(self.name, agg),
                             columnar.reduce_side(self.name, agg))

    # -- results ------------------------------------------------------------------------------
    def collect(self, publishes: str, **options: Any) -> BatchJob:
        """Run continuously (or on `schedule`), publishing the records as shared state."""
        return self.publish(publishes, lambda records, previous: records, **options)

    def publish(self, publishes: str, combine: Callable[[list[Any], Any], Any],
                initial_state: Any = None, **options: Any) -> BatchJob:
        """Run continuously (or on `schedule`); combine(records, previous) on the driver gives
        the new version of shared state `publishes`. Options are app.batch_job's."""
        stages = _compile(self)
        specs = tuple(Stage(s.partitions, s.read, s.inputs, s.wide is not None and s.wide.ranged)
                      for s in stages)
        job = self.app.batch_job(
            self.name, read=specs[0].read or _no_read, task=_runner(self.name, stages),
            partitions=specs[0].partitions, publishes=publishes, initial_state=initial_state,
            combine=lambda results, previous: combine(
                [r for part in results for r in part], previous), **options)
        if len(specs) > 1:  # one stage is a plain batch job (its partitions are settable)
            job.stages = specs
        return job


_FIRST: Any = object()  # reduce_by_key's zero: no value yet


def _bucketed(job: str, op: str, records: Iterable[Any], n: int) -> ShuffleOutput:
    """[key, ...] records split by bucket_of(key, n) (all keys bucketed in one call)."""
    records = records if isinstance(records, list) else list(records)
    try:
        buckets = buckets_of([record[0] for record in records], n)
    except Exception as exc:
        raise DatasetError(f"job {job}, {op}: {exc}") from None
    split: list[list[Any]] = [[] for _ in range(n)]
    for bucket, record in zip(buckets, records, strict=True):
        split[bucket].append(record)
    return ShuffleOutput({bucket: part for bucket, part in enumerate(split) if part})


def _no_read(partition: int, epoch: int) -> Iterable[Any]:
    return ()


def _compile(last: Dataset) -> list[_StagePlan]:
    """The stages that compute `last`, inputs before the stages that read them."""
    stages: list[_StagePlan] = []

    def build(ds: Dataset) -> int:
        ops: list[_Narrow] = []
        node = ds
        while node._narrow is not None:
            ops.append(node._narrow)
            assert node._parent is not None
            node = node._parent
        ops.reverse()
        if node._wide is not None:
            wide = node._wide
            inputs = []
            for side, parent in enumerate(wide.parents):
                index = build(parent)
                stages[index].writes = (wide, side)
                inputs.append(index)
            stage = _StagePlan(None, wide, ops, inputs=tuple(inputs), partitions=wide.partitions)
        else:
            stage = _StagePlan(node._read, None, ops, partitions=node.partitions)
        stages.append(stage)
        return len(stages) - 1

    build(last)
    return stages


def _runner(job: str, stages: list[_StagePlan]) -> Callable[[TaskContext, Iterator[Any]], Any]:
    """The batch job's task function: the stage's reduce side (if it reads a shuffle), its
    narrow operators, then its map side (if it writes one) or its records."""
    def run(ctx: TaskContext, records: Iterator[Any]) -> Any:
        stage = stages[ctx.stage]
        it: Iterator[Any] = records if stage.wide is None else stage.wide.read(job, records)
        for op in stage.ops:
            it = op.apply(job, it, ctx)
        if stage.writes is not None:
            wide, side = stage.writes
            return wide.write(job, it, side, wide.partitions)
        return list(it)

    return run
