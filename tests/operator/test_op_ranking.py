"""ranking: cluster-wide stream job order -> PriorityClasses and runtime tables."""

from __future__ import annotations

import pytest

from neptune_operator.ranking import (
    DEFAULT_CLASSES,
    AppSpec,
    JobSpec,
    PriorityClassSpec,
    class_for,
    rank,
)


def app(name: str, priority: int, *jobs: JobSpec, ns: str = "default",
        boost: int = 0) -> AppSpec:
    return AppSpec(ns, name, priority, tuple(jobs), boost)


def stream(name: str, slo: float) -> JobSpec:
    return JobSpec(name, "stream", slo)


def batch(name: str) -> JobSpec:
    return JobSpec(name, "batch")


def test_app_priority_before_slo() -> None:
    out = rank([
        app("loose-important", 500, stream("s", 1.0)),
        app("tight-minor", 0, stream("s", 0.001)),
    ])
    assert out[("default", "loose-important")].rank == 0
    assert out[("default", "tight-minor")].rank == 1


def test_slo_breaks_ties_and_tables() -> None:
    out = rank([
        app("a", 100, stream("slow", 0.5), stream("fast", 0.01), batch("train")),
        app("b", 100, stream("mid", 0.1)),
    ])
    a = out[("default", "a")]
    # order: a/fast (0), b/mid (1), a/slow (2): 3 stream jobs in all
    assert a.table == {"fast": 12, "slow": 10, "train": 0}
    assert out[("default", "b")].table == {"mid": 11}
    assert a.rank == 0
    assert out[("default", "b")].rank == 1


def test_every_stream_job_above_every_batch_job() -> None:
    out = rank([app(f"a{i}", i * 10, stream("s", 0.1), batch("b")) for i in range(20)])
    for assignment in out.values():
        assert assignment.table["s"] >= 10 > assignment.table["b"]


@pytest.mark.parametrize(("effective", "expected"), [
    (0, "neptune-low"), (99, "neptune-low"), (100, "neptune-normal"),
    (499, "neptune-normal"), (500, "neptune-high"), (900, "neptune-critical"),
    (5000, "neptune-critical"),
])
def test_class_thresholds(effective: int, expected: str) -> None:
    assert class_for(effective, DEFAULT_CLASSES) == expected


def test_custom_classes_unsorted() -> None:
    classes = [PriorityClassSpec("hi", 10), PriorityClassSpec("lo", 0)]
    assert class_for(5, classes) == "lo"
    assert class_for(10, classes) == "hi"


def test_boost_raises_rank_and_class() -> None:
    apps = [app("steady", 150, stream("s", 0.05)), app("late", 100, stream("s", 0.05))]
    before = rank(apps)
    assert before[("default", "late")].rank == 1
    apps[1] = app("late", 100, stream("s", 0.05), boost=1)
    after = rank(apps)
    late = after[("default", "late")]
    assert late.rank == 0
    assert late.effective_priority == 200
    assert late.priority_class == "neptune-normal"
    assert "boost 1" in late.reason


def test_batch_only_app_gets_lowest_class_and_no_rank() -> None:
    out = rank([app("etl", 0, batch("b"))])
    assert out[("default", "etl")].rank is None
    assert out[("default", "etl")].priority_class == "neptune-low"
    assert "no stream job" in out[("default", "etl")].reason


def test_same_names_in_two_namespaces_are_distinct() -> None:
    out = rank([app("x", 0, stream("s", 0.1), ns="a"), app("x", 0, stream("s", 0.2), ns="b")])
    assert out[("a", "x")].rank == 0
    assert out[("b", "x")].rank == 1


def test_deterministic_regardless_of_input_order() -> None:
    apps = [app(f"a{i}", i % 3 * 100, stream("s", 0.1 * (i % 4 + 1))) for i in range(12)]
    assert rank(apps) == rank(list(reversed(apps)))
