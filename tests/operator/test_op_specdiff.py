"""specdiff: classify old-vs-new spec."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from neptune_operator.specdiff import classify

Mut = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mut:
    def mut(spec: dict[str, Any]) -> None:
        node = spec
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return mut


def _jobs(spec: dict[str, Any]) -> None:
    spec["jobs"][0]["slo"] = "20ms"


def _replicas_and_image(spec: dict[str, Any]) -> None:
    spec["executors"]["replicas"] = 9
    spec["image"] = "neptune:v2"


def _nothing(spec: dict[str, Any]) -> None:
    return None


CASES: list[tuple[str, Mut, str, tuple[str, ...]]] = [
    ("replicas only", _set("executors.replicas", 5), "scale", ("executors.replicas",)),
    ("image", _set("image", "neptune:v2"), "roll", ("image",)),
    ("executor resources", _set("executors.resources", {"requests": {"cpu": "2"}}), "roll",
     ("executors.resources",)),
    ("driver resources", _set("driver.resources", {"limits": {"memory": "2Gi"}}), "roll",
     ("driver.resources",)),
    ("slots", _set("executors.slotsPerPod", 4), "roll", ("executors.slotsPerPod",)),
    # Refused by the CRD's transition rule; without it the driver's volume would change.
    ("driver storage", _set("driver.storage", {"size": "2Gi"}), "roll", ("driver.storage",)),
    ("app source", _set("app", {"module": "other"}), "roll", ("app",)),
    ("executor node selector", _set("executors.nodeSelector", {"disk": "ssd"}), "roll",
     ("executors.nodeSelector",)),
    ("driver tolerations", _set("driver.tolerations", [{"operator": "Exists"}]), "roll",
     ("driver.tolerations",)),
    ("job settings", _jobs, "reload", ("jobs",)),
    ("policy", _set("policy", "fair"), "reload", ("policy",)),
    ("suspend", _set("suspend", True), "suspend", ("suspend",)),
    ("priority", _set("priority", 900), "reconfigure", ("priority",)),
    ("pod monitor", _set("monitoring.podMonitor", False), "reconfigure", ("monitoring",)),
    # upgradeMode says what the next upgrade does: no restart of its own.
    ("upgrade mode", _set("upgradeMode", "stateless"), "reconfigure", ("upgradeMode",)),
    ("upgrade mode default made explicit", _set("upgradeMode", "last-state"), "noop", ()),
    ("autoscale bounds", _set("executors.autoscale", {"maxReplicas": 8}), "reconfigure",
     ("executors.autoscale",)),
    ("kafka source", _set("jobs", [{"name": "score", "kind": "stream", "slo": "50ms",
                                    "source": {"kafka": {"bootstrapServers": "k:9092",
                                                         "topic": "t", "group": "g"}}}]),
     "reload", ("jobs",)),
    ("nothing", _nothing, "noop", ()),
    ("defaulted field made explicit", _set("imagePullPolicy", "IfNotPresent"), "noop", ()),
    ("most disruptive wins", _replicas_and_image, "roll", ("executors.replicas", "image")),
]


@pytest.mark.parametrize(("label", "mutate", "action", "fields"), CASES, ids=[c[0] for c in CASES])
def test_classify(capp: dict[str, Any], label: str, mutate: Mut, action: str,
                  fields: tuple[str, ...]) -> None:
    old = capp["spec"]
    new = copy.deepcopy(old)
    mutate(new)
    change = classify(old, new)
    assert change.action == action, label
    assert change.fields == tuple(sorted(fields))


def test_resume(capp: dict[str, Any]) -> None:
    old = copy.deepcopy(capp["spec"])
    old["suspend"] = True
    change = classify(old, capp["spec"])
    assert change.action == "resume"
    assert not change.restarts_pods


def test_all_actions_listed(capp: dict[str, Any]) -> None:
    new = copy.deepcopy(capp["spec"])
    new["executors"]["replicas"] = 1
    new["policy"] = "kill"
    new["priority"] = 1
    change = classify(capp["spec"], new)
    assert change.actions == ("reload", "scale", "reconfigure")
    assert change.restarts_pods


def test_new_resource(capp: dict[str, Any]) -> None:
    assert classify(None, capp["spec"]).action == "roll"
    capp["spec"]["suspend"] = True
    assert classify(None, capp["spec"]).action == "suspend"


def test_unknown_top_level_field_is_not_ignored(capp: dict[str, Any]) -> None:
    new = copy.deepcopy(capp["spec"])
    new["futureField"] = {"x": 1}
    change = classify(capp["spec"], new)
    assert change.action == "reconfigure"
    assert change.fields == ("futureField",)
