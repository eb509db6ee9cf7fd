"""The Helm chart rendered by a real helm, and the alert rules run through promtool."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from neptune_operator import dashboard

from .op_helpers import restricted_violations

pytestmark = pytest.mark.chart
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "neptune"
ALL_ON = ["--set", "monitoring.serviceMonitor.enabled=true",
          "--set", "monitoring.podMonitor.enabled=true",
          "--set", "monitoring.prometheusRule.enabled=true"]


def tool(name: str) -> str:
    for d in os.environ.get("NEPTUNE_K8S_BIN", "").split(os.pathsep):
        if d and (Path(d) / name).is_file():
            return str(Path(d) / name)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found on PATH or in NEPTUNE_K8S_BIN "
                    "(helm: make k8s-build, see e2e/README.md; promtool: "
                    "apt-get install -y prometheus)", pytrace=False)
    return found


def template(*args: str) -> list[dict[str, Any]]:
    proc = subprocess.run([tool("helm"), "template", "t", str(CHART), "--namespace", "neptune",
                           "--kube-version", "1.34.0", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def test_lint() -> None:
    proc = subprocess.run([tool("helm"), "lint", str(CHART), "--kube-version", "1.34.0",
                           *ALL_ON], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_default_render() -> None:
    docs = template()
    assert kinds(docs) == sorted(["ClusterRole", "ClusterRole", "ClusterRoleBinding",
                                  "ClusterRoleBinding", "ConfigMap", "Deployment",
                                  "PriorityClass", "PriorityClass", "PriorityClass",
                                  "PriorityClass", "Service", "ServiceAccount"])
    dep = next(d for d in docs if d["kind"] == "Deployment")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["containers"][0]["image"] == "neptune:dev"
    # App NetworkPolicies admit the operator by this label.
    assert dep["spec"]["template"]["metadata"]["labels"][
        "app.kubernetes.io/name"] == "neptune-operator"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    # neptunectl's parser takes no options after "operator": settings come from env.
    assert pod["containers"][0]["args"] == ["--log-level", "INFO", "operator"]
    assert env["NEPTUNE_OPERATOR_LIVENESS"] == "http://0.0.0.0:8080/healthz"
    assert env["NEPTUNE_PRIORITY_CLASSES"] == (
        '{"neptune-critical":900,"neptune-high":500,"neptune-low":0,"neptune-normal":100}')
    # above every app class: app pods filling a node must not preempt the operator
    classes = {d["metadata"]["name"]: d["value"] for d in docs if d["kind"] == "PriorityClass"}
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert max(classes.values()) < 2_000_000_000  # system-cluster-critical's value
    dep = next(d for d in template("--set", "operator.priorityClassName=")
               if d["kind"] == "Deployment")
    assert "priorityClassName" not in dep["spec"]["template"]["spec"]


def test_all_toggles_on() -> None:
    docs = template(*ALL_ON)
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        assert kind in kinds(docs)
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"NeptuneSLOBurnFast", "NeptuneSuspensionLatencyHigh", "NeptuneExecutorsMissing",
            "NeptuneOperatorErrors"} <= alerts


def test_namespaced_rbac() -> None:
    docs = template("--set", "operator.watchNamespaces={team-a,team-b}")
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    cluster_roles = [d for d in docs if d["kind"] == "ClusterRole"]
    # Only discovery stays cluster-wide, and it is read-only.
    (discovery,) = cluster_roles
    verbs = {v for r in discovery["rules"] for v in r["verbs"]}
    assert verbs == {"list", "watch"}
    dep = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]
           ["env"]}
    assert env["NEPTUNE_WATCH_NAMESPACES"] == "team-a,team-b"


def test_rbac_grants_no_delete_and_no_wildcards() -> None:
    for doc in template():
        for rule in doc.get("rules", []) if doc["kind"] in ("ClusterRole", "Role") else []:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            assert "delete" not in rule["verbs"]  # children go by garbage collection


def test_dashboard_configmap_matches_generator() -> None:
    import json
    cm = next(d for d in template() if d["kind"] == "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(cm["data"]["neptune.json"])
    assert board == dashboard.build()
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    assert exprs == dashboard.queries()


def test_values_schema_rejects_bad_values() -> None:
    proc = subprocess.run([tool("helm"), "template", "t", str(CHART), "--kube-version", "1.34.0",
                           "--set", "image.pullPolicy=Sometimes"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "pullPolicy" in proc.stderr


def test_promtool_rules() -> None:
    promtool = tool("promtool")
    check = subprocess.run([promtool, "check", "rules", str(CHART / "files" / "rules.yaml")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules",
                           str(Path(__file__).parent / "promtool" / "neptune_rules_test.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert test.returncode == 0, test.stdout + test.stderr


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    # Grafana's variables substituted as Grafana would; promtool then parses every query.
    def concrete(expr: str) -> str:
        return expr.replace("$__rate_interval", "1m").replace("$namespace", ".*")

    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"neptune:dashboard_query_{i}", "expr": concrete(q)}
        for i, q in enumerate(dashboard.queries())]}]}
    path = tmp_path / "dashboard_rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    proc = subprocess.run([tool("promtool"), "check", "rules", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(dashboard.queries())} rules found" in proc.stdout
