"""Window aggregations (pure): how a window's accumulator starts, grows, merges and ends.

Each aggregation takes a value out of every record (`of`: a field name, a function of the
record, or None for the record itself), folds the values into an accumulator, and turns the
accumulator into the window's result. Accumulators are kept in keyed state, so they are
numbers, strings, lists or dicts of them (msgpack), and they are never changed in place: every
step returns a new one (a failed task's re-run starts from the state it started from).

    from neptune_runtime.dataflow import count, mean, sum
    stream.window(tumbling(60), time="ts").agg(n=count(), total=sum("amount"),
                                               avg=mean("amount"))

`merge` combines the accumulators of two windows that become one (session windows): every
aggregation here can merge, and `reduce` can when its function combines two accumulators.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import BadRecord

Of = str | Callable[[Any], Any] | None
_NO_INITIAL: Any = object()


def describe_of(of: Of) -> str:
    """How `of` reads in a message: 'amount', the function's name, or 'the record'."""
    if of is None:
        return "the record"
    if isinstance(of, str):
        return repr(of)
    return getattr(of, "__name__", repr(of))


def field_value(record: Any, field: str, what: str = "field") -> Any:
    """`record[field]`; BadRecord naming the field if the record has none."""
    try:
        return record[field]
    except (KeyError, IndexError, TypeError):
        if isinstance(record, Mapping):
            raise BadRecord(f"record has no {what} {field!r}") from None
        raise BadRecord(f"record is not a mapping (it is a {type(record).__name__}), so it "
                        f"has no {what} {field!r}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float)


class Aggregation:
    """The base of the aggregations: `value` reads a record, `first`/`add` fold values into
    an accumulator, `merge` joins two accumulators, `result` gives the window's value."""

    kind = "aggregation"
    numeric = False  # its values must be numbers
    uses_value = True  # False: the record's value is not read (count)

    def __init__(self, of: Of = None) -> None:
        if of is not None and not isinstance(of, str) and not callable(of):
            raise TypeError(f"{self.kind}: `of` must be a field name, a function or None, "
                            f"got {of!r}")
        self.of = of

    def describe(self) -> str:
        """The aggregation as it reads in messages, e.g. sum('amount')."""
        return f"{self.kind}()" if self.of is None else f"{self.kind}({describe_of(self.of)})"

    def value(self, record: Any) -> Any:
        """The value this aggregation takes from `record` (BadRecord if it has none)."""
        if not self.uses_value:
            return None
        of = self.of
        if of is None:
            value = record
        elif isinstance(of, str):
            value = field_value(record, of)
        else:
            try:
                value = of(record)
            except Exception as exc:
                raise BadRecord(f"{self.describe()}: the function raised "
                                f"{type(exc).__name__}: {exc}") from exc
        if value is None:
            raise BadRecord(f"{self.describe()}: the value is None")
        if self.numeric and not _is_number(value):
            raise BadRecord(f"{self.describe()}: the value {value!r} is a "
                            f"{type(value).__name__}, not a number")
        return value

    def first(self, value: Any) -> Any:
        """The accumulator of a window's first value."""
        return value

    def add(self, acc: Any, value: Any) -> Any:
        """A new accumulator: `acc` with `value` folded in."""
        raise NotImplementedError

    def merge(self, a: Any, b: Any) -> Any:
        """The accumulator of two windows that become one (a earlier than b)."""
        return self.add(a, b)

    def result(self, acc: Any) -> Any:
        """The window's value, from its accumulator."""
        return acc

    @property
    def merges(self) -> bool:
        """Whether two accumulators can be merged (session windows need it)."""
        return True


class Count(Aggregation):
    """The number of records in the window."""

    kind = "count"
    uses_value = False

    def __init__(self) -> None:
        super().__init__(None)

    def first(self, value: Any) -> Any:
        """One record."""
        return 1

    def add(self, acc: Any, value: Any) -> Any:
        """One more."""
        return acc + 1

    def merge(self, a: Any, b: Any) -> Any:
        """Both counts."""
        return a + b


class Sum(Aggregation):
    """The sum of a numeric value of the records."""

    kind = "sum"
    numeric = True

    def add(self, acc: Any, value: Any) -> Any:
        """acc + value."""
        return acc + value


class Mean(Aggregation):
    """The mean of a numeric value of the records (its accumulator: [sum, count])."""

    kind = "mean"
    numeric = True

    def first(self, value: Any) -> Any:
        """[value, 1]."""
        return [value, 1]

    def add(self, acc: Any, value: Any) -> Any:
        """[sum + value, count + 1]."""
        return [acc[0] + value, acc[1] + 1]

    def merge(self, a: Any, b: Any) -> Any:
        """Both sums and counts."""
        return [a[0] + b[0], a[1] + b[1]]

    def result(self, acc: Any) -> Any:
        """sum / count."""
        return acc[0] / acc[1]


class Min(Aggregation):
    """The smallest value of the records."""

    kind = "min"

    def add(self, acc: Any, value: Any) -> Any:
        """The smaller."""
        try:
            return value if value < acc else acc
        except TypeError as exc:
            raise BadRecord(f"{self.describe()}: cannot compare {value!r} with {acc!r}") from exc


class Max(Aggregation):
    """The largest value of the records."""

    kind = "max"

    def add(self, acc: Any, value: Any) -> Any:
        """The larger."""
        try:
            return value if value > acc else acc
        except TypeError as exc:
            raise BadRecord(f"{self.describe()}: cannot compare {value!r} with {acc!r}") from exc


class Reduce(Aggregation):
    """`fn(acc, value)` over the values of the records, in their order of arrival.

    Without `initial`, the first value is the first accumulator and `fn` combines two values
    (as functools.reduce): two windows merge with `fn` too. With `initial`, the first
    accumulator is `fn(initial, value)`; merging then needs `merge(a, b)`. `fn` must return a
    new value, not change its arguments, and for out-of-order input or session windows it
    should not depend on the order of the values."""

    kind = "reduce"

    def __init__(self, fn: Callable[[Any, Any], Any], of: Of = None, *,
                 initial: Any = _NO_INITIAL,
                 merge: Callable[[Any, Any], Any] | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"reduce: fn must be a function of (accumulator, value), got {fn!r}")
        super().__init__(of)
        self.fn = fn
        self.initial = initial
        self.merge_fn = merge if merge is not None or initial is not _NO_INITIAL else fn

    def describe(self) -> str:
        """reduce(fn) or reduce(fn, of)."""
        name = getattr(self.fn, "__name__", "fn")
        return f"reduce({name})" if self.of is None else f"reduce({name}, {describe_of(self.of)})"

    def _call(self, fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
        try:
            out = fn(a, b)
        except Exception as exc:
            raise BadRecord(f"{self.describe()}: the function raised "
                            f"{type(exc).__name__}: {exc}") from exc
        if out is None:
            raise BadRecord(f"{self.describe()}: the function returned None")
        return out

    def first(self, value: Any) -> Any:
        """The value, or fn(initial, value)."""
        return value if self.initial is _NO_INITIAL else self._call(self.fn, self.initial, value)

    def add(self, acc: Any, value: Any) -> Any:
        """fn(acc, value)."""
        return self._call(self.fn, acc, value)

    def merge(self, a: Any, b: Any) -> Any:
        """merge(a, b), or fn(a, b) without `initial`."""
        if self.merge_fn is None:
            raise ValueError(f"{self.describe()} cannot merge two windows: give merge=")
        return self._call(self.merge_fn, a, b)

    @property
    def merges(self) -> bool:
        """Whether two accumulators can be merged: without `initial`, or with `merge`."""
        return self.merge_fn is not None


def count() -> Count:
    """The number of records in each window."""
    return Count()


def sum(of: Of) -> Sum:
    """The sum of `of` (a field name or a function of the record) in each window."""
    return Sum(of)


def mean(of: Of) -> Mean:
    """The mean of `of` (a field name or a function of the record) in each window."""
    return Mean(of)


def min(of: Of = None) -> Min:
    """The smallest `of` (a field name, a function of the record, or the record) per window."""
    return Min(of)


def max(of: Of = None) -> Max:
    """The largest `of` (a field name, a function of the record, or the record) per window."""
    return Max(of)


def reduce(fn: Callable[[Any, Any], Any], of: Of = None, *, initial: Any = _NO_INITIAL,
           merge: Callable[[Any, Any], Any] | None = None) -> Reduce:
    """`fn(accumulator, value)` over `of` of the records of each window (see `Reduce`)."""
    return Reduce(fn, of, initial=initial, merge=merge)


Named = Sequence[tuple[str, Aggregation]]


def values(aggs: Named, record: Any) -> list[Any]:
    """The value each aggregation takes from `record` (BadRecord if one cannot)."""
    return [agg.value(record) for _, agg in aggs]


def start(aggs: Named, vals: Sequence[Any]) -> list[Any]:
    """The accumulators of a window's first record."""
    return [agg.first(v) for (_, agg), v in zip(aggs, vals, strict=True)]


def fold(aggs: Named, accs: Sequence[Any], vals: Sequence[Any]) -> list[Any]:
    """New accumulators: `accs` with one record's values folded in."""
    return [agg.add(a, v) for (_, agg), a, v in zip(aggs, accs, vals, strict=True)]


def merged(aggs: Named, a: Sequence[Any], b: Sequence[Any]) -> list[Any]:
    """The accumulators of two windows that become one."""
    return [agg.merge(x, y) for (_, agg), x, y in zip(aggs, a, b, strict=True)]


def results(aggs: Named, accs: Sequence[Any]) -> dict[str, Any]:
    """{name: result} of a window's accumulators."""
    return {name: agg.result(a) for (name, agg), a in zip(aggs, accs, strict=True)}


__all__ = ["Aggregation", "Count", "Max", "Mean", "Min", "Reduce", "Sum", "count", "fold",
           "max", "mean", "merged", "min", "reduce", "results", "start", "sum", "values"]
