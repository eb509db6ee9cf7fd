"""A job's live figures and its state, as /status and the live view show them (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..stats import Rate, Window

# running: normal; degraded: its sink fails (delivery retried, nothing committed, nothing lost);
# failed: a task failed for good under on_error="fail" (or a batch job's); done: max_epochs ran
JOB_STATES = ("running", "degraded", "failed", "done")


@dataclass
class JobStats:
    latency: Window = field(default_factory=Window)
    # per finished task, the longest time between two of its yield points (seconds)
    yield_gaps: Window = field(default_factory=Window)
    rate: Rate = field(default_factory=Rate)
    events: int = 0
    results: int = 0
    records: int = 0
    slo_met: int = 0
    slo_total: int = 0
    suspensions: int = 0
    failures: int = 0
    tasks_finished: int = 0
    dead_letters: int = 0
    sink_failures: int = 0
    state: str = "running"
    error: str | None = None
    epoch: int = 0
    source_problem: str | None = None  # the source cannot read now (a broker away)
    lag: dict[int, int] = field(default_factory=dict)  # per source partition, records waiting

    def fail(self, error: str) -> None:
        self.state, self.error = "failed", error

    def degrade(self, error: str) -> None:
        if self.state == "running":
            self.state = "degraded"
        if self.state == "degraded":
            self.error = error

    def recover(self) -> None:
        if self.state == "degraded":
            self.state, self.error = "running", None

    @property
    def shown_state(self) -> str:
        """The state /status shows: a source that cannot read degrades a running job too."""
        return "degraded" if self.state == "running" and self.source_problem else self.state

    @property
    def shown_error(self) -> str | None:
        return self.error or (self.source_problem if self.state == "running" else None)

    @property
    def takes_events(self) -> bool:
        return self.state != "failed"

    def reset(self) -> None:
        """Forget the live windows and counts (benchmarks call this after their warm-up)."""
        self.latency.clear()
        self.yield_gaps.clear()
        self.rate.clear()
        self.records = self.events = self.results = 0
        self.slo_met = self.slo_total = self.suspensions = 0
        self.tasks_finished = self.failures = 0
