"""Bring resources stored by an older CRD up to this one's schema. Pure: a JSON patch out.

Before sources were objects, `spec.jobs[].source` was a name ("http"). The API server keeps
such objects, but with this CRD every write to them fails (the CEL rules on sources cannot
read a string), kopf's own status and annotation patches too, so the operator patches them
once, when it first sees them:

- "http" becomes {"http": {}} (the same override);
- any other name is removed: only "http" was ever applied (a name equal to the module's own
  source kind changed nothing, another one was a config problem), so the module's source is
  what ran and still runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def source_patch(spec: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """A JSON patch (RFC 6902) that replaces every job's source name, or None if there is
    none. Each change is guarded by a `test` of the old value, so a patch computed from a stale
    copy fails instead of overwriting someone's newer edit."""
    ops: list[dict[str, Any]] = []
    for i, job in enumerate(spec.get("jobs") or []):
        source = job.get("source") if isinstance(job, Mapping) else None
        if not isinstance(source, str):
            continue
        path = f"/spec/jobs/{i}/source"
        ops.append({"op": "test", "path": path, "value": source})
        if source == "http":
            ops.append({"op": "replace", "path": path, "value": {"http": {}}})
        else:
            ops.append({"op": "remove", "path": path})
    return ops or None


def describe(ops: list[dict[str, Any]]) -> str:
    changes = []
    for test, change in zip(ops[::2], ops[1::2], strict=True):
        job = test["path"].split("/")[3]
        new = "{http: {}}" if change["op"] == "replace" else "removed (the module's own)"
        changes.append(f"jobs[{job}].source {test['value']!r} -> {new}")
    return "; ".join(changes)


def event(obj: Mapping[str, Any], message: str, now: str) -> dict[str, Any]:
    """The Normal Event SourceMigrated on `obj` (a core/v1 Event, as kopf writes them)."""
    meta = obj["metadata"]
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                           "name": meta["name"], "namespace": meta["namespace"],
                           "uid": meta.get("uid")},
        "type": "Normal", "reason": "SourceMigrated", "message": message[:1024],
        "source": {"component": "neptune-operator"},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }
