"""CPU between applications on a node, by rank.

Under contention the kernel divides a node's CPU between pods by their cgroup CPU weight
(cpu.shares on cgroup v1, cpu.weight on v2), which the kubelet derives from the containers' CPU
requests. PriorityClasses only decide who is scheduled first and who is evicted: without more,
a low-priority app's busy executors get as much of a shared node's CPU as a high one's, and the
cluster-wide ranking decides nothing there. So the operator lowers the executors' CPU requests
of every app below the top effective priority (spec.priority plus its feedback boost), in place
(the pods' resize subresource: no restart), by CPU_STEP for each distinct level below the top.

- Only ever lowered, never above the spec: a resize always fits its node.
- Weights are work-conserving: a lowered app still uses every idle core, up to its limit; it
  yields only where a higher app wants the CPU.
- The cost: the scheduler counts the lowered requests, so it may place more pods on that node.
  When the app rises again and the node has no room left, the kubelet defers the resize until
  it has.
- Executors whose QoS would change (requests equal to limits: Guaranteed) are left alone, as
  are executors with no CPU request (their weight is already the minimum).

Pure: the apps and a spec in, the request wanted out; handlers.refresh writes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .constants import EXECUTOR_CONTAINER, LABEL_ROLE
from .ranking import AppSpec

# Each distinct effective priority below the top divides the CPU weight by this.
CPU_STEP = 4
# The least CPU request (millicores) a lowered executor keeps.
MIN_MILLI = 10

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m?)$")


def milli(quantity: Any) -> int | None:
    """A CPU quantity ("250m", "0.5", "2", 2) in millicores; None if it is not one."""
    if isinstance(quantity, bool):
        return None
    if isinstance(quantity, int | float):
        return round(quantity * 1000)
    found = _QUANTITY.match(str(quantity).strip())
    if found is None:
        return None
    value = float(found.group(1))
    return round(value if found.group(2) else value * 1000)


def levels(apps: Iterable[AppSpec]) -> dict[tuple[str, str], int]:
    """Each app's level: how many distinct effective priorities of apps not suspended are
    above its own (a suspended app has no pods: it takes no CPU, so it lowers no one)."""
    apps = list(apps)
    distinct = {a.effective_priority for a in apps if not a.suspended}
    return {a.key: sum(1 for p in distinct if p > a.effective_priority) for a in apps}


@dataclass(frozen=True)
class CpuPlan:
    spec_milli: int  # the executors' CPU request in the spec
    milli: int  # the request wanted now
    level: int

    def describe(self) -> str:
        if self.milli == self.spec_milli:
            return f"{self.milli}m as in the spec (top priority level)"
        return (f"{self.milli}m of the spec's {self.spec_milli}m: {self.level} priority "
                f"level{'s' if self.level > 1 else ''} below the top, CPU weight 1/"
                f"{CPU_STEP ** self.level} under contention")


def plan(spec: Mapping[str, Any], level: int, enabled: bool = True) -> CpuPlan | None:
    """The executors' CPU request for an app at `level`; None: not managed (no CPU request in
    the spec, or requests equal to limits, whose QoS a resize may not change). Disabled, the
    spec's own request (what a lowered pod goes back to)."""
    resources = (spec.get("executors") or {}).get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    asked = milli(requests.get("cpu"))
    if asked is None or asked <= 0:
        return None
    if all(k in limits and limits[k] == requests.get(k) for k in ("cpu", "memory")):
        return None
    if not enabled:
        return CpuPlan(asked, asked, 0)
    wanted = max(asked // CPU_STEP ** level, min(asked, MIN_MILLI))
    return CpuPlan(asked, wanted, level)


def executor_requests(pods: Iterable[Mapping[str, Any]]) -> dict[str, int | None]:
    """Each live executor pod's CPU request now (its executor container's, as resized)."""
    out: dict[str, int | None] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        if (meta.get("labels") or {}).get(LABEL_ROLE) != "executor" \
                or meta.get("deletionTimestamp"):
            continue
        containers = (pod.get("spec") or {}).get("containers") or []
        container: Mapping[str, Any] = next(
            (c for c in containers if c.get("name") == EXECUTOR_CONTAINER), {})
        out[str(meta.get("name"))] = milli(
            ((container.get("resources") or {}).get("requests") or {}).get("cpu"))
    return out


def to_resize(current: Mapping[str, int | None], wanted: int) -> list[str]:
    """The pods (name -> their executor container's CPU request now) to resize to `wanted`."""
    return sorted(pod for pod, now in current.items() if now != wanted)
