"""The JSON document served at /status (read by `neptunectl run` and by the operator)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from .app import BatchJob, StreamJob
from .driver import Driver
from .driver.streams import tokens_view
from .sources import HttpIngest
from .stats import Window, summary


def coarse_warning(job: str, gap_p50: float, fraction: float,
                   tightest: tuple[str, float] | None) -> str | None:
    """The warning for a batch job whose tasks go longer between yield points than `fraction`
    of the tightest stream SLO (pure): a stream task may wait that long to preempt them. The
    median task's longest gap, not a tail: a host that stalls a process now and then stretches
    some tasks' gaps (up to 28 ms seen here for 10 us records), coarse records stretch all."""
    if tightest is None or gap_p50 <= fraction * tightest[1]:
        return None
    stream, slo = tightest
    return (f"job {job}: {gap_p50 * 1e3:.1f} ms between yield points (the median task's "
            f"longest), over {fraction:.0%} of the tightest stream SLO ({slo * 1e3:g} ms, job "
            f"{stream}): a stream task waits that long to preempt it. Add checkpoint() calls "
            "in long loops, or use smaller records; a C call (numpy, hashlib) cannot be "
            "interrupted, so split its input")


def dataflow_counts(lanes: Iterable[Any]) -> dict[str, int]:
    """A dataflow job's late and skipped records, summed over its lanes' keyed state (the
    dataflow API keeps them there, exact across restarts, as `OPERATOR.late` and the like)."""
    totals: dict[str, int] = {}
    for lane in lanes:
        for key, value in lane.counters.items():
            kind = str(key).rpartition(".")[2]
            if kind in ("late", "skipped") and isinstance(value, int):
                totals[kind] = totals.get(kind, 0) + value
    return totals


def stage_figures(driver: Driver, job: BatchJob) -> list[dict[str, Any]]:
    """Per stage of the current epoch: its tasks, how many finished, outputs not fetched."""
    epoch = driver.batches.epochs.get(job.name)
    return [{"stage": index, "partitions": spec.partitions,
             "writes_shuffle": any(index in other.inputs for other in job.plan()),
             "begun": epoch is not None and index in epoch.begun,
             "finished": len(epoch.done.get(index, ())) if epoch is not None else 0,
             "outputs_held": sum(1 for s, _ in epoch.held if s == index) if epoch else 0}
            for index, spec in enumerate(job.plan())]


def job_figures(driver: Driver, now: float) -> dict[str, Any]:
    jobs: dict[str, Any] = {}
    slos = [(j.name, j.slo) for j in driver.app.stream_jobs()]
    tightest = min(slos, key=lambda pair: pair[1]) if slos else None
    for name, job in driver.app.jobs.items():
        stats = driver.stats[name]
        gaps = summary(stats.yield_gaps.values(now))
        figures: dict[str, Any] = {
            "kind": job.kind,
            "state": stats.shown_state,
            "error": stats.shown_error,
            "priority": driver.priority_of(job),
            "suspensions": stats.suspensions,
            "failures": stats.failures,
            "tasks_finished": stats.tasks_finished,
            "records": stats.records,
            "throughput_per_s": round(stats.rate.per_second(now, driver.started), 3),
            "yield_interval_ms": {k: round(v * 1e3, 3) for k, v in gaps.items()
                                  if k != "count"},
        }
        if isinstance(job, StreamJob):
            stream = driver.streams.jobs[name]
            latency = summary(stats.latency.values(now))
            offsets = {"committed": tokens_view(driver.streams.committed(name)),
                       "resumed_from": tokens_view({p: lane.resumed_from for p, lane
                                                    in stream.lanes.items()
                                                    if lane.resumed_from is not None})}
            if isinstance(job.source, HttpIngest):
                offsets["accepted"] = job.source.accepted
                figures["accepting"] = job.source.accepting
            figures.update(
                slo_ms=job.slo * 1e3,
                p50_ms=latency["p50"] * 1e3,
                p99_ms=latency["p99"] * 1e3,
                max_ms=latency["max"] * 1e3,
                samples=int(latency["count"]),
                slo_attainment=(stats.slo_met / stats.slo_total) if stats.slo_total else None,
                events=stats.events,
                results=stats.results,
                uncommitted=stream.uncommitted,
                dead_letters=stats.dead_letters,
                dataflow=dataflow_counts(stream.lanes.values()),
                lag=lag_of(stats.lag, stream.lanes, job.source.reports_lag),
                sink_failures=stats.sink_failures,
                offsets=offsets,
            )
        else:
            figures.update(epoch=stats.epoch, stages=stage_figures(driver, job),
                           warning=coarse_warning(name, gaps["p50"], driver.coarse_fraction,
                                                  tightest))
        jobs[name] = figures
    return jobs


