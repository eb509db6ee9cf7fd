"""Resource -> ranking input. Pure, so the index handler stays one line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from neptune_runtime.durations import parse_duration

from .ranking import AppSpec, JobSpec


def slo_seconds(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value, what="slo")
    except ValueError:
        return None  # the CRD refuses bad SLOs; an old object ranks last rather than crash


def app_spec(namespace: str, name: str, spec: Mapping[str, Any],
             status: Mapping[str, Any] | None) -> AppSpec:
    jobs = tuple(JobSpec(str(j.get("name")), str(j.get("kind")), slo_seconds(j.get("slo")))
                 for j in spec.get("jobs") or [])
    boost = int(((status or {}).get("assignedPriority") or {}).get("boost") or 0)
    # A suspended app has no pods to prioritise: it still ranks, but nothing runs.
    return AppSpec(namespace, name, int(spec.get("priority") or 0), jobs, boost,
                   suspended=bool(spec.get("suspend")))
