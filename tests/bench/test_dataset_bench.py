"""The dataset benchmark's pure parts: the reference summaries, their comparison, the plan of
interleaved runs, the result table, the target and the report (no system is started)."""

from __future__ import annotations

from typing import Any

import pytest

from neptune_bench.dataset_bench import markdown, plan, reference, same_summary, table, target
from neptune_bench.dataset_peers import SYSTEMS, data, outcome


@pytest.mark.parametrize(("records", "keys", "partitions"), [(1000, 7, 3), (5003, 100, 4)])
def test_the_reference_is_what_plain_python_computes_over_the_same_records(
        records: int, keys: int, partitions: int) -> None:
    totals: dict[int, int] = {}
    for p in range(partitions):
        for key, value in data.pairs(p, partitions, records, keys):
            totals[key] = totals.get(key, 0) + value
    assert reference("pairs", records, keys) == data.pairs_summary(totals.items())
    groups: dict[int, list[float]] = {}
    for p in range(partitions):
        frame = data.frame(p, partitions, records, keys)
        for key, amount in zip(frame["key"], frame["amount"], strict=True):
            groups.setdefault(int(key), []).append(float(amount))
    keys_ = sorted(groups)
    assert reference("columns", records, keys) == data.columns_summary(
        keys_, [len(groups[k]) for k in keys_], [sum(groups[k]) for k in keys_],
        [min(groups[k]) for k in keys_], [max(groups[k]) for k in keys_])


def test_summaries_compare_integers_exactly_and_floats_to_a_tolerance() -> None:
    want = {"keys": 100, "rows": 1000, "total": 1250.25}
    assert same_summary(dict(want), want)
    assert same_summary({**want, "total": 1250.25 * (1 + 1e-14)}, want)
    assert not same_summary({**want, "total": 1250.5}, want)
    assert not same_summary({**want, "keys": 99}, want)
    assert not same_summary({**want, "rows": 1000.5}, want)
    assert not same_summary({"keys": 100, "rows": 1000}, want), "a field is missing"
    assert not same_summary({**want, "extra": 1}, want), "a field too many"
    assert not same_summary(None, want), "a failed run has no summary"


def test_a_run_whose_epochs_disagree_fails() -> None:
    assert outcome([1.0], [2.0, 3.0], [{"a": 1}] * 3)["epochs_s"] == [2.0, 3.0]
    with pytest.raises(ValueError, match="differ"):
        outcome([1.0], [2.0], [{"a": 1}, {"a": 2}])


def test_every_round_runs_each_system_once_in_a_rotating_order() -> None:
    pairs = [("pairs", "ours"), ("pairs", "spark_rdd"), ("pairs", "dask_bag")]
    steps = plan(3, pairs)
    assert len(steps) == 9
    for round_ in range(3):
        assert sorted((w, s) for r, w, s in steps if r == round_) == sorted(pairs)
    firsts = [next(s for r, _, s in steps if r == round_) for round_ in range(3)]
    assert firsts == ["ours", "spark_rdd", "dask_bag"]


def _run(round_: int, workload: str, system: str, epochs: list[float],
         ok: bool = True) -> dict[str, Any]:
    return {"round": round_, "workload": workload, "system": system, "epochs_s": epochs,
            "summary_ok": ok, "info": {"startup_s": 2.0}}


def _result() -> dict[str, Any]:
    runs = [
        _run(0, "pairs", "ours", [3.0, 5.0]), _run(0, "pairs", "spark_rdd", [4.0, 4.0]),
        _run(1, "pairs", "ours", [6.0, 6.0]), _run(1, "pairs", "spark_rdd", [5.0, 5.0]),
        _run(0, "columns", "ours", [1.0, 1.0], ok=False),
        {"round": 0, "workload": "columns", "system": "spark_df", "error": "exit code 1"},
    ]
    rows = table(runs)
    return {"config": {"records": 10, "keys": 2, "partitions": 4, "reducers": 4, "rounds": 2,
                       "warmup": 1, "epochs": 2},
            "table": rows, "target": target(rows), "runs": runs,
            "expected": {"pairs": {"keys": 2}}, "uptime_start": "load average: 0.10",
            "uptime_end": "load average: 0.20", "elapsed_s": 12.0, "command": "python -m x",
            "machine": {"cpus": 2, "python": "3.11", "platform": "Linux",
                        "code": {"commit": "abc", "runtime_changed_files": 0}}}


def test_the_table_gives_median_spread_and_ratio_to_pyspark() -> None:
    result = _result()
    rows = {(r["workload"], r["system"]): r for r in result["table"]}
    ours = rows[("pairs", "ours")]
    assert ours["epoch_s"] == {"median": 5.5, "min": 3.0, "max": 6.0}
    assert ours["epochs"] == 4 and ours["runs"] == 2 and ours["failed"] == 0
    assert ours["ratio"] == round(5.5 / 4.5, 3)
    assert ours["round_ratios"] == [1.0, 1.2], "each round's median over the same round's"
    spark = rows[("pairs", "spark_rdd")]
    assert spark["ratio"] == 1.0
    columns = rows[("columns", "ours")]
    assert columns["wrong_summary"] == 1
    assert columns["ratio"] is None, "its PySpark run failed: nothing to compare with"
    assert rows[("columns", "spark_df")]["failed"] == 1
    assert list(rows) == [k for k in SYSTEMS if k in rows], "in SYSTEMS' order"


def test_the_target_and_the_report() -> None:
    result = _result()
    assert result["target"]["met"] is False and result["target"]["ratio"] == 1.222
    text = markdown(result)
    assert "| pairs | ours: Dataset.reduce_by_key | 5.50 (3.00-6.00) | 1.22x (1.00-1.20) |" \
        in text
    assert "NOT met" in text
    assert "1 wrong, 0 failed of 1 runs" in text and "exit code 1" in text
    assert "load average: 0.10" in text and "load average: 0.20" in text
    assert "python -m x" in text
    fast = table([_run(0, "pairs", "ours", [1.0]), _run(0, "pairs", "spark_rdd", [2.0])])
    assert target(fast)["met"] is True and target(fast)["ratio"] == 0.5
    assert target([])["met"] is None
