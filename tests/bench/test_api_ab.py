"""neptune_bench.api_ab: the new-API app is the workload's work, job for job, and the summary
and report say what the runs say (no processes)."""

from __future__ import annotations

from typing import Any

import pytest

from neptune_bench import api_ab, workload
from neptune_runtime.app import BatchJob, StreamJob, TaskContext


@pytest.fixture(autouse=True)
def few_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workload, "_loops", 3)  # no calibration


def ctx(job: str) -> TaskContext:
    return TaskContext("t", job, 0, 0, 0, {})


def test_the_new_api_app_has_the_low_level_jobs_and_their_work() -> None:
    low, new = api_ab._app_for("low"), api_ab._app_for("new")
    assert low is workload.app and new is not None and api_ab._app_for(None) is None
    assert sorted(low.jobs) == sorted(new.jobs) == ["batch", "stream"]
    ls, ns = low.job("stream"), new.job("stream")
    assert isinstance(ls, StreamJob) and isinstance(ns, StreamJob)
    assert (ns.slo, ns.keyed, ns.trigger, ns.priority) == (ls.slo, ls.keyed, ls.trigger,
                                                           ls.priority)
    assert type(ns.source) is type(ls.source)
    events = [0, 5, 17]
    assert list(ns.task(ctx("stream"), iter(events)) or []) == \
        list(ls.task(ctx("stream"), iter(events)) or [])
    lb, nb = low.job("batch"), new.job("batch")
    assert isinstance(lb, BatchJob) and isinstance(nb, BatchJob)
    assert (nb.partitions, nb.cache_partitions, nb.plan()[0].partitions, len(nb.plan())) == (
        lb.partitions, lb.cache_partitions, lb.partitions, 1)
    records = list(workload.read(0, 0))
    assert nb.task(ctx("batch"), iter(records)) == [lb.task(ctx("batch"), iter(records))]


def runs(low: list[float], new: list[float]) -> dict[str, list[dict[str, float]]]:
    def run(x: float) -> dict[str, float]:
        return {k: x for k in api_ab.FIGURES}
    return {"low": [run(x) for x in low], "new": [run(x) for x in new]}


def test_summary_medians_spreads_and_ratios() -> None:
    summary = api_ab.summarize(runs([10, 20, 30], [11, 22, 99]))
    assert summary["per_api"]["low"]["stream_p99_ms"] == {"median": 20, "min": 10, "max": 30}
    assert summary["ratio_new_over_low"]["stream_p99_ms"] == pytest.approx(1.1)
    assert summary["round_ratios"]["suspension_p99_us"] == pytest.approx([1.1, 1.1, 3.3])
    assert summary["paired_ratio_median"]["stream_p50_ms"] == pytest.approx(1.1)
    assert summary["target"]["all_met"]  # 1.1 is at most 1.1
    worse = api_ab.summarize(runs([10, 20, 30], [12, 23, 99]))
    assert not worse["target"]["all_met"]
    assert set(worse["target"]["met"]) == set(api_ab.TARGETS)


def test_markdown_has_the_command_the_load_and_every_figure() -> None:
    result: dict[str, Any] = {
        "command": "python -m neptune_bench.api_ab --rounds 3", "point": "Poisson 20/s",
        "rounds": 3, "measure_s": 10.0, "warmup_s": 1.0, "uptime_before": "load average: 1",
        "uptime_after": "load average: 2", "summary": api_ab.summarize(runs([1, 2, 3],
                                                                            [1, 2, 4]))}
    text = api_ab.markdown(result)
    assert "`python -m neptune_bench.api_ab --rounds 3`" in text
    assert "load average: 1" in text and "load average: 2" in text
    for k in api_ab.FIGURES:
        assert f"| {k}" in text
    assert "stream_p99_ms met" in text