def live_executors(driver: Driver) -> int:
    return sum(1 for conn in driver.executors.values() if conn.ready)


def phase(driver: Driver) -> tuple[str, str]:
    """The app's phase, and a sentence that says why."""
    troubled = {n: s for n, s in driver.stats.items()
                if s.shown_state in ("failed", "degraded")}
    if driver.config_problems or troubled:
        causes = [*driver.config_problems,
                  *(f"job {n} {s.shown_state}: {(s.shown_error or '').splitlines()[0]}"
                    for n, s in troubled.items())]
        return "Degraded", "; ".join(causes)
    if not live_executors(driver):
        return "Waiting", "no live executor: tasks wait until one registers"
    return "Running", ""


def status_document(driver: Driver) -> dict[str, Any]:
    now = time.monotonic()
    def micros(window: Window) -> dict[str, float]:
        return {k: (v if k == "count" else v * 1e6) for k, v in summary(window.values(now)).items()}

    current, message = phase(driver)
    jobs = job_figures(driver, now)
    shipping: dict[str, list[str]] = {}  # keyed tasks whose changes are on their way
    for task in driver.table.tasks.values():
        if task.state == "shipping" and task.executor is not None:
            shipping.setdefault(task.executor, []).append(task.id)
    return {
        "app": driver.app.name,
        "policy": driver.policy_name,
        "phase": current,
        "message": message,
        "uptime_s": round(now - driver.started, 3),
        "state_dir": None if driver.state_dir is None else str(driver.state_dir),
        "executors": {
            "registered": len(driver.executors),
            "live": live_executors(driver),
            "lost": driver.executors_lost,
            "heartbeat_timeout_s": driver.heartbeat_timeout,
            "list": [
                {"id": c.id, "pid": c.pid, "running": c.running, "suspended": list(c.suspended),
                 "ahead": list(c.ahead), "shipping": shipping.get(c.id, []),
                 "memory_bytes": c.memory, "doorbell": c.ringer is not None}
                for c in driver.executors.values()
            ],
        },
        "jobs": jobs,
        "tasks": {f"{state}/{kind}": n for (state, kind), n in sorted(driver.table.counts.items())},
        "preemption": {
            "send_to_start_us": micros(driver.preempt_latency),
            "arrival_to_start_us": micros(driver.preempt_local),
            "slowest": driver.preempt_slowest.items(),
            "rehearsals": 0 if driver.rehearsal is None else driver.rehearsal.runs,
            "forewarnings": driver.forewarnings,
            "taken": dict(driver.suspended_via),
        },
        "wasted_task_seconds": driver.wasted_seconds,
        "reruns": driver.reruns,
        "tasks_sent_ahead": driver.sent_ahead,
        "auth_failures": driver.auth_failures,
        "wire_errors": driver.wire_errors,
        "ingest_rejected": driver.rejected,
        "config_problems": driver.config_problems,
        "warnings": [w for w in (j.get("warning") for j in jobs.values()) if w],
        "shared_state": {name: version for name, (version, _) in driver.states.items()},
    }


def lag_of(reported: dict[int, int], lanes: dict[int, Any],
           source_reports: bool = False) -> dict[str, int]:
    """Per partition, what waits: what the source reports it has not read out yet (a Kafka
    topic's records past those it emitted; none for HTTP ingest or files) plus what the runtime
    accepted and has not handed on. The two never overlap, and both are backlog for the
    operator's autoscaling: a consumer that prefetched a whole backlog leaves it in the second.
    A source that reports lag but has not yet (a driver just started, its consumer not yet
    assigned) gives none: a zero there would read as "drained" to the autoscaler."""
    if source_reports and not reported:
        return {}
    return {str(p): reported.get(p, 0) + (lanes[p].tracker.unreleased if p in lanes else 0)
            for p in sorted(set(reported) | set(lanes))}
