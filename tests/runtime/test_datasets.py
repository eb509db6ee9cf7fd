"""The dataset API's plan and operators, run stage by stage in this process (pure): each
result equals the plain-Python one. tests/integration/test_datasets.py runs them for real."""

from __future__ import annotations

import operator
from collections import Counter
from typing import Any

import pytest

from neptune_runtime import App
from neptune_runtime.app import BatchJob, TaskContext
from neptune_runtime.datasets import DatasetError
from neptune_runtime.driver.batch import consumers, gather
from neptune_runtime.shuffle import ShuffleOutput, bucket_of

LINES = [["a b a", "c"], ["b b", "a c d"], ["d"]]


def run(job: BatchJob) -> list[Any]:
    """The job's one epoch as the driver and executors run it, without them."""
    plan = job.plan()
    fetched: dict[int, dict[int, list[list[Any]]]] = {}
    results: dict[int, list[Any]] = {}
    todo = [s for s, spec in enumerate(plan) if not spec.inputs]
    while todo:
        stage = todo.pop(0)
        spec = plan[stage]
        inputs = ([list(spec.read(p, 0)) for p in range(spec.partitions)] if spec.read
                  else gather(plan, stage, fetched))
        for partition, records in enumerate(inputs):
            out = job.task(TaskContext("t", job.name, partition, 0, 0, {}, stage=stage),
                           iter(records))
            if isinstance(out, ShuffleOutput):
                fetched.setdefault(stage, {})[partition] = sorted(
                    [b, r] for b, r in out.buckets.items())
            else:
                results[partition] = out
        for consumer in consumers(plan, stage):
            if all(len(fetched.get(i, {})) == plan[i].partitions for i in plan[consumer].inputs) \
                    and consumer not in todo:
                todo.append(consumer)
    assert job.combine is not None
    value: list[Any] = job.combine([results[p] for p in range(len(results))], None)
    return value


def lines(partition: int, epoch: int) -> list[str]:
    return LINES[partition]


def test_word_count_equals_plain_python() -> None:
    app = App("t")
    job = (app.dataset("wc", read=lines, partitions=3).flat_map(str.split)
           .map(lambda w: (w, 1)).reduce_by_key(operator.add, partitions=2).collect("counts"))
    assert len(job.plan()) == 2 and job.plan()[1].inputs == (0,)
    words = [w for part in LINES for line in part for w in line.split()]
    assert dict(run(job)) == dict(Counter(words))


def test_join_group_distinct_aggregate_and_sort() -> None:
    app = App("t")
    left = app.dataset("j", read=lambda p, e: [(k, f"l{k}") for k in range(p, 10, 2)],
                       partitions=2)
    right = app.dataset("r", read=lambda p, e: [(k, f"r{k}") for k in range(p * 3, 12, 2)],
                        partitions=2)
    joined = run(left.join(right, partitions=3).collect("joined"))
    assert sorted(joined) == sorted((k, (f"l{k}", f"r{k}")) for k in range(10)
                                    if k in {*range(0, 12, 2), *range(3, 12, 2)})
    pairs = app.dataset("g", read=lambda p, e: [(i % 3, i) for i in range(p, 20, 2)],
                        partitions=2)
    grouped = dict(run(pairs.group_by_key().collect("g")))
    assert {k: sorted(v) for k, v in grouped.items()} == {
        k: [i for i in range(20) if i % 3 == k] for k in range(3)}
    sums = dict(run(app.dataset("a", read=lambda p, e: [(i % 3, i) for i in range(p, 20, 2)],
                                partitions=2)
                    .aggregate_by_key((0, 0), lambda acc, v: (acc[0] + v, acc[1] + 1),
                                      lambda a, b: (a[0] + b[0], a[1] + b[1])).collect("s")))
    assert {k: tuple(v) for k, v in sums.items()} == {
        k: (sum(i for i in range(20) if i % 3 == k), len([i for i in range(20) if i % 3 == k]))
        for k in range(3)}
    assert sorted(run(app.dataset("d", read=lambda p, e: [1, 2, 2, p], partitions=2)
                      .distinct().collect("d"))) == [0, 1, 2]
    ordered = run(app.dataset("o", read=lambda p, e: list(range(p, 300, 3)), partitions=3)
                  .sort_by(lambda x: -x, partitions=4).collect("o"))
    assert ordered == sorted(range(300), reverse=True), "not in order across partitions"


def test_tuple_keys_survive_the_shuffle() -> None:
    app = App("t")
    job = (app.dataset("k", read=lambda p, e: [((p, "x"), 1), ((0, "x"), 1)], partitions=2)
           .reduce_by_key(operator.add).collect("k"))
    assert dict(run(job)) == {(0, "x"): 3, (1, "x"): 1}
    assert bucket_of((1, "x"), 7) == bucket_of([1, "x"], 7), "a key hashes the same as a list"


@pytest.mark.parametrize(("build", "message"), [
    (lambda ds: ds.key_by(lambda r: 1 / 0), "job e, key_by: ZeroDivisionError"),
    (lambda ds: ds.key_by(lambda r: {"a": r}).group_by_key(), "key {'a': 1} of record 1 is "
     "unhashable"),
    (lambda ds: ds.reduce_by_key(operator.add), "job e, reduce_by_key: record 1 is not a "
     "(key, value) pair"),
    (lambda ds: ds.map(lambda r: r["time"]), "job e, map: TypeError"),
])
def test_bad_input_names_the_job_the_operator_and_the_record(build: Any, message: str) -> None:
    app = App("t")
    job = build(app.dataset("e", read=lambda p, e: [1], partitions=1)).collect("e")
    with pytest.raises(DatasetError) as caught:
        run(job)
    assert message in str(caught.value)


def test_a_join_of_different_partition_counts_is_refused_at_once() -> None:
    app = App("t")
    with pytest.raises(DatasetError, match=r"job a, join: datasets of 2 and 3 partitions"):
        app.dataset("a", read=lines, partitions=2).join(
            app.dataset("b", read=lines, partitions=3))
