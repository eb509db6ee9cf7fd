"""status: child state + driver /status -> resource status."""

from __future__ import annotations

from typing import Any

import pytest

from neptune_operator import schema
from neptune_operator.status import (
    ChildState,
    as_merge_patch,
    build,
    slo_met,
    state_warning,
    unschedulable,
    worst_job,
)

NOW = "2026-01-01T00:00:00Z"


def driver_doc(p99_ms: float = 20.0, state: str = "running", samples: int = 100,
               phase: str = "Running") -> dict[str, Any]:
    return {
        "app": "fraud", "policy": "neptune", "phase": phase,
        "executors": {"registered": 6, "lost": 0, "list": []},
        "jobs": {
            "score": {"kind": "stream", "state": state, "error": None, "priority": 12,
                      "suspensions": 4, "failures": 0, "records": 1000,
                      "throughput_per_s": 50.5, "slo_ms": 50.0, "p50_ms": 5.0,
                      "p99_ms": p99_ms, "slo_attainment": 0.995, "samples": samples},
            "train": {"kind": "batch", "state": "running", "error": None, "priority": 0,
                      "suspensions": 4, "failures": 0, "records": 99999,
                      "throughput_per_s": 1234.0, "epoch": 2},
        },
    }


def make(capp: dict[str, Any], children: ChildState, doc: dict[str, Any] | None,
         error: str | None = None, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    return build(name="fraud", generation=3, spec=capp["spec"], children=children,
                 driver_doc=doc, driver_error=error, assigned=None, previous=previous, now=NOW)


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


READY = ChildState(driver_ready=True, executors_ready=3, executors_desired=3)


def test_running(capp: dict[str, Any]) -> None:
    st = make(capp, READY, driver_doc())
    assert st["phase"] == "Running"
    assert conditions(st) == {"Ready": "True", "Progressing": "False", "Degraded": "False",
                              "SLOMet": "True", "Suspended": "False"}
    assert st["observedGeneration"] == 3
    assert st["executors"] == {"desired": 3, "ready": 3, "registered": 6, "summary": "3/3"}
    assert st["jobs"]["score"]["p99Ms"] == 20.0
    assert st["jobs"]["score"]["throughputPerSecond"] == 50.5
    assert st["jobs"]["train"]["records"] == 99999
    assert "p99Ms" not in st["jobs"]["train"]
    assert st["worstJob"] == "score 20ms/50ms"
    assert st["selector"] == "neptune.dev/app=fraud,neptune.dev/role=executor"


def test_pending_while_pods_start(capp: dict[str, Any]) -> None:
    st = make(capp, ChildState(True, 1, 3), driver_doc())
    assert st["phase"] == "Pending"
    assert conditions(st)["Progressing"] == "True"
    assert conditions(st)["Ready"] == "False"


def degraded(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Degraded")


def test_executors_lost_after_all_were_ready_degrade_until_they_are_back(
        capp: dict[str, Any]) -> None:
    running = make(capp, READY, driver_doc())
    lost = make(capp, ChildState(True, 2, 3), driver_doc(), previous=running)
    assert lost["phase"] == "Degraded"
    assert (degraded(lost)["status"], degraded(lost)["reason"]) == ("True", "ExecutorsMissing")
    assert "executors ready 2/3" in degraded(lost)["message"]
    assert conditions(lost)["Progressing"] == "True"  # and their replacements are on the way
    still = make(capp, ChildState(True, 1, 3), driver_doc(), previous=lost)
    assert still["phase"] == "Degraded"
    assert degraded(still)["lastTransitionTime"] == degraded(lost)["lastTransitionTime"]
    back = make(capp, READY, driver_doc(), previous=still)
    assert back["phase"] == "Running" and degraded(back)["status"] == "False"


def test_executors_of_a_new_spec_or_a_first_start_are_pending_not_missing(
        capp: dict[str, Any]) -> None:
    running = make(capp, READY, driver_doc())
    scaled = build(name="fraud", generation=4, spec=capp["spec"],
                   children=ChildState(True, 3, 5), driver_doc=driver_doc(), driver_error=None,
                   assigned=None, previous=running, now=NOW)
    assert scaled["phase"] == "Pending" and degraded(scaled)["status"] == "False"
    starting = make(capp, ChildState(True, 1, 3), driver_doc(),
                    previous=make(capp, ChildState(True, 0, 3), driver_doc()))
    assert starting["phase"] == "Pending"
    assert make(capp, ChildState(True, 1, 3), driver_doc())["phase"] == "Pending"


def test_driver_unreachable(capp: dict[str, Any]) -> None:
    st = make(capp, READY, None, error="connection refused")
    assert st["phase"] == "Pending"
    assert st["driver"] == {"reachable": False, "message": "connection refused",
                            "storage": {"volume": "emptyDir"}}
    assert conditions(st)["SLOMet"] == "Unknown"


def test_failed_job_degrades(capp: dict[str, Any]) -> None:
    st = make(capp, READY, driver_doc(state="failed"))
    assert st["phase"] == "Degraded"
    deg = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert deg["status"] == "True"
    assert "score" in deg["message"]


def test_slo_missed(capp: dict[str, Any]) -> None:
    st = make(capp, READY, driver_doc(p99_ms=80.0))
    assert conditions(st)["SLOMet"] == "False"
    assert st["phase"] == "Running"


def test_suspended(capp: dict[str, Any]) -> None:
    capp["spec"]["suspend"] = True
    st = make(capp, ChildState(False, 0, 0), None)
    assert st["phase"] == "Suspended"
    assert conditions(st)["Suspended"] == "True"
    assert conditions(st)["Progressing"] == "False"
    assert st["executors"]["summary"] == "0/0"


@pytest.mark.parametrize(("doc", "expected"), [
    (None, None),
    (driver_doc(samples=0), None),
    (driver_doc(p99_ms=50.0), True),
    (driver_doc(p99_ms=50.1), False),
])
def test_slo_met(doc: dict[str, Any] | None, expected: bool | None) -> None:
    assert slo_met(doc) is expected


def test_worst_job_picks_highest_ratio() -> None:
    figures: dict[str, dict[str, Any]] = {
               "a": {"kind": "stream", "p99Ms": 40.0, "sloMs": 50.0},
               "b": {"kind": "stream", "p99Ms": 9.0, "sloMs": 10.0},
               "c": {"kind": "stream", "p99Ms": 90.0, "sloMs": 100.0},
               "t": {"kind": "batch"}}
    assert worst_job(figures) in ("b 9ms/10ms", "c 90ms/100ms")
    figures["b"]["p99Ms"] = 11.0
    assert worst_job(figures) == "b 11ms/10ms"
    assert worst_job({"t": {"kind": "batch"}}) is None


def test_transition_time_kept_until_status_flips(capp: dict[str, Any]) -> None:
    first = make(capp, READY, driver_doc())
    first["conditions"][0]["lastTransitionTime"] = "2025-01-01T00:00:00Z"
    again = make(capp, READY, driver_doc(), previous=first)
    assert again["conditions"][0]["lastTransitionTime"] == "2025-01-01T00:00:00Z"
    flipped = make(capp, ChildState(False, 0, 3), None, previous=first)
    assert flipped["conditions"][0]["lastTransitionTime"] == NOW


def _unknown_fields(value: Any, sch: dict[str, Any], path: str) -> list[str]:
    """Fields the API server would prune (not in the structural schema)."""
    if sch.get("x-kubernetes-preserve-unknown-fields"):
        return []
    out = []
    if isinstance(value, dict):
        props = sch.get("properties")
        extra = sch.get("additionalProperties")
        for k, v in value.items():
            if props is not None and k in props:
                out += _unknown_fields(v, props[k], f"{path}.{k}")
            elif isinstance(extra, dict):
                out += _unknown_fields(v, extra, f"{path}.{k}")
            else:
                out.append(f"{path}.{k}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _unknown_fields(item, sch.get("items", {}), f"{path}[{i}]")
    return out


def test_status_fits_the_crd_schema(capp: dict[str, Any]) -> None:
    capp["spec"]["driver"]["storage"] = {"size": "1Gi"}
    doc = driver_doc()
    doc["jobs"]["score"].update(uncommitted=3, offsets={"committed": 7, "resumed_from": 2,
                                                        "accepted": 10}, lag={"0": 5})
    st = build(name="fraud", generation=3, spec=capp["spec"],
               children=ChildState(True, 3, 3, claim_phase="Bound", claim_capacity="1Gi"),
               driver_doc=doc, driver_error="x",
               assigned={"priorityClassName": "neptune-normal", "rank": 0, "boost": 1,
                         "reason": "r", "since": NOW}, previous=None, now=NOW,
               autoscale={"drainSeconds": 1.5, "job": "score", "message": "m",
                          "lastScaleTime": NOW, "lastScale": "executors 2 -> 4: ..."})
    assert st["jobs"]["score"]["lag"] == 5 and st["autoscale"]["job"] == "score"
    st["kopf"] = {"progress": {"anything": 1}}
    assert _unknown_fields(st, schema.status_schema(), "status") == []
    st["bogus"] = 1
    assert _unknown_fields(st, schema.status_schema(), "status") == ["status.bogus"]


def test_merge_patch_nulls_what_disappeared() -> None:
    old = {"phase": "Running", "worstJob": "a 1ms/2ms", "kopf": {"progress": {}},
           "driver": {"reachable": False, "message": "refused"},
           "jobs": {"a": {"p99Ms": 1.0}, "gone": {"p99Ms": 3.0}},
           "conditions": [{"type": "Ready"}]}
    new = {"phase": "Running", "driver": {"reachable": True}, "jobs": {"a": {"p99Ms": 2.0}},
           "conditions": []}
    patch = as_merge_patch(old, new)
    assert patch == {"phase": "Running", "worstJob": None,
                     "driver": {"reachable": True, "message": None},
                     "jobs": {"a": {"p99Ms": 2.0}, "gone": None}, "conditions": []}
    assert "kopf" not in patch  # kopf's own progress is never touched


def test_storage_without_claim_is_an_empty_dir(capp: dict[str, Any]) -> None:
    st = make(capp, READY, driver_doc())
    assert st["driver"]["storage"] == {"volume": "emptyDir"}


def test_driver_state_claim(capp: dict[str, Any]) -> None:
    capp["spec"]["driver"]["storage"] = {"size": "1Gi"}
    bound = ChildState(True, 3, 3, claim_phase="Bound", claim_capacity="1Gi")
    st = make(capp, bound, driver_doc())
    assert st["phase"] == "Running"
    assert st["driver"]["storage"] == {"volume": "PersistentVolumeClaim",
                                       "claimName": "fraud-driver-state", "phase": "Bound",
                                       "capacity": "1Gi"}
    # Not provisioned yet: Progressing says why the driver does not start.
    st = make(capp, ChildState(False, 3, 3, claim_phase="Pending"), None)
    assert st["phase"] == "Pending"
    progressing = next(c for c in st["conditions"] if c["type"] == "Progressing")
    assert "driver state claim fraud-driver-state is Pending" in progressing["message"]
    assert make(capp, ChildState(False, 3, 3), None)["driver"]["storage"]["phase"] == "Missing"
    # A Lost claim does not heal by itself.
    st = make(capp, ChildState(False, 3, 3, claim_phase="Lost"), None)
    assert st["phase"] == "Degraded"
    degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "StorageLost"


def test_offsets_copied_from_the_driver(capp: dict[str, Any]) -> None:
    doc = driver_doc()
    doc["jobs"]["score"].update(uncommitted=0, offsets={"committed": 120, "resumed_from": 80,
                                                        "accepted": 120})
    st = make(capp, READY, doc)
    assert st["jobs"]["score"]["uncommitted"] == 0
    assert st["jobs"]["score"]["offsets"] == {"committed": "120", "resumedFrom": "80",
                                              "accepted": 120}
    doc["jobs"]["score"]["offsets"] = {"committed": None, "resumed_from": None, "accepted": 0}
    assert make(capp, READY, doc)["jobs"]["score"]["offsets"] == {"accepted": 0}
    assert "offsets" not in make(capp, READY, driver_doc())["jobs"]["score"]


def test_lag_is_summed_over_partitions(capp: dict[str, Any]) -> None:
    doc = driver_doc()
    doc["jobs"]["score"]["lag"] = {"0": 120, "1": 30, "2": 0}
    assert make(capp, READY, doc)["jobs"]["score"]["lag"] == 150
    doc["jobs"]["score"]["lag"] = {}  # a source that reports none (HTTP)
    assert "lag" not in make(capp, READY, doc)["jobs"]["score"]


def test_a_missing_kafka_secret_is_named(capp: dict[str, Any]) -> None:
    waiting = ChildState(False, 3, 3, missing_secrets=("kafka-creds",))
    st = make(capp, waiting, None)
    progressing = next(c for c in st["conditions"] if c["type"] == "Progressing")
    assert progressing["status"] == "True"
    assert ("the driver waits for Secret kafka-creds (spec.jobs[].source.kafka.secretRef), "
            "which does not exist") in progressing["message"]
    two = make(capp, ChildState(False, 3, 3, missing_secrets=("a", "b")), None)
    assert "waits for Secrets a, b" in next(
        c for c in two["conditions"] if c["type"] == "Progressing")["message"]
    assert "autoscale" not in st  # not autoscaled


def _pod(name: str, phase: str, *conditions: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"phase": phase, "conditions": list(conditions)}}


def test_unschedulable_pods_are_shown_with_the_schedulers_reason(capp: dict[str, Any]) -> None:
    no_room = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
               "message": "0/1 nodes are available: 1 Insufficient cpu."}
    pods = [_pod("demo-executor-1", "Pending", no_room),
            _pod("demo-executor-0", "Pending", no_room),
            _pod("demo-driver-x", "Running", {"type": "PodScheduled", "status": "True"}),
            # not yet looked at by the scheduler, or waiting for its image: not unschedulable
            _pod("demo-executor-2", "Pending"),
            _pod("demo-executor-3", "Pending", {"type": "PodScheduled", "status": "True"})]
    found = unschedulable(pods)
    assert found == (("demo-executor-0", no_room["message"]),
                     ("demo-executor-1", no_room["message"]))
    st = make(capp, ChildState(True, 1, 3, unschedulable=found), driver_doc())
    assert st["phase"] == "Pending"
    progressing = next(c for c in st["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "Unschedulable"
    assert ("2 pods cannot be scheduled (demo-executor-0: 0/1 nodes are available: 1 "
            "Insufficient cpu.)") in progressing["message"]
    assert st["unschedulable"] == {"count": 2, "pods": [
        {"pod": "demo-executor-0", "message": no_room["message"]},
        {"pod": "demo-executor-1", "message": no_room["message"]}]}
    placed = make(capp, ChildState(True, 3, 3), driver_doc())
    assert "unschedulable" not in placed
    assert next(c for c in placed["conditions"] if c["type"] == "Progressing")["reason"] == "Stable"


def test_last_state_without_storage_is_warned_about(capp: dict[str, Any]) -> None:
    spec = capp["spec"]
    message = state_warning(spec)  # upgradeMode absent: last-state, the default
    assert message is not None and "driver.storage is not set" in message
    assert "emptyDir" in message
    spec["upgradeMode"] = "stateless"
    assert state_warning(spec) is None  # nothing promised that an emptyDir breaks
    spec["upgradeMode"] = "last-state"
    spec["driver"]["storage"] = {"size": "1Gi"}
    assert state_warning(spec) is None


def test_a_job_s_coarse_records_warning_is_posted_once_until_it_goes_away() -> None:
    from neptune_operator.status import fresh_warnings

    doc: dict[str, Any] = {"jobs": {
        "train": {"warning": "job train: 30.1 ms between yield points"},
        "score": {"warning": None}}}
    posts, warned = fresh_warnings(doc, frozenset())
    assert posts == [("train", "job train: 30.1 ms between yield points")]
    doc["jobs"]["train"]["warning"] = "job train: 31.7 ms between yield points"
    assert fresh_warnings(doc, warned) == ([], warned), "a changed figure is not a new warning"
    assert fresh_warnings(None, warned) == ([], warned), "no answer is no evidence"
    _, cleared = fresh_warnings({"jobs": {"train": {}}}, warned)
    assert cleared == frozenset()
    assert fresh_warnings(doc, cleared)[0] == [("train", "job train: 31.7 ms between yield "
                                                        "points")]
