"""autoscale: the executors follow the drain time of the worst stream job, with windows and
hysteresis, one step per window, within the bounds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from neptune_operator.autoscale import (
    AutoscaleSpec,
    AutoscaleState,
    Decision,
    JobDrain,
    drains,
    status,
    step,
    worst,
)

SPEC = AutoscaleSpec(min_replicas=1, max_replicas=10, target_lag_s=30, up_window_s=60,
                     down_window_s=300)
INF = math.inf


def drain(seconds: float, job: str = "score") -> JobDrain:
    if math.isinf(seconds):
        return JobDrain(job, 500, 0.0, seconds)
    return JobDrain(job, round(seconds * 100), 100.0, seconds)


def every(step_s: float, start: float, stop: float, value: float | None
          ) -> list[tuple[float, float | None]]:
    """A status round every step_s seconds from start up to and including stop."""
    n = round((stop - start) / step_s)
    return [(start + i * step_s, value) for i in range(n + 1)]


def run(series: Sequence[tuple[float, float | None]], replicas: int,
        spec: AutoscaleSpec = SPEC, scaled_by_hand: dict[float, int] | None = None,
        ) -> tuple[list[tuple[float, int]], Decision]:
    """Feed a time series of worst drain times (None: no evidence) through step, applying each
    change as the operator would; returns the changes (time, replicas) and the last decision."""
    state = AutoscaleState()
    changes: list[tuple[float, int]] = []
    decision = None
    for now, seconds in series:
        if scaled_by_hand and now in scaled_by_hand:
            replicas = scaled_by_hand[now]
        decision = step(state, spec, replicas, None if seconds is None else drain(seconds), now)
        state = decision.state
        if decision.changed:
            changes.append((now, decision.replicas))
            replicas = decision.replicas
    assert decision is not None
    return changes, decision


# (label, series, replicas at the start, spec, the changes expected)
CASES: list[tuple[str, list[tuple[float, float | None]], int, AutoscaleSpec,
                  list[tuple[float, int]]]] = [
    ("a burst shorter than the up window does nothing",
     [*every(15, 0, 45, 100.0), (59, 100.0), (60, 10.0), (75, 100.0)], 2, SPEC, []),
    ("sustained lag: up after the window, at most double",
     every(15, 0, 60, 100.0), 2, SPEC, [(60, 4)]),
    ("proportional when less than double is enough",
     every(15, 0, 60, 40.0), 4, SPEC, [(60, 6)]),  # ceil(4 * 40 / 30) = 6
    ("at least one more pod, however little over the target",
     every(15, 0, 60, 31.0), 4, SPEC, [(60, 5)]),
    ("one step per window: the window restarts after each step",
     every(15, 0, 200, 100.0), 2, SPEC, [(60, 4), (135, 8)]),
    ("bounded by maxReplicas, then held",
     every(15, 0, 300, 1000.0), 6, SPEC, [(60, 10)]),
    ("lag and no throughput doubles",
     every(15, 0, 60, INF), 3, SPEC, [(60, 6)]),
    ("a dip into the band restarts the up window",
     [(0, 100.0), (30, 100.0), (45, 20.0), *every(15, 60, 120, 100.0)], 2, SPEC, [(120, 4)]),
    ("no evidence restarts the up window",
     [(0, 100.0), (30, None), *every(15, 45, 105, 100.0)], 2, SPEC, [(105, 4)]),
    ("down only after the longer window, one pod at a time, to minReplicas",
     every(15, 0, 1300, 1.0), 4, SPEC, [(300, 3), (615, 2), (930, 1)]),
    ("under the target but not well under (the band) holds",
     every(15, 0, 1200, 20.0), 4, SPEC, []),
    ("a lag that comes and goes does not flap",
     [(t, 100.0 if (t // 15) % 2 else 1.0) for t, _ in every(15, 0, 1800, None)], 4, SPEC, []),
    ("a burst after a step up: no step down for a full down window",
     [*every(15, 0, 60, 100.0), *every(15, 75, 390, 0.0)], 2, SPEC, [(60, 4), (375, 3)]),
    ("up window 0: the first round over the target steps",
     [(0, 100.0), (15, 100.0)], 2,
     AutoscaleSpec(1, 10, 30, up_window_s=0, down_window_s=0), [(0, 4), (15, 8)]),
    ("below minReplicas: corrected at once, evidence or not",
     [(0, None)], 1, AutoscaleSpec(3, 10, 30), [(0, 3)]),
    ("above maxReplicas: corrected at once",
     [(0, 1.0)], 12, SPEC, [(0, 10)]),
]


@pytest.mark.parametrize(("label", "series", "replicas", "spec", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_time_series(label: str, series: list[tuple[float, float | None]], replicas: int,
                     spec: AutoscaleSpec, expected: list[tuple[float, int]]) -> None:
    changes, _ = run(series, replicas, spec)
    assert changes == expected, label


def test_a_scale_by_hand_restarts_the_windows() -> None:
    series = every(15, 0, 180, 100.0)
    # kubectl scale to 5 at t=45: the next step needs a full window from there.
    changes, _ = run(series, 2, scaled_by_hand={45: 5})
    assert changes == [(105, 10)]
    changes, _ = run(series, 2)
    assert changes[0] == (60, 4)  # without it


def test_the_reasons_carry_the_numbers() -> None:
    changes, up = run(every(15, 0, 60, 95.3), 2)
    assert changes == [(60, 4)]
    assert up.reason == ("executors 2 -> 4: job score needs 95.3s to drain 9530 records at "
                         "100.0/s, over the target 30s for 60s (scaleUpWindowSeconds 60); "
                         "bounds 1..10")
    _, down = run(every(15, 0, 300, 2.0), 3)
    assert down.changed and down.replicas == 2
    assert down.reason == ("executors 3 -> 2: the worst, job score needs 2.0s to drain 200 "
                           "records at 100.0/s, under 15s (half the target 30s) for 300s "
                           "(scaleDownWindowSeconds 300); bounds 1..10")
    _, bounded = run([(0, None)], 1, AutoscaleSpec(3, 10, 30))
    assert bounded.reason == ("executors 1 -> 3: executors.replicas 1 is below "
                              "autoscale.minReplicas 3")


@pytest.mark.parametrize(("series", "replicas", "message"), [
    ([(0, 100.0), (20, 100.0)], 2, "job score needs 100.0s to drain 10000 records at 100.0/s, "
                                   "over the target 30s for 20s of 60s before a step up"),
    ([(0, 1.0)], 3, "under 15s for 0s of 300s before a step down"),
    ([(0, 1.0)], 1, "under 15s, at minReplicas 1"),
    ([(0, 100.0)], 10, "over the target 30s, at maxReplicas 10"),
    ([(0, 20.0)], 3, "within the target 30s (steps down under 15s)"),
    ([(0, None)], 3, "holding at 3: no running stream job reports lag"),
    ([(0, INF)], 3, "job score has 500 records waiting and no throughput"),
])
def test_the_status_says_what_it_waits_for(series: list[tuple[float, float | None]],
                                           replicas: int, message: str) -> None:
    changes, last = run(series, replicas)
    assert changes == []
    assert message in last.message


def doc(**jobs: dict[str, Any]) -> dict[str, Any]:
    return {"jobs": jobs}


def stream(lag: dict[str, int] | None, throughput: float, state: str = "running"
           ) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "stream", "state": state, "throughput_per_s": throughput}
    if lag is not None:
        out["lag"] = lag
    return out


def test_drain_time_of_each_job() -> None:
    found = drains(doc(
        score=stream({"0": 300, "1": 600}, 30.0),  # 900 records at 30/s: 30 s
        idle=stream({"0": 0}, 0.0),  # nothing waiting: 0 s, whatever the throughput
        stalled=stream({"0": 50}, 0.0),  # waiting, nothing processed: infinite
        http=stream(None, 100.0),  # its source reports no lag: no evidence
        none=stream({}, 100.0),
        broken=stream({"0": 10**6}, 1.0, state="degraded"),  # source away: stale lag
        train={"kind": "batch", "state": "running", "throughput_per_s": 1.0, "lag": {"0": 9}},
    ))
    assert found == [JobDrain("idle", 0, 0.0, 0.0), JobDrain("score", 900, 30.0, 30.0),
                     JobDrain("stalled", 50, 0.0, INF)]
    assert drains(None) == [] and drains({"jobs": {}}) == []


def test_the_worst_job_decides() -> None:
    assert worst([]) is None
    a, b, c = JobDrain("a", 10, 1.0, 10.0), JobDrain("b", 40, 1.0, 40.0), JobDrain(
        "c", 40, 1.0, 40.0)
    assert worst([a, c, b]) == b  # the longest; a tie goes to the first name
    assert worst([a, JobDrain("z", 1, 0.0, INF)]).job == "z"  # type: ignore[union-attr]


def test_spec_from_the_resource() -> None:
    assert AutoscaleSpec.from_spec({"executors": {"replicas": 3}}) is None
    assert AutoscaleSpec.from_spec({"executors": {"autoscale": {"maxReplicas": 4}}}) == \
        AutoscaleSpec(1, 4, 30.0, 60.0, 300.0)
    assert AutoscaleSpec.from_spec({"executors": {"autoscale": {
        "minReplicas": 2, "maxReplicas": 8, "targetLagSeconds": 10,
        "scaleUpWindowSeconds": 5, "scaleDownWindowSeconds": 20}}}) == \
        AutoscaleSpec(2, 8, 10.0, 5.0, 20.0)


def test_status_keeps_the_last_change() -> None:
    _, up = run(every(15, 0, 60, 95.3), 2)
    st = status(up, None, "2026-01-01T00:01:00Z")
    assert st == {"message": up.reason, "job": "score", "drainSeconds": 95.3,
                  "lastScaleTime": "2026-01-01T00:01:00Z", "lastScale": up.reason}
    _, held = run([(0, INF)], 4)
    later = status(held, st, "2026-01-01T00:02:00Z")
    assert later["lastScaleTime"] == "2026-01-01T00:01:00Z"
    assert later["lastScale"] == up.reason
    assert "drainSeconds" not in later and later["job"] == "score"  # infinite: not a number
