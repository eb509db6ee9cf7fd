"""examples/clickstream.py: its sessions equal plain Python's over the same synthetic clicks,
and its manifest names the app's jobs as the app declares them."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from neptune_runtime.app import StreamJob, TaskContext
from neptune_runtime.dataflow import RoutedSink
from neptune_runtime.jobconfig import apply_job_settings
from neptune_runtime.keyed import PartitionState
from neptune_runtime.loader import load_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("EXAMPLE_CLICKSTREAM", str(tmp_path / "out.jsonl"))
    monkeypatch.setenv("EXAMPLE_LATE_CLICKS", str(tmp_path / "late.jsonl"))
    load_app(str(ROOT / "examples" / "clickstream.py"))
    return sys.modules["neptune_app_clickstream"]


def clicks(module: Any, partition: int, count: int) -> list[dict[str, Any]]:
    """What sources.Synthetic gives the partition (its rng seeded as the source seeds it)."""
    rng = random.Random(11 * 1_000_003 + partition)
    return [module.make_click(partition, n, rng) for n in range(count)]


def reference_sessions(events: list[dict[str, Any]], gap: float, grace: float
                       ) -> list[tuple[str, float, float, int, int]]:
    high: float | None = None
    kept = []
    for e in events:
        if high is None or e["ts"] >= high - grace:
            kept.append(e)
            high = e["ts"] if high is None else max(high, e["ts"])
    assert high is not None
    out = []
    for user in {e["user"] for e in kept}:
        times = sorted((e["ts"], e["amount"]) for e in kept if e["user"] == user)
        sessions: list[list[Any]] = []
        for t, amount in times:
            if sessions and t < sessions[-1][1]:
                sessions[-1][1] = max(sessions[-1][1], t + gap)
                sessions[-1][2] += 1
                sessions[-1][3] += amount
            else:
                sessions.append([t, t + gap, 1, amount])
        out += [(user, s, e, n, r) for s, e, n, r in sessions if e <= high - grace]
    return sorted(out)


def test_the_example_s_sessions_equal_plain_python(example: Any) -> None:
    job = example.app.job("clicks")
    assert isinstance(job, StreamJob) and job.keyed and job.batchable
    assert isinstance(job.sink, RoutedSink)
    events = clicks(example, 0, 3000)
    state = PartitionState()
    outputs: list[Any] = []
    for start in range(0, len(events), 250):
        task = state.begin()
        outputs += job.task(TaskContext("t", "clicks", 0, 0, 0, {}, keyed=task),
                            iter(events[start:start + 250])) or []
        task.changes()
        task.commit()
    sessions = [v for route, v in outputs if v.get("kind") == "session"]
    views = [v for route, v in outputs if v.get("kind") == "page_views"]
    late = [v for route, v in outputs if "watermark" in v]
    got = sorted((s["user"], s["start"], s["start"] + s["seconds"] + example.GAP, s["clicks"],
                  s["revenue"]) for s in sessions)
    expected = reference_sessions(events, example.GAP, 5)
    assert [g[:2] + g[3:] for g in got] == [e[:2] + e[3:] for e in expected]
    assert all(abs(g[2] - e[2]) < 1e-6 for g, e in zip(got, expected, strict=True))
    assert len(sessions) > 50 and views and late
    assert all(set(s["pages"]) <= set(example.PAGES) for s in sessions)
    assert sum(v["views"] for v in views) <= len(events)


def test_the_manifest_names_the_app_and_its_jobs_as_declared(example: Any) -> None:
    manifest = yaml.safe_load((ROOT / "examples" / "clickstream.yaml").read_text())
    assert manifest["kind"] == "ContinuousApplication"
    assert manifest["metadata"]["name"] == example.app.name
    jobs = {j["name"]: {k: v for k, v in j.items() if k != "name"}
            for j in manifest["spec"]["jobs"]}
    assert set(jobs) == set(example.app.jobs)
    assert apply_job_settings(example.app, {"jobs": jobs}) == []
    assert "storage" in manifest["spec"]["driver"], "keyed state wants the driver's volume"
