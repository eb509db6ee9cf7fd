"""cpushare: the executors' CPU request (their CPU weight on a shared node) by priority level."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from neptune_operator import cpushare
from neptune_operator.config import from_env
from neptune_operator.ranking import AppSpec, JobSpec

STREAM = (JobSpec("score", "stream", 0.05),)


def app(name: str, priority: int, boost: int = 0) -> AppSpec:
    return AppSpec("ns", name, priority, STREAM, boost)


def spec(requests: dict[str, Any] | None, limits: dict[str, Any] | None = None) -> dict[str, Any]:
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v is not None}
    return {"executors": {"replicas": 2, "resources": resources}}


@pytest.mark.parametrize(("quantity", "expected"), [
    ("250m", 250), ("0.5", 500), ("2", 2000), (1, 1000), (0.25, 250), ("1.5", 1500),
    ("", None), ("1Gi", None), ("abc", None), (None, None), (True, None),
])
def test_cpu_quantities_in_millicores(quantity: Any, expected: int | None) -> None:
    assert cpushare.milli(quantity) == expected


def test_levels_count_the_distinct_priorities_above() -> None:
    apps = [app("a", 500), app("b", 100), app("c", 100), app("d", 0, boost=1), app("e", 0)]
    # d: 0 + one feedback step (100) ties with b and c
    assert cpushare.levels(apps) == {("ns", "a"): 0, ("ns", "b"): 1, ("ns", "c"): 1,
                                     ("ns", "d"): 1, ("ns", "e"): 2}
    assert cpushare.levels([app("alone", 0)]) == {("ns", "alone"): 0}
    # a suspended app runs no pods: it lowers no one
    resting = dataclasses.replace(app("top", 900), suspended=True)
    assert cpushare.levels([resting, app("a", 500), app("e", 0)]) == {
        ("ns", "top"): 0, ("ns", "a"): 0, ("ns", "e"): 1}


def test_the_top_keeps_its_request_and_each_level_below_a_quarter() -> None:
    asked = spec({"cpu": "1", "memory": "128Mi"}, {"cpu": "2", "memory": "512Mi"})
    assert cpushare.plan(asked, 0) == cpushare.CpuPlan(1000, 1000, 0)
    assert cpushare.plan(asked, 1) == cpushare.CpuPlan(1000, 250, 1)
    assert cpushare.plan(asked, 2) == cpushare.CpuPlan(1000, 62, 2)
    assert cpushare.plan(asked, 9) == cpushare.CpuPlan(1000, cpushare.MIN_MILLI, 9)
    small = spec({"cpu": "5m"})
    assert cpushare.plan(small, 3) == cpushare.CpuPlan(5, 5, 3), "never above the spec"
    # switched off: the spec's request, to which lowered pods go back
    assert cpushare.plan(asked, 2, enabled=False) == cpushare.CpuPlan(1000, 1000, 0)
    assert "1/16 under contention" in (cpushare.plan(asked, 2) or cpushare.CpuPlan(0, 0, 0)
                                       ).describe()


def test_unmanaged_without_a_cpu_request_or_with_guaranteed_qos() -> None:
    assert cpushare.plan(spec(None), 1) is None
    assert cpushare.plan(spec({"memory": "128Mi"}), 1) is None
    assert cpushare.plan({"executors": {}}, 1) is None
    guaranteed = spec({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})
    assert cpushare.plan(guaranteed, 1) is None, "a resize may not change the pod's QoS"
    burstable = spec({"cpu": "1", "memory": "512Mi"}, {"cpu": "1", "memory": "1Gi"})
    assert cpushare.plan(burstable, 1) == cpushare.CpuPlan(1000, 250, 1)


def pod(name: str, cpu: str | None, role: str = "executor",
        deleting: bool = False) -> dict[str, Any]:
    requests = {} if cpu is None else {"cpu": cpu}
    meta: dict[str, Any] = {"name": name, "labels": {"neptune.dev/role": role}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"containers": [
        {"name": "sidecar", "resources": {"requests": {"cpu": "3"}}},
        {"name": "executor", "resources": {"requests": requests}}]}}


def test_the_pods_to_resize_are_the_live_executors_that_differ() -> None:
    pods = [pod("app-executor-0", "1"), pod("app-executor-1", "250m"),
            pod("app-executor-2", None), pod("app-executor-3", "1", deleting=True),
            pod("app-driver-x", "1", role="driver")]
    current = cpushare.executor_requests(pods)
    assert current == {"app-executor-0": 1000, "app-executor-1": 250, "app-executor-2": None}
    assert cpushare.to_resize(current, 250) == ["app-executor-0", "app-executor-2"]
    assert cpushare.to_resize(current, 1000) == ["app-executor-1", "app-executor-2"]


def test_the_switch_comes_from_the_environment() -> None:
    assert from_env({}).cpu_by_rank is True
    assert from_env({"NEPTUNE_CPU_BY_RANK": "false"}).cpu_by_rank is False
    with pytest.raises(ValueError, match="NEPTUNE_CPU_BY_RANK must be true or false"):
        from_env({"NEPTUNE_CPU_BY_RANK": "maybe"})
