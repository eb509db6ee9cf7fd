"""Job settings from the ContinuousApplication resource, applied over the app module's own.

The operator writes {"jobs": {NAME: {"kind", "slo", "trigger", "partitions", "source"}}} into
the app's ConfigMap; the driver applies it at start (a change of job settings restarts the
driver). Pure: the app's job objects are changed in place and what could not be applied is
returned as sentences for /status, never raised, so a mismatch degrades the app visibly
instead of crash-looping its driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .app import App, StreamJob, Trigger
from .durations import parse_duration
from .sources import HttpIngest


def apply_job_settings(app: App, document: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for name, settings in (document.get("jobs") or {}).items():
        job = app.jobs.get(name)
        if job is None:
            problems.append(f"job {name!r} is in the resource but the app module "
                            f"declares only {', '.join(sorted(app.jobs))}")
            continue
        kind = settings.get("kind", job.kind)
        if kind != job.kind:
            problems.append(f"job {name!r} is a {job.kind} job in the app module, "
                            f"not {kind} as the resource says")
            continue
        try:
            if isinstance(job, StreamJob):
                _apply_stream(job, settings, problems)
            elif "partitions" in settings:
                job.partitions = int(settings["partitions"])
        except ValueError as exc:
            problems.append(f"job {name!r}: {exc}")
    return problems


def _apply_stream(job: StreamJob, settings: Mapping[str, Any], problems: list[str]) -> None:
    if "slo" in settings:
        job.slo = parse_duration(settings["slo"], what="slo")
    if "trigger" in settings:
        job.trigger = Trigger.parse(settings["trigger"])
    source = settings.get("source")
    if source == "http":
        if not isinstance(job.source, HttpIngest):
            job.source = HttpIngest()
    elif source is not None and source != job.source.kind:
        problems.append(f"job {job.name!r}: source {source!r} cannot be set from the resource "
                        f"(only 'http'); keeping the module's {job.source.kind} source")
