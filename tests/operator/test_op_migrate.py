"""migrate: a spec stored by an older CRD (a job's source a name) -> the JSON patch that
brings it to this CRD's schema (applied to a real API server in test_integration_crd.py and
by the operator in test_integration_kafka.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from neptune_operator.migrate import describe, event, source_patch


def apply(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """The three RFC 6902 operations the migration uses."""
    out = copy.deepcopy(obj)
    for op in ops:
        *parents, leaf = op["path"].strip("/").split("/")
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "test" and node[leaf] != op["value"]:
            raise ValueError(f"test failed at {op['path']}")
        if op["op"] == "replace":
            node[leaf] = op["value"]
        elif op["op"] == "remove":
            del node[leaf]
    return out


def test_source_names_become_objects(capp: dict[str, Any]) -> None:
    capp["spec"]["jobs"][0]["source"] = "http"
    capp["spec"]["jobs"].append({"name": "other", "kind": "stream", "slo": "1s",
                                 "source": "synthetic"})
    capp["spec"]["jobs"].append({"name": "third", "kind": "stream", "slo": "1s",
                                 "source": {"http": {}}})
    ops = source_patch(capp["spec"])
    assert ops is not None
    migrated = apply(capp, ops)["spec"]["jobs"]
    assert migrated[0]["source"] == {"http": {}}
    assert "source" not in migrated[2]  # never applied: the module's source ran, and runs
    assert migrated[3]["source"] == {"http": {}}  # already an object: untouched
    assert migrated[1] == capp["spec"]["jobs"][1]
    assert describe(ops) == ("jobs[0].source 'http' -> {http: {}}; jobs[2].source 'synthetic'"
                             " -> removed (the module's own)")


def test_nothing_to_migrate(capp: dict[str, Any]) -> None:
    assert source_patch(capp["spec"]) is None
    assert source_patch({}) is None


def test_a_stale_copy_does_not_overwrite_a_newer_edit(capp: dict[str, Any]) -> None:
    capp["spec"]["jobs"][0]["source"] = "http"
    ops = source_patch(capp["spec"])
    assert ops is not None
    newer = copy.deepcopy(capp)
    newer["spec"]["jobs"][0]["source"] = "kafka"
    with pytest.raises(ValueError, match="test failed"):
        apply(newer, ops)


def test_the_event_names_the_object(capp: dict[str, Any]) -> None:
    ev = event(capp, "jobs[0].source 'http' -> {http: {}}", "2026-01-01T00:00:00Z")
    assert ev["involvedObject"] == {"apiVersion": "neptune.dev/v1alpha1",
                                    "kind": "ContinuousApplication", "name": "fraud",
                                    "namespace": "team-a", "uid": "1234-abcd"}
    assert (ev["type"], ev["reason"]) == ("Normal", "SourceMigrated")
    assert ev["metadata"] == {"generateName": "fraud.", "namespace": "team-a"}
