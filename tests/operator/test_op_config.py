"""config, appspec and dashboard: small pure pieces the handlers rely on."""

from __future__ import annotations

from typing import Any

import pytest

from neptune_operator import config, dashboard
from neptune_operator.appspec import app_spec, slo_seconds
from neptune_operator.ranking import DEFAULT_CLASSES, PriorityClassSpec


def test_config_defaults() -> None:
    cfg = config.from_env({})
    assert cfg.classes == DEFAULT_CLASSES
    assert cfg.namespaces == ()
    assert cfg.feedback.max_boost == 2
    assert cfg.driver_status_url.format(name="a", namespace="b") == (
        "http://a-driver.b.svc:8080/status")


def test_config_from_env() -> None:
    cfg = config.from_env({
        "NEPTUNE_PRIORITY_CLASSES": '{"lo": 0, "hi": 10}',
        "NEPTUNE_WATCH_NAMESPACES": "a,b",
        "NEPTUNE_FEEDBACK_MAX_BOOST": "5",
        "NEPTUNE_STATUS_INTERVAL": "2.5",
    })
    assert cfg.classes == (PriorityClassSpec("lo", 0), PriorityClassSpec("hi", 10))
    assert cfg.namespaces == ("a", "b")
    assert cfg.feedback.max_boost == 5
    assert cfg.status_interval_s == 2.5


@pytest.mark.parametrize("raw", ["[]", "{}", '"x"'])
def test_config_rejects_bad_classes(raw: str) -> None:
    with pytest.raises(ValueError):
        config.from_env({"NEPTUNE_PRIORITY_CLASSES": raw})


@pytest.mark.parametrize(("value", "seconds"), [
    ("50ms", 0.05), ("250us", 0.00025), ("1.5s", 1.5), ("2m", 120.0), (None, None),
    ("bogus", None), ("0ms", None),
])
def test_slo_seconds(value: str | None, seconds: float | None) -> None:
    assert slo_seconds(value) == seconds


def test_app_spec(capp: dict[str, Any]) -> None:
    spec = app_spec("team-a", "fraud", capp["spec"], {"assignedPriority": {"boost": 2}})
    assert spec.key == ("team-a", "fraud")
    assert spec.boost == 2
    assert spec.effective_priority == 300
    assert [(j.name, j.kind, j.slo_seconds) for j in spec.jobs] == [
        ("score", "stream", 0.05), ("train", "batch", None)]
    assert app_spec("n", "x", capp["spec"], None).boost == 0


def test_dashboard_covers_the_issue_panels() -> None:
    titles = [p.title for p in dashboard.PANELS]
    for needle in ("Stream latency", "Suspension latency", "Queue delay", "Suspensions per",
                   "Tasks by state", "Batch throughput", "Wasted work", "Executors ready",
                   "Operator reconciles"):
        assert any(needle in t for t in titles), needle
    board = dashboard.build()
    assert board["uid"] == "neptune-overview"
    assert len(board["panels"]) == len(dashboard.PANELS)
    assert all(t["datasource"]["uid"] == "${datasource}" for p in board["panels"]
               for t in [p])
    metrics = {"neptune_stream_latency_seconds", "neptune_task_suspension_latency_seconds",
               "neptune_task_queue_delay_seconds", "neptune_task_suspensions_total",
               "neptune_tasks", "neptune_batch_records_total", "neptune_wasted_task_seconds_total",
               "neptune_executors", "neptune_operator_reconciles_total"}
    joined = " ".join(dashboard.queries())
    for m in metrics:
        assert m in joined, m
