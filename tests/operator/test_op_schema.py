"""schema: the CRD generated from one source; drift, descriptions, validation rules."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from neptune_operator import crdgen, schema

ROOT = Path(__file__).resolve().parents[2]


def test_generated_files_are_up_to_date() -> None:
    stale = crdgen.drifted(ROOT)
    assert stale == [], "run: python -m neptune_operator.crdgen"


def test_drift_is_detected(tmp_path: Path) -> None:
    assert crdgen.main(["--root", str(tmp_path)]) == 0
    assert crdgen.drifted(tmp_path) == []
    target = tmp_path / "helm/neptune/crds/continuousapplication.yaml"
    target.write_text(target.read_text().replace("capp", "cap"))
    assert crdgen.drifted(tmp_path) == [target]
    assert crdgen.main(["--root", str(tmp_path), "--check"]) == 1


def version() -> dict[str, Any]:
    (v,) = schema.crd()["spec"]["versions"]
    return v  # type: ignore[no-any-return]


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for k, v in (node.get("properties") or {}).items():
        yield from walk(v, f"{path}.{k}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}.*")


def test_every_spec_and_status_field_has_a_description() -> None:
    root = version()["schema"]["openAPIV3Schema"]
    missing = [p for p, n in walk(root["properties"]["spec"], "spec") if not n.get("description")]
    missing += [p for p, n in walk(root["properties"]["status"], "status")
                if not n.get("description")]
    assert missing == []


def test_names_and_subresources() -> None:
    crd = schema.crd()
    assert crd["metadata"]["name"] == "continuousapplications.neptune.dev"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "ContinuousApplication", "continuousapplications", ["capp"])
    assert crd["spec"]["scope"] == "Namespaced"
    sub = version()["subresources"]
    assert sub["status"] == {}
    assert sub["scale"]["specReplicasPath"] == ".spec.executors.replicas"
    assert sub["scale"]["statusReplicasPath"] == ".status.executors.ready"


def test_paths_used_by_scale_and_columns_exist_in_schema() -> None:
    root = version()["schema"]["openAPIV3Schema"]
    known = {p for p, _ in walk(root)}
    paths = [c["jsonPath"] for c in version()["additionalPrinterColumns"]
             if not c["jsonPath"].startswith(".metadata")]
    paths += [version()["subresources"]["scale"][k]
              for k in ("specReplicasPath", "statusReplicasPath", "labelSelectorPath")]
    for p in paths:
        assert p in known, p
    columns = [c["name"] for c in version()["additionalPrinterColumns"]]
    assert columns[:3] == ["Phase", "Executors", "Worst-P99/SLO"]
    assert columns[-1] == "Age"


def rules(node: dict[str, Any]) -> list[str]:
    return [r["message"] for r in node.get("x-kubernetes-validations", [])]


def test_validation_rules_present() -> None:
    spec = schema.spec_schema()
    job = spec["properties"]["jobs"]["items"]
    assert any("needs an slo" in m for m in rules(job))
    assert any("must not have an slo" in m for m in rules(job))
    assert any("positive duration" in m for m in rules(job["properties"]["slo"]))
    assert spec["properties"]["jobs"]["x-kubernetes-list-type"] == "map"
    assert any("unique" in m for m in rules(spec["properties"]["jobs"]))
    assert spec["properties"]["executors"]["properties"]["replicas"]["minimum"] == 1
    assert spec["properties"]["policy"]["enum"] == ["fifo", "fair", "kill", "neptune"]



def test_driver_storage_schema() -> None:
    spec = schema.spec_schema()
    storage = spec["properties"]["driver"]["properties"]["storage"]
    size = storage["properties"]["size"]
    assert size["default"] == "1Gi"
    assert size["pattern"] == schema.QUANTITY_PATTERN
    assert any("positive quantity" in m for m in rules(size))
    # Fixed after creation, by a transition rule on spec (catches adding and removing too).
    (fixed,) = [r for r in spec["x-kubernetes-validations"] if "oldSelf" in r["rule"]]
    assert "delete and re-create" in fixed["message"]
    assert fixed["fieldPath"] == ".driver.storage"


@pytest.mark.parametrize(("value", "ok"), [
    ("50ms", True), ("1.5s", True), ("250us", True), ("2m", True), ("0ms", True),
    ("50", False), ("-5ms", False), ("5h", False), ("ms", False), ("5 ms", False),
])
def test_duration_pattern(value: str, ok: bool) -> None:
    # "0ms" passes the pattern; the CEL rule below refuses it.
    assert bool(re.match(schema.DURATION_PATTERN, value)) is ok


@pytest.mark.parametrize(("value", "zero"), [
    ("0ms", True), ("0.0s", True), ("00us", True), ("0.5s", False), ("10ms", False),
])
def test_zero_duration_pattern(value: str, zero: bool) -> None:
    assert bool(re.match(schema.ZERO_DURATION, value)) is zero


@pytest.mark.parametrize(("value", "ok"), [
    ("500m", True), ("2", True), ("1.5", True), ("512Mi", True), ("1Gi", True), ("1e3", True),
    ("5E-3", True), ("1e999", True),
    ("abc", False), ("-1", False), ("1GB", False), ("", False), ("1 Gi", False),
    # A huge exponent times the API server out on the pod template.
    ("1e9999999999", False), ("1e1000", False),
])
def test_quantity_pattern(value: str, ok: bool) -> None:
    assert bool(re.match(schema.QUANTITY_PATTERN, value)) is ok


def test_committed_yaml_parses_to_the_schema() -> None:
    text = (ROOT / "crds" / "continuousapplication.yaml").read_text()
    assert yaml.safe_load(text) == schema.crd()


def test_resource_rules_present() -> None:
    for who in ("driver", "executors"):
        res = schema.spec_schema()["properties"][who]["properties"]["resources"]
        paths = {r.get("fieldPath") for r in res["x-kubernetes-validations"]}
        # One rule per native resource, each pointing at the limit that is too low.
        assert {".limits['cpu']", ".limits['memory']", ".limits['ephemeral-storage']"} <= paths
        for r in res["x-kubernetes-validations"]:
            if r.get("fieldPath", "").startswith(".limits["):
                assert "quantity(" in r["rule"] and "compareTo" in r["rule"]
                assert "must not be below" in r["messageExpression"]
        for side in ("requests", "limits"):
            q = res["properties"][side]
            assert any("resource names must be" in m for m in rules(q))
            assert any("whole numbers" in m for m in rules(q))
            assert q["additionalProperties"]["maxLength"] == schema.MAX_QUANTITY_LENGTH
            assert any("isQuantity" in r["rule"]
                       for r in q["additionalProperties"]["x-kubernetes-validations"])


def test_rules_for_what_children_would_refuse() -> None:
    spec = schema.spec_schema()["properties"]
    assert any("whitespace" in m for m in rules(spec["image"]))
    cm = spec["app"]["properties"]["configMap"]
    (key_rule,) = cm["x-kubernetes-validations"]
    assert key_rule["fieldPath"] == ".key"
    root = version()["schema"]["openAPIV3Schema"]
    messages = rules(root)
    assert any("at most 40 characters" in m for m in messages)
    assert any("DNS-1035" in m for m in messages)


@pytest.mark.parametrize(("value", "ok"), [
    ("fraud", True), ("a", True), ("fraud-2", True), ("f" * 40, True),
    ("2fraud", False), ("fraud.v2", False), ("Fraud", False), ("fraud-", False), ("-f", False),
    ("", False),
])
def test_dns_1035_label(value: str, ok: bool) -> None:
    assert bool(re.match(schema.DNS_1035_LABEL, value)) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("nvidia.com/gpu", True), ("example.com/foo_bar.1", True), ("a/b", True),
    ("gpu", False), ("nvidia.com/", False), ("/gpu", False), ("Nvidia.com/gpu", False),
    ("nvidia.com/-gpu", False), ("a/b/c", False),
])
def test_extended_resource_pattern(value: str, ok: bool) -> None:
    assert bool(re.match(schema.EXTENDED_RESOURCE, value)) is ok


def test_cel_regexes_need_no_backslash_escapes() -> None:
    # CEL string literals refuse \. and friends: every regex embedded in a rule uses [.].
    for r in (schema.EXTENDED_RESOURCE, schema.DNS_1035_LABEL, schema.ZERO_DURATION):
        assert "\\" not in r


def test_kafka_source_schema() -> None:
    job = schema.spec_schema()["properties"]["jobs"]
    source = job["items"]["properties"]["source"]
    assert set(source["properties"]) == {"http", "kafka"}
    assert any("exactly one of http and kafka" in m for m in rules(source))
    assert any("stream jobs only" in m for m in rules(job["items"]))
    assert any("same Kafka topic in the same group" in m for m in rules(job))
    kafka = source["properties"]["kafka"]
    assert kafka["required"] == ["bootstrapServers", "topic", "group"]
    assert set(kafka["properties"]) == {"bootstrapServers", "topic", "group", "secretRef"}
    # Credentials are named, never held: the Secret's name is all the spec has.
    assert set(kafka["properties"]["secretRef"]["properties"]) == {"name"}
    for field in ("bootstrapServers", "topic", "group"):
        assert rules(kafka["properties"][field]), field


@pytest.mark.parametrize(("value", "ok"), [
    ("kafka:9092", True), ("kafka-0.kafka.svc:9092,kafka-1.kafka.svc:9093", True),
    ("10.0.0.1:9092", True), ("[::1]:9092", True), ("[fd00::1]:65535", True), ("k:1", True),
    ("kafka", False), ("kafka:", False), ("kafka:0", False), ("kafka:65536", False),
    ("kafka:9092, other:9092", False), ("kafka:9092,", False), ("PLAINTEXT://kafka:9092", False),
    ("-kafka:9092", False), ("", False),
])
# [[] and []] are RE2's (the API server's) way to write a bracket without a backslash; Python
# warns that a future version may read them as nested sets, and matches them the same today.
@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")
def test_bootstrap_servers_pattern(value: str, ok: bool) -> None:
    assert bool(re.match(schema.KAFKA_BOOTSTRAP, value)) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("transactions", True), ("tx.in-2_a", True), ("a b", False), ("tx/in", False),
    ("tópico", False),
])
def test_kafka_topic_pattern(value: str, ok: bool) -> None:
    assert bool(re.match(schema.KAFKA_TOPIC, value)) is ok


def test_upgrade_mode_and_autoscale_schema() -> None:
    spec = schema.spec_schema()
    mode = spec["properties"]["upgradeMode"]
    assert (mode["enum"], mode["default"]) == (["last-state", "stateless"], "last-state")
    executors = spec["properties"]["executors"]
    assert "required" not in executors  # replicas may be left to the autoscaler
    assert any("required unless executors.autoscale" in m for m in rules(executors))
    auto = executors["properties"]["autoscale"]
    assert auto["required"] == ["maxReplicas"]
    assert {k: v.get("default") for k, v in auto["properties"].items()} == {
        "minReplicas": 1, "maxReplicas": None, "targetLagSeconds": 30,
        "scaleUpWindowSeconds": 60, "scaleDownWindowSeconds": 300}
    messages = rules(auto)
    assert any("minReplicas must not be above" in m for m in messages)
    assert any("scaleDownWindowSeconds must be at least" in m for m in messages)


def test_new_cel_regexes_need_no_backslash_escapes() -> None:
    for r in (schema.KAFKA_BOOTSTRAP, schema.KAFKA_TOPIC, schema.CEL_DNS_SUBDOMAIN):
        assert "\\" not in r
