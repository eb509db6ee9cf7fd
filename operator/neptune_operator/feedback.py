"""SLO feedback: an app that misses its SLO for a sustained window is raised one step;
after it has met its SLO for a (longer) recovery window it is lowered one step.

Pure: state in, state out, with the reason for every change. The two windows give
hysteresis, so an app hovering around its SLO does not flap between ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class FeedbackConfig:
    violation_window_s: float = 60.0
    recovery_window_s: float = 300.0
    max_boost: int = 2


@dataclass(frozen=True)
class FeedbackState:
    boost: int = 0
    violating_since: float | None = None
    healthy_since: float | None = None
    changed_at: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    state: FeedbackState
    changed: bool
    reason: str  # empty when nothing changed


def step(state: FeedbackState, slo_met: bool | None, now: float,
         cfg: FeedbackConfig = FeedbackConfig()) -> Decision:
    """slo_met None: no evidence (driver unreachable, no samples): timers restart, boost kept."""
    if slo_met is None:
        return Decision(replace(state, violating_since=None, healthy_since=None), False, "")
    if not slo_met:
        since = state.violating_since if state.violating_since is not None else now
        missed_for = now - since
        if missed_for >= cfg.violation_window_s and state.boost < cfg.max_boost:
            boost = state.boost + 1
            reason = (f"SLO missed for {missed_for:.0f}s (window {cfg.violation_window_s:.0f}s):"
                      f" raised one step to boost {boost} of {cfg.max_boost}")
            # The window restarts, so a further step needs another full window of misses.
            return Decision(FeedbackState(boost, now, None, now, reason), True, reason)
        return Decision(replace(state, violating_since=since, healthy_since=None), False, "")
    since = state.healthy_since if state.healthy_since is not None else now
    met_for = now - since
    if state.boost > 0 and met_for >= cfg.recovery_window_s:
        boost = state.boost - 1
        reason = (f"SLO met for {met_for:.0f}s (window {cfg.recovery_window_s:.0f}s):"
                  f" lowered one step to boost {boost}")
        return Decision(FeedbackState(boost, None, now, now, reason), True, reason)
    return Decision(replace(state, violating_since=None, healthy_since=since), False, "")
