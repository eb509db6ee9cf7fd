"""Operator settings, from the environment (the chart sets them from values)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .feedback import FeedbackConfig
from .ranking import DEFAULT_CLASSES, PriorityClassSpec


@dataclass(frozen=True)
class OperatorConfig:
    monitoring_namespace: str = "monitoring"
    operator_namespace: str | None = None
    # Where the driver's /status is read; {name} and {namespace} are filled in.
    driver_status_url: str = "http://{name}-driver.{namespace}.svc:8080/status"
    status_interval_s: float = 15.0
    metrics_port: int = 8000
    classes: tuple[PriorityClassSpec, ...] = DEFAULT_CLASSES
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    # Lower the executors' CPU requests of apps below the top priority (cpushare.py); off,
    # they keep (or go back to) their spec's.
    cpu_by_rank: bool = True


def _classes(raw: str | None) -> tuple[PriorityClassSpec, ...]:
    """NEPTUNE_PRIORITY_CLASSES='{"neptune-low": 0, "neptune-high": 500}' (name: min priority)."""
    if not raw:
        return DEFAULT_CLASSES
    data = json.loads(raw)
    if not isinstance(data, dict) or not data:
        raise ValueError("NEPTUNE_PRIORITY_CLASSES must be a non-empty JSON object")
    return tuple(PriorityClassSpec(str(k), int(v)) for k, v in data.items())


def from_env(env: Mapping[str, str] | None = None) -> OperatorConfig:
    e = os.environ if env is None else env
    return OperatorConfig(
        monitoring_namespace=e.get("NEPTUNE_MONITORING_NAMESPACE", "monitoring"),
        operator_namespace=e.get("NEPTUNE_OPERATOR_NAMESPACE") or None,
        driver_status_url=e.get("NEPTUNE_DRIVER_STATUS_URL",
                                "http://{name}-driver.{namespace}.svc:8080/status"),
        status_interval_s=float(e.get("NEPTUNE_STATUS_INTERVAL", "15")),
        metrics_port=int(e.get("NEPTUNE_OPERATOR_METRICS_PORT", "8000")),
        classes=_classes(e.get("NEPTUNE_PRIORITY_CLASSES")),
        feedback=FeedbackConfig(
            violation_window_s=float(e.get("NEPTUNE_FEEDBACK_VIOLATION_WINDOW", "60")),
            recovery_window_s=float(e.get("NEPTUNE_FEEDBACK_RECOVERY_WINDOW", "300")),
            max_boost=int(e.get("NEPTUNE_FEEDBACK_MAX_BOOST", "2")),
        ),
        namespaces=tuple(n for n in e.get("NEPTUNE_WATCH_NAMESPACES", "").split(",") if n),
        cpu_by_rank=_flag(e.get("NEPTUNE_CPU_BY_RANK", "true"), "NEPTUNE_CPU_BY_RANK"),
    )


def _flag(raw: str, name: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"{name} must be true or false, not {raw!r}")
    return value == "true"
