"""The example app (examples/online_learning.py, as e2e/tests/test_neptune.py deploys it) on
three nodes: the scheduler puts its driver and executors on different nodes, it runs with
nothing lost across them, and its NetworkPolicy, enforced by kube-router, keeps pods of other
namespaces off the driver's and executors' ports while it admits the monitoring namespace's
scrapes (a real Prometheus's among them). The tests run in file order and share one app."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.tests.kube import LABEL_APP, Kubectl, wait_until
from e2e.tests.test_neptune import APP, EXAMPLE_APP, IngestApp, capp, condition, pods, running
from e2e.tests_multinode.mn import (
    NODES,
    admit_control_plane,
    client_pod,
    namespace,
    node_of,
    pinned_pod,
    place_apart,
    probe,
    prometheus_api,
    prometheus_pod,
    scrape_health,
)

# The chart's operator.monitoringNamespace: the one namespace the app's policy lets scrape.
MONITORING_NS = "monitoring"
DRIVER_HTTP, EXECUTOR_PORT, METRICS_PORT = 8080, 7077, 9090
# Where the scheduler put the app's pods (role -> pod -> node), before anything moved them.
INITIAL_PLACEMENT: dict[str, dict[str, str]] = {}


@pytest.fixture(scope="module")
def app_ns(kubectl: Kubectl, release: str) -> Iterator[str]:
    name = namespace(kubectl, "mn-app")
    kubectl.run("-n", name, "create", "configmap", "app-source",
                f"--from-file=app.py={EXAMPLE_APP}")
    obj = capp(replicas=2)
    obj["spec"]["driver"].pop("storage")  # no volume provisioner on these nodes
    obj["metadata"]["namespace"] = name
    kubectl.apply(obj)
    wait_until("driver Running", lambda: running(kubectl, name, "driver", 1), timeout=180)
    wait_until("2 executors Running", lambda: running(kubectl, name, "executor", 2), timeout=180)
    wait_until("condition Ready=True", lambda: condition(kubectl, name, "Ready") == "True",
               timeout=180)
    INITIAL_PLACEMENT["driver"] = {p["metadata"]["name"]: node_of(p)
                                   for p in pods(kubectl, name, "driver")}
    INITIAL_PLACEMENT["executors"] = {p["metadata"]["name"]: node_of(p)
                                      for p in pods(kubectl, name, "executor")}
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def other_ns(kubectl: Kubectl, release: str) -> Iterator[str]:
    name = namespace(kubectl, "mn-other", restricted=False)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def monitoring_ns(kubectl: Kubectl, release: str) -> Iterator[str]:
    """The monitoring namespace (made, and deleted afterwards, when it does not exist)."""
    created = kubectl.run("get", "namespace", MONITORING_NS, check=False).returncode != 0
    if created:
        kubectl.apply({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": MONITORING_NS}})
    wait_until("default ServiceAccount", lambda: kubectl.run(
        "-n", MONITORING_NS, "get", "sa", "default", check=False).returncode == 0)
    yield MONITORING_NS
    if created:
        kubectl.run("delete", "namespace", MONITORING_NS, "--wait=false", check=False)
    else:
        kubectl.run("-n", MONITORING_NS, "delete", "pod", "scraper", "--wait=false",
                    check=False)


def _score(app: IngestApp) -> dict[str, Any]:
    status, doc = app.request("GET", "/status", app.tokens()["read"])
    assert status == 200, f"GET /status: {status} {doc}"
    return dict(doc["jobs"]["score"])


def test_scheduler_spreads_executors(kubectl: Kubectl, app_ns: str) -> None:
    """The executors on distinct nodes as the scheduler placed them, and by rule: a spread
    constraint (or anti-affinity) over kubernetes.io/hostname in the StatefulSet's pod
    template, without which the default scoring spreads them only most of the time."""
    executors = INITIAL_PLACEMENT["executors"]
    assert len(set(executors.values())) == len(executors), f"executors share a node: {executors}"
    spec = kubectl.json("-n", app_ns, "get", "statefulset", f"{APP}-executor")["spec"]
    pod = spec["template"]["spec"]
    keys = {c.get("topologyKey") for c in pod.get("topologySpreadConstraints") or []}
    affinity = (pod.get("affinity") or {}).get("podAntiAffinity") or {}
    for term in (affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or []) + [
            t.get("podAffinityTerm", {}) for t in
            affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []]:
        keys.add(term.get("topologyKey"))
    assert "kubernetes.io/hostname" in keys, (
        "the executors' pod template has no topologySpreadConstraint or podAntiAffinity over "
        f"kubernetes.io/hostname: their spread ({executors}) is the default scoring's luck")


def test_example_runs_across_nodes_with_nothing_lost(kubectl: Kubectl, app_ns: str) -> None:
    """The score job's events, generated by the driver on one node and scored by executors on
    the two others (moved there if the scheduler did not: place_apart): every event counted at
    one moment has its result a little later, with no dead letter, failure or sink failure."""
    placed = place_apart(kubectl, app_ns, APP, 2)
    assert len(set(placed.values())) == 3, placed
    wait_until("condition Ready=True", lambda: condition(kubectl, app_ns, "Ready") == "True",
               timeout=180)
    admit_control_plane(kubectl, app_ns, DRIVER_HTTP)
    app = IngestApp(kubectl, app_ns, APP, 2)
    first = wait_until("events scored", lambda: (s := _score(app)).get("results", 0) > 0 and s,
                       timeout=120)
    time.sleep(10)

    def caught_up() -> dict[str, Any] | None:
        now = _score(app)
        return now if now.get("results", 0) >= first["events"] else None

    later = wait_until(f"results for the {first['events']} events counted 10 s earlier",
                       caught_up, timeout=120)
    assert later["events"] > first["events"], f"no new events: {first} -> {later}"
    for key in ("dead_letters", "failures", "sink_failures"):
        assert not later.get(key), f"score job {key}: {later}"
    st = kubectl.json("-n", app_ns, "get", "capp", APP)["status"]
    assert st["executors"]["registered"] == 2, st["executors"]
    assert st["jobs"]["train"]["state"] != "failed", st["jobs"]


def _targets(kubectl: Kubectl, ns: str) -> dict[str, str]:
    (driver,) = pods(kubectl, ns, "driver")
    executor = pods(kubectl, ns, "executor")[0]
    d, e = driver["status"]["podIP"], executor["status"]["podIP"]
    return {"driver http": f"http://{d}:{DRIVER_HTTP}/metrics",
            "driver executor port": f"{d}:{EXECUTOR_PORT}",
            "executor metrics": f"http://{e}:{METRICS_PORT}/metrics"}


def test_policy_keeps_other_namespaces_off_the_app(kubectl: Kubectl, app_ns: str,
                                                   other_ns: str) -> None:
    policy = kubectl.json("-n", app_ns, "get", "networkpolicy", APP)
    assert policy["spec"]["podSelector"] == {"matchLabels": {LABEL_APP: APP}}, policy["spec"]
    (driver,) = pods(kubectl, app_ns, "driver")
    # The intruder sits on the driver's node: no cross-node routing in the way, only policy.
    client = client_pod(kubectl, other_ns, node_of(driver), "intruder")
    t = _targets(kubectl, app_ns)
    got = {
        "driver http": probe(kubectl, other_ns, client, "http", t["driver http"]),
        "driver executor port": probe(kubectl, other_ns, client, "tcp", t["driver executor port"]),
        "executor metrics": probe(kubectl, other_ns, client, "http", t["executor metrics"]),
    }
    assert all(v.startswith("ERR") for v in got.values()), (
        f"a pod of namespace {other_ns} reached the app's ports: {got}")
    # The same pod reaches a server of its own namespace on the same node and port: what
    # stopped it is the policy, not the network.
    peer = pinned_pod(kubectl, other_ns, "peer", node_of(driver),
                      ["python3", "-m", "http.server", str(DRIVER_HTTP)])
    peer_url = f"http://{peer['status']['podIP']}:{DRIVER_HTTP}/"
    assert wait_until("the peer's server", lambda: probe(
        kubectl, other_ns, client, "http", peer_url) == "HTTP 200", timeout=30)


def test_policy_admits_the_monitoring_namespace(kubectl: Kubectl, app_ns: str,
                                                monitoring_ns: str) -> None:
    policy = kubectl.json("-n", app_ns, "get", "networkpolicy", APP)
    admitted = [r for r in policy["spec"]["ingress"] if any(
        (f.get("namespaceSelector") or {}).get("matchLabels", {}).get(
            "kubernetes.io/metadata.name") == monitoring_ns and "podSelector" not in f
        for f in r.get("from", []))]
    assert admitted, f"the policy admits nothing from {monitoring_ns}: {policy['spec']}"
    ports = {p["port"] for r in admitted for p in r.get("ports", [])}
    assert ports == {DRIVER_HTTP, METRICS_PORT}, ports
    (driver,) = pods(kubectl, app_ns, "driver")
    client = client_pod(kubectl, monitoring_ns, node_of(driver), "scraper")
    t = _targets(kubectl, app_ns)
    assert probe(kubectl, monitoring_ns, client, "http", t["driver http"]) == "HTTP 200"
    assert probe(kubectl, monitoring_ns, client, "http", t["executor metrics"]) == "HTTP 200"
    # Scrapes only: the executors' port of the driver stays closed to monitoring too.
    assert probe(kubectl, monitoring_ns, client, "tcp", t["driver executor port"]).startswith(
        "ERR"), "the monitoring namespace reached the driver's executor port"


def test_a_prometheus_of_the_monitoring_namespace_scrapes_the_app_another_s_cannot(
        kubectl: Kubectl, app_ns: str, monitoring_ns: str, other_ns: str) -> None:
    """Two real Prometheus servers, alike but for their namespace, on a node of their own where
    one is free: the monitoring namespace's scrapes the driver and an executor (their
    neptune_* series arrive), the other's scrapes fail, by the policy alone."""
    (driver,) = pods(kubectl, app_ns, "driver")
    executor = sorted(pods(kubectl, app_ns, "executor"), key=lambda p: p["metadata"]["name"])[0]
    used = {node_of(driver), node_of(executor)}
    node = next((n for n in NODES if n not in used), node_of(driver))
    targets = {"driver": f"{driver['status']['podIP']}:{DRIVER_HTTP}",
               "executor": f"{executor['status']['podIP']}:{METRICS_PORT}"}
    name = "e2e-prometheus"
    try:
        for ns in (monitoring_ns, other_ns):
            prometheus_pod(kubectl, ns, node, name, targets)

        def settled(ns: str) -> dict[str, tuple[str, str]] | None:
            health = scrape_health(kubectl, ns, name)
            return health if set(health) == set(targets) and all(
                h != "unknown" for h, _ in health.values()) else None

        admitted = wait_until(f"{monitoring_ns}'s Prometheus scraping both", lambda: (
            h := settled(monitoring_ns)) and all(v == "up" for v, _ in h.values()) and h,
            timeout=120, interval=2)
        series = prometheus_api(kubectl, monitoring_ns, name,
                                "query?query=count+by+(job)+({__name__=~%22neptune_.%2B%22})")
        got = {s["metric"]["job"]: int(s["value"][1]) for s in series["result"]}
        assert set(got) == set(targets) and all(got.values()), (admitted, got)
        refused = wait_until(f"{other_ns}'s Prometheus having tried", lambda: settled(other_ns),
                             timeout=60, interval=2)
        assert all(h == "down" for h, _ in refused.values()), (
            f"a Prometheus of namespace {other_ns} scraped the app: {refused}")
    finally:
        for ns in (monitoring_ns, other_ns):
            kubectl.run("-n", ns, "delete", "pod,configmap", name, "--wait=false", check=False)
