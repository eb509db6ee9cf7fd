"""Issue 15's shapes in the benchmark: bursts, coarse records, the ledger of events in and
results out, the shape rows and tables, and the targets (pure parts, and the burst source)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import pytest

from neptune_bench.peers.common import PeerConfig, arrivals
from neptune_bench.report import check_targets, markdown, shape_checks, verdicts
from neptune_bench.runner import SHAPES, Point, shape_names
from neptune_bench.suite import points
from neptune_bench.suite_report import (
    aggregate,
    point_key,
    run_rows,
    service_line,
    shape_table,
    sweep,
)
from neptune_bench.suite_report import markdown as suite_markdown
from neptune_bench.summary import burst_service, ledger_counts, phase_summary
from neptune_bench.work import COARSE_RECORDS, burst_offsets, coarse_work


def test_bursts_come_whole_and_half_a_period_in() -> None:
    offsets = burst_offsets(20, 0.5, 2.0)
    assert len(offsets) == 80  # bursts at 0.25, 0.75, 1.25, 1.75
    assert sorted(set(offsets)) == [0.25, 0.75, 1.25, 1.75]
    assert all(offsets.count(t) == 20 for t in set(offsets))
    with pytest.raises(ValueError):
        burst_offsets(0, 0.5, 1.0)
    cfg = PeerConfig(loops=1, batch_records=6, stream_records=100, rate=40.0, warmup=1.0,
                     measure=1.0, arrival="bursts", burst=5, burst_every=0.25)
    assert arrivals(cfg, 1.0, seed=3) == burst_offsets(5, 0.25, 1.0)
    poisson = arrivals(PeerConfig(**{**cfg.__dict__, "arrival": "poisson"}), 1.0, seed=3)
    assert len(set(poisson)) == len(poisson)  # one at a time


def test_a_coarse_record_is_one_hash_of_the_whole_buffer() -> None:
    assert coarse_work(0) == coarse_work(256)  # the seed only changes the result's low byte
    assert coarse_work(1) == coarse_work(0) ^ 1


def test_shape_points_configure_the_workload() -> None:
    bursts, coarse = SHAPES["bursts"], SHAPES["bursts_sha256"]
    assert bursts.rate == 40.0 and bursts.batch_records == 10000
    assert coarse.batch_records == COARSE_RECORDS == 6
    env = coarse.env(77)
    assert env["BENCH_ARRIVAL"] == "bursts" and env["BENCH_BATCH_RECORD"] == "sha256"
    assert env["BENCH_BURST"] == "20" and env["BENCH_BURST_EVERY"] == "0.5"
    assert Point().env(77)["BENCH_ARRIVAL"] == "poisson"
    assert shape_names(None) == ["bursts", "bursts_sha256"]
    assert shape_names("none") == [] and shape_names("bursts_sha256") == ["bursts_sha256"]
    with pytest.raises(SystemExit, match="unknown shape"):
        shape_names("bursty")


def test_the_ledger_counts_the_window_and_finds_lost_and_repeated_events() -> None:
    text = "\n".join([
        "e 0.5 0 2",  # before the window: its results are not counted
        "r 0.6 0", "r 0.6 1",
        "e 1.0 2 3",  # events 2, 3, 4
        "r 1.1 2", "r 1.2 3", "r 1.2 3",  # 3 answered twice, 4 never
        "e 1.5 5 1", "r 1.6 5", "r 1.7 99",  # 99 was never emitted
        "e 2.5 6 1",  # after the window
        "r 1.8 6",
        "e 1.9 7",  # torn: the driver was writing it
    ])
    counts = ledger_counts(text, t0=1.0, t1=2.0)
    assert counts["events_in"] == 4  # 2, 3, 4, 5
    assert counts["results_out"] == 4  # 2, 3 twice, 5: equal, and still wrong
    assert counts["lost"] == 1 and counts["lost_first"] == [4]
    assert counts["answered_twice"] == 1 and counts["twice_first"] == [3]
    assert counts["unknown_results"] == 1
    clean = ledger_counts("e 1.0 0 20\n" + "".join(f"r 1.1 {i}\n" for i in range(20)), 0, 2)
    assert (clean["events_in"], clean["results_out"], clean["lost"]) == (20, 20, 0)


def test_burst_service_measures_the_burst_and_the_gaps_between_its_answers() -> None:
    out = burst_service([(1.0, [1.002, 1.004, 1.010]), (2.0, [2.003, None]),
                         (3.0, [3.001, 3.002, 3.003])])
    assert out["bursts"] == 2  # the one with an unanswered event is left out
    assert out["burst_served_ms"]["max"] == pytest.approx(10.0)
    assert out["burst_served_ms"]["p50"] == pytest.approx(3.0)
    assert out["answer_gap_ms"]["p50"] == pytest.approx(1.0)
    assert out["answer_gap_ms"]["p99"] == pytest.approx(6.0)
    ledger = "e 1.0 0 3\nr 1.002 0\nr 1.004 1\nr 1.010 2\n"
    assert ledger_counts(ledger, 0.0, 2.0)["burst_served_ms"]["max"] == pytest.approx(10.0)
    # a peer's events of one burst share their scheduled arrival
    phase = phase_summary([(1.0, 1.002, 100), (1.0, 1.006, 100), (1.5, 1.501, 100)], [],
                          t0=0.5, t1=2.0, ended=3.0)
    assert phase["bursts"] == 1 and phase["burst_served_ms"]["max"] == pytest.approx(6.0)


def test_the_burst_source_emits_whole_bursts_and_writes_them_down(tmp_path: Path) -> None:
    from neptune_bench.workload import Bursts, Ledger
    from neptune_runtime.sources import SourceOutput

    class Out:
        def __init__(self) -> None:
            self.bursts: list[list[tuple[Any, Any]]] = []

        def emit(self, value: Any, token: Any, partition: int = 0) -> None:
            raise AssertionError("a burst is one emit_all")

        def emit_all(self, events: list[tuple[Any, Any]], partition: int = 0) -> None:
            self.bursts.append(events)

        def malformed(self, reason: str) -> None:
            raise AssertionError(reason)

        async def room(self) -> None:
            return None

    ledger = Ledger(str(tmp_path / "ledger"))
    out = Out()

    async def run() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(Bursts(4, 0.02, ledger).run(cast(SourceOutput, out)), 0.11)

    asyncio.run(run())
    assert len(out.bursts) >= 3
    assert out.bursts[0] == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert out.bursts[1][0] == (4, 4)
    ledger.write("stream", [0, 1, 2, 3])
    counts = ledger_counts((tmp_path / "ledger").read_text(), 0.0, float("inf"))
    assert counts["events_in"] == 4 * len(out.bursts)
    assert counts["lost"] == 4 * (len(out.bursts) - 1)  # only the first burst was answered


def _ours(p99: float, rel: float | None, events: int = 200, lost: int = 0,
          gaps: dict[str, float] | None = None, mode: str = "both") -> dict[str, Any]:
    return {"mode": mode, "stream_p50_ms": p99 / 2, "stream_p99_ms": p99,
            "stream_max_ms": p99 * 1.1, "batch_records_per_s": None if rel is None else 100 * rel,
            "suspensions": 21, "yield_interval_ms": gaps or {"p50": 0.5, "p99": 1.0, "max": 2.0},
            "send_to_start_us": {"p50": 40.0, "p99": 80.0},
            "ledger": {"events_in": events, "results_out": events - lost, "lost": lost,
                       "answered_twice": 0, "burst_served_ms": {"p50": p99 / 2, "max": p99},
                       "answer_gap_ms": {"p50": 1.25, "p99": 3.0}}}


def _shape(name: str, neptune_p99: float, fair_p99: float, rel: float = 0.95,
           record_ms: float = 25.0, lost: int = 0, peer: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    point = SHAPES[name]
    alone = _ours(20.0, None, mode="stream")
    alone["ledger"] = {"events_in": 200, "results_out": 200, "lost": 0, "answered_twice": 0}
    batch = _ours(0.0, 1.0, mode="batch",
                  gaps={"p50": record_ms, "p99": record_ms * 1.2, "max": record_ms * 1.5})
    batch.update(stream_p50_ms=None, stream_p99_ms=None, stream_max_ms=None, ledger=None)
    return {
        "label": name, "point": asdict(point),
        "records_per_task": {"batch": point.batch_records, "stream": 100},
        "runtime": {"stream_alone": alone, "batch_alone": batch,
                    "fifo": _ours(900.0, 1.0), "fair": _ours(fair_p99, 1.0),
                    "kill": _ours(40.0, 0.1), "neptune": _ours(neptune_p99, rel, 400, lost)},
        "peers": {"os_priority": peer or {
            "failed": False, "stream_p50_ms": 5.0, "stream_p99_ms": 25.0, "stream_max_ms": 26.0,
            "batch_throughput_rel": 0.98, "stream_unfinished": 0,
            "records": {"stream_events": 200}}},
    }


def test_shape_rows_carry_counts_suspensions_and_yield_intervals() -> None:
    rows = run_rows(_shape("bursts_sha256", 60.0, 300.0, lost=2))
    assert list(rows) == ["stream alone", "batch alone", "fifo", "fair", "kill", "neptune",
                          "os_priority"]
    assert rows["batch alone"]["yield_p50_ms"] == 25.0
    assert rows["batch alone"]["batch_throughput_rel"] == 1.0
    assert rows["stream alone"]["suspensions"] is None  # no batch job to suspend
    assert rows["stream alone"]["yield_max_ms"] is None
    assert rows["neptune"]["batch_throughput_rel"] == pytest.approx(0.95)
    assert (rows["neptune"]["events_in"], rows["neptune"]["results_out"]) == (400, 398)
    assert rows["os_priority"]["results_out"] == 200 and rows["os_priority"]["lost"] == 0
    table = "\n".join(shape_table(rows))
    assert "| neptune | 30.0 | 60.0 | 66.0 | 400 | 398 (2 lost) | 0.950 | 21 | 1.0 / 2.0 |" in table
    assert "| batch alone | - | - | - | - | - | 1.000 | 21 | 30.0 / 37.5 |" in table
    assert "| os_priority | 5.0 | 25.0 | 26.0 | 200 | 200 | 0.980 | - | - |" in table
    assert service_line(rows) == [
        "Bursts served, from the emission to the burst's last result, p50 / max ms (and between "
        "two results of a burst, p50 ms): fifo 450.0 / 900.0 (1.25); fair 150.0 / 300.0 "
        "(1.25); kill 20.0 / 40.0 (1.25); neptune 30.0 / 60.0 (1.25)."]


def test_coarse_targets_pass_and_fail() -> None:
    # bound: 2 records (batch alone's yield interval p50, 25 ms) + stream alone's p99 (20 ms)
    passing = verdicts(shape_checks(asdict(SHAPES["bursts_sha256"]),
                                    run_rows(_shape("bursts_sha256", 60.0, 300.0))))
    assert passing["bursts_sha256: neptune stream p99 <= 2 records + stream alone's p99"] == {
        "value": 60.0, "bound": 70.0, "ok": True}
    assert passing["bursts_sha256: neptune stream p99 <= 1/3 of fair's"]["ok"] is True
    assert passing["bursts_sha256: neptune batch_throughput_rel >= 0.90"]["ok"] is True
    assert passing["bursts_sha256: events lost or answered twice (all systems) = 0"]["ok"]
    failing = verdicts(shape_checks(asdict(SHAPES["bursts_sha256"]), run_rows(
        _shape("bursts_sha256", 80.0, 200.0, rel=0.85, lost=1))))
    assert not failing["bursts_sha256: neptune stream p99 <= 2 records + stream alone's p99"][
        "ok"]
    assert failing["bursts_sha256: neptune stream p99 <= 1/3 of fair's"]["bound"] == (
        pytest.approx(200.0 / 3))
    assert not failing["bursts_sha256: neptune stream p99 <= 1/3 of fair's"]["ok"]
    assert not failing["bursts_sha256: neptune batch_throughput_rel >= 0.90"]["ok"]
    assert failing["bursts_sha256: events lost or answered twice (all systems) = 0"] == {
        "value": 1.0, "bound": 0.0, "ok": False}


def test_burst_targets_compare_with_stream_alone_under_the_same_bursts() -> None:
    point = asdict(SHAPES["bursts"])
    ok = verdicts(shape_checks(point, run_rows(_shape("bursts", 40.0, 300.0))))
    assert ok["bursts: neptune stream p99 <= 2x stream alone's (same bursts)"] == {
        "value": 40.0, "bound": 40.0, "ok": True}
    assert "bursts: neptune stream p99 <= 1/3 of fair's" not in ok
    late = verdicts(shape_checks(point, run_rows(_shape("bursts", 40.5, 300.0))))
    assert not late["bursts: neptune stream p99 <= 2x stream alone's (same bursts)"]["ok"]


def test_nothing_counted_is_not_a_pass_but_a_failed_peer_is_left_out() -> None:
    point = asdict(SHAPES["bursts"])
    shape = _shape("bursts", 30.0, 300.0)
    shape["runtime"]["neptune"]["ledger"] = None  # the run kept no ledger
    name = "bursts: events lost or answered twice (all systems) = 0"
    assert verdicts(shape_checks(point, run_rows(shape)))[name]["value"] is None
    failed = _shape("bursts", 30.0, 300.0, peer={"failed": True, "error": "no SCHED_IDLE"})
    checks = verdicts(shape_checks(point, run_rows(failed)))
    assert checks[name] == {"value": 0.0, "bound": 0.0, "ok": True}
    assert "| os_priority | FAILED: no SCHED_IDLE |" in "\n".join(shape_table(run_rows(failed)))


def _quick() -> dict[str, Any]:
    row = {"stream_p50_ms": 1.0, "stream_p99_ms": 2.0, "batch_throughput_rel": 0.95,
           "wasted_task_seconds": 0.5, "suspensions": 3}
    kind = _shape("bursts", 2.0, 100.0)["runtime"]
    return {
        "policies": {p: dict(row) for p in ("fifo", "fair", "kill", "neptune")},
        "stream_alone": {"stream_p50_ms": 1.0, "stream_p99_ms": 1.5},
        "suspension_latency_us": {"p50": 50.0, "p99": 90.0, "max": 120.0},
        "suspension_arrival_to_start_us": {"p50": 20.0, "p99": 40.0, "max": 60.0},
        "yield_overhead_rel": 0.99, "yield_overhead_spread": {"min": 0.98, "max": 1.0},
        "config": {"batch_records_per_task": 10000, "stream_records_per_task": 100,
                   "rate_per_s": 20.0, "batch_ms": 100.0},
        "scenarios": kind,
        "shapes": {"bursts": _shape("bursts", 30.0, 300.0),
                   "bursts_sha256": _shape("bursts_sha256", 60.0, 300.0)},
    }


def test_quick_report_has_every_shape_and_its_targets() -> None:
    result = _quick()
    result["shapes"]["bursts_sha256"]["record_ms"] = {"p50": 24.6, "max": 31.2, "samples": 20}
    coarse = result["shapes"]["bursts_sha256"]["runtime"]
    coarse["batch_alone"]["warnings"] = ["job batch: 26.0 ms between yield points"]
    coarse["neptune"]["warnings"] = ["job batch: 27.5 ms between | yield points"]
    result["targets"] = check_targets(result)
    targets = result["targets"]
    assert targets["kind: events lost or answered twice (all systems) = 0"]["ok"] is True
    assert targets["bursts: neptune stream p99 <= 2x stream alone's (same bursts)"]["ok"]
    assert targets["bursts_sha256: neptune stream p99 <= 1/3 of fair's"]["ok"]
    text = markdown(result)
    assert text.startswith("## Kind shape: Poisson 20/s, ~100 ms batch tasks")
    assert "Events in / results out in the measured window: stream alone 200 / 200;" in text
    assert "## bursts_sha256" in text and "## bursts\n" in text
    assert "| neptune | 30.0 | 60.0 | 66.0 | 400 | 400 | 0.950 | 21 | 1.0 / 2.0 |" in text
    assert "sha256 records on the executor's core with no runtime: p50 24.6 ms" in text
    assert ('The driver warned (/status `warnings`) in batch_alone, neptune; neptune\'s run (or '
            'the first): "job batch: 27.5 ms between / yield points"') in text
    assert text.count("The driver warned") == 1  # the bursts shape had none
    assert text.index("## bursts_sha256") < text.index("| target | value | bound | met |")
    assert "| bursts_sha256: neptune stream p99 <= 1/3 of fair's | 60.000 | 100.000 | yes |" in (
        text)
    result["shapes"]["bursts"]["runtime"]["neptune"]["ledger"]["answered_twice"] = 1
    assert not check_targets(result)[
        "bursts: events lost or answered twice (all systems) = 0"]["ok"]


def test_the_full_suite_runs_the_shapes_apart_from_its_sweeps() -> None:
    plan = points()
    assert SHAPES["bursts"] in plan and SHAPES["bursts_sha256"] in plan
    assert point_key(asdict(SHAPES["bursts_sha256"])) == (
        "bursts of 20 every 0.5 s, sha256 records (~25 ms C calls)")
    assert point_key(asdict(SHAPES["bursts"])) == "bursts of 20 every 0.5 s, batch 100 ms"
    kind = _shape("bursts", 2.0, 100.0)
    kind["point"] = asdict(Point(batch_ms=100.0, rate=20.0))
    other = _shape("bursts", 2.0, 100.0)
    other["point"] = asdict(Point(batch_ms=100.0, rate=50.0))
    suite_points = [
        {"point": p["point"], "aggregate": aggregate([p, p]), "runs": [p, p]}
        for p in (kind, other, _shape("bursts", 30.0, 300.0),
                  _shape("bursts_sha256", 60.0, 300.0))]
    result = {"config": {"executor_cpu": 1, "driver_cpu": 0, "loops_per_record": 60,
                         "stream_ms": 1.0, "repetitions": 2, "headline_rate": 20.0,
                         "headline_batch_ms": 100.0},
              "machine": {"loadavg_at_end": [0.1, 0.2, 0.3]}, "points": suite_points}
    assert [p["point"]["rate"] for p in sweep(result, "rate")] == [20.0, 50.0]
    agg = suite_points[3]["aggregate"]
    assert agg["neptune"]["events_in"] == 800  # summed over the two repetitions
    text = suite_markdown(result)
    assert "## bursts of 20 every 0.5 s, sha256 records (~25 ms C calls)" in text
    assert ("| neptune | 30.0 [30.0-30.0] | 60.0 [60.0-60.0] | 66.0 [66.0-66.0] | 800 | 800 | "
            "0.950 [0.950-0.950] | 21 [21-21] | 1.0 [1.0-1.0] / 2.0 [2.0-2.0] |") in text
    assert ("| bursts_sha256: neptune stream p99 <= 2 records + stream alone's p99 | 60.000 | "
            "70.000 | yes |") in text
    # the kind shape's tables keep their columns, without batch alone
    kind_table = text[text.index("## batch 100 ms, 20/s"):text.index("## batch 100 ms, 50/s")]
    assert "batch alone" not in kind_table
    assert "| system | 20 /s | 50 /s |" in text


def test_runs_side_by_side_give_each_run_and_the_spread() -> None:
    from neptune_bench.runs import markdown as runs_markdown

    first, second = _quick(), _quick()
    second["shapes"]["bursts"]["runtime"]["neptune"]["stream_p99_ms"] = 50.0
    for result, load in ((first, 0.4), (second, 2.5)):
        result["machine"] = {"loadavg_at_end": [load, 1.0, 1.0]}
        result["targets"] = check_targets(result)
    text = runs_markdown([("run1", first), ("run2", second)])
    assert "| system | run1 (load 0.4) | run2 (load 2.5) | median [min-max] |" in text
    assert "## bursts: stream p99 ms" in text and "## bursts_sha256: batch throughput" in text
    assert "| neptune | 30.0 | 50.0 | 40.0 [30.0-50.0] |" in text
    assert ("| bursts: neptune stream p99 <= 2x stream alone's (same bursts) | yes (30.0) | "
            "NO (50.0) |") in text
    assert "| batch alone |" not in text
