"""Classify a spec change by what it costs the running application (the Flink operator's idea).

    scale       only executors.replicas changed: the StatefulSet scales in place
    roll        image, pull policy, app source, resources, driver storage, slots or node
                placement (nodeSelector, tolerations): pods are replaced
    reload      job settings or policy: only the driver restarts
    reconfigure priority, monitoring, upgradeMode or executors.autoscale: no pod restarts
                (upgradeMode applies to the next upgrade; autoscale to the next status round)
    suspend     suspend became true: pods removed, resource kept
    resume      suspend became false: pods come back
    noop        nothing in the spec changed (metadata only)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Most disruptive first: the action taken is the first one that applies.
ORDER = ("suspend", "resume", "roll", "reload", "scale", "reconfigure", "noop")

# Spec paths (dotted) and the action a change in each one needs.
# driver.storage is fixed by the CRD (a transition rule); should it change anyway (a CRD
# without the rule), the driver's volume changes: the driver pod is replaced.
ROLL_PATHS = ("image", "imagePullPolicy", "app", "driver.resources", "driver.storage",
              "driver.nodeSelector", "driver.tolerations", "executors.resources",
              "executors.slotsPerPod", "executors.nodeSelector", "executors.tolerations")
RELOAD_PATHS = ("jobs", "policy")
SCALE_PATHS = ("executors.replicas",)
# upgradeMode says what the next upgrade does: the driver only reads it when it starts with
# another spec, so changing it alone restarts nothing (a restart of the same spec keeps state
# in either mode; see render.driver_revision).
RECONFIGURE_PATHS = ("priority", "monitoring", "upgradeMode", "executors.autoscale")

# Defaults the API server fills in: a field absent on one side and at its default on the other
# is not a change (old objects may predate a default).
DEFAULTS: dict[str, Any] = {"imagePullPolicy": "IfNotPresent", "executors.slotsPerPod": 1,
                            "policy": "neptune", "priority": 0, "suspend": False,
                            "upgradeMode": "last-state"}


@dataclass(frozen=True)
class Change:
    action: str  # one of ORDER
    actions: tuple[str, ...]  # every action some changed field needs, most disruptive first
    fields: tuple[str, ...]  # changed spec paths, sorted

    @property
    def restarts_pods(self) -> bool:
        return self.action in ("roll", "reload", "suspend")


def _get(spec: Mapping[str, Any] | None, path: str) -> Any:
    node: Any = spec or {}
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return DEFAULTS.get(path)
        node = node[part]
    return node


def _action_for(path: str) -> str:
    for action, paths in (("roll", ROLL_PATHS), ("reload", RELOAD_PATHS),
                          ("scale", SCALE_PATHS), ("reconfigure", RECONFIGURE_PATHS)):
        if path in paths:
            return action
    return "reconfigure"  # a field this version does not know: apply, restart nothing


def classify(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> Change:
    """old=None means the resource is new: that is a full roll-out."""
    if old is None:
        first = "suspend" if new.get("suspend") else "roll"
        return Change(first, (first,), ())
    changed = []
    for path in (*ROLL_PATHS, *RELOAD_PATHS, *SCALE_PATHS, *RECONFIGURE_PATHS, "suspend"):
        if _get(old, path) != _get(new, path):
            changed.append(path)
    # Top-level fields not listed above (from a newer CRD) still count as changes.
    known = {p.split(".")[0] for p in (*ROLL_PATHS, *RELOAD_PATHS, *SCALE_PATHS,
                                       *RECONFIGURE_PATHS, "suspend")}
    for key in sorted((set(old) | set(new)) - known):
        if old.get(key) != new.get(key):
            changed.append(key)
    actions: set[str] = set()
    for path in changed:
        if path == "suspend":
            actions.add("suspend" if _get(new, "suspend") else "resume")
        else:
            actions.add(_action_for(path))
    ordered = tuple(a for a in ORDER if a in actions)
    return Change(ordered[0] if ordered else "noop", ordered, tuple(sorted(changed)))
