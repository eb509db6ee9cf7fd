"""feedback: sustained SLO misses raise an app one step, recovery lowers it back."""

from __future__ import annotations

from collections.abc import Sequence

from neptune_operator.feedback import FeedbackConfig, FeedbackState, step

CFG = FeedbackConfig(violation_window_s=60, recovery_window_s=300, max_boost=2)
START = FeedbackState()


def run(samples: Sequence[tuple[float, bool | None]],
        state: FeedbackState = START) -> tuple[FeedbackState, list[str]]:
    reasons = []
    for now, met in samples:
        d = step(state, met, now, CFG)
        state = d.state
        if d.changed:
            reasons.append(d.reason)
    return state, reasons


def test_short_miss_does_not_raise() -> None:
    state, reasons = run([(0, False), (30, False), (59, False), (60, True)])
    assert state.boost == 0
    assert reasons == []


def test_sustained_miss_raises_one_step() -> None:
    state, reasons = run([(0, False), (30, False), (60, False)])
    assert state.boost == 1
    assert len(reasons) == 1
    assert "SLO missed for 60s" in reasons[0]
    assert state.reason == reasons[0]
    assert state.changed_at == 60


def test_each_step_needs_a_full_window_and_is_bounded() -> None:
    samples = [(float(t), False) for t in range(0, 601, 10)]
    state, reasons = run(samples)
    assert state.boost == 2  # bounded by max_boost
    assert len(reasons) == 2
    _, two = run([(float(t), False) for t in range(0, 111, 10)])
    assert len(two) == 1  # 110 s: a second window has not passed since the first step


def test_recovery_lowers_after_recovery_window() -> None:
    raised, _ = run([(0, False), (60, False)])
    state, reasons = run([(100, True), (300, True), (399, True)], raised)
    assert state.boost == 1
    assert reasons == []
    state, reasons = run([(400, True)], state)
    assert state.boost == 0
    assert "lowered one step to boost 0" in reasons[0]


def test_miss_during_recovery_restarts_recovery_window() -> None:
    raised, _ = run([(0, False), (60, False)])
    state, _ = run([(100, True), (350, False), (360, True), (500, True)], raised)
    assert state.boost == 1  # healthy only since 360


def test_unknown_keeps_boost_and_resets_timers() -> None:
    state, reasons = run([(0, False), (50, None), (100, False), (150, False)])
    assert state.boost == 0  # the miss window restarted at 100
    assert reasons == []
    raised, _ = run([(0, False), (60, False)])
    kept, _ = run([(70, None), (1000, None)], raised)
    assert kept.boost == 1


def test_never_below_zero() -> None:
    state, reasons = run([(float(t), True) for t in range(0, 2000, 100)])
    assert state.boost == 0
    assert reasons == []
