"""A node lost under a running app: its kubelet and containerd stop (e2e/multinode.sh
stop-node; the pods' processes stay, as on a node cut off from the control plane). The node
goes NotReady, the operator's status shows the executors missing (Degraded), the pods are
rescheduled to the other nodes and no event POSTed before, during or after is lost."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from e2e.tests.kube import OPERATOR_NS, Kubectl, wait_until
from e2e.tests.test_neptune import IngestApp
from e2e.tests_multinode.mn import (
    NODES,
    admit_control_plane,
    multinode,
    namespace,
    node_of,
    nodes_ready,
    place_apart,
)

# The taint of Kubernetes' non-graceful node shutdown: an admin's word that the node is gone,
# after which the pod garbage collector deletes its pods (a StatefulSet's pod is otherwise
# never replaced while its old self cannot be confirmed dead).
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute"


def _capp_status(kubectl: Kubectl, app: IngestApp) -> dict[str, Any]:
    return dict(kubectl.json("-n", app.ns, "get", "capp", app.name).get("status") or {})


def _condition(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == ctype), {})


@dataclass
class Outage:
    """What the test saw of one node's loss."""

    victim: str = ""
    sent: int = 0
    missing: dict[str, Any] = field(default_factory=dict)  # status.executors, when short
    degraded: dict[str, Any] = field(default_factory=dict)  # condition Degraded, when True
    placed: list[dict[str, Any]] = field(default_factory=list)  # executors afterwards
    figures: dict[str, Any] = field(default_factory=dict)  # the job's, at the end


@pytest.fixture(scope="module")
def outage(kubectl: Kubectl, release: str) -> Iterator[Outage]:
    """One node lost under an HTTP-ingest app with two executors, in its own namespace: the
    node that holds an executor but not the driver (nor, if it can be, the operator) stops;
    events are POSTed before, while it is NotReady and after its executor is rescheduled. The
    node is started again (untainted) afterwards."""
    ns = namespace(kubectl, "mn-loss")
    seen = Outage()
    try:
        _lose_a_node(kubectl, release, ns, seen)
        yield seen
    finally:
        if seen.victim:
            kubectl.run("taint", "node", seen.victim, f"{OUT_OF_SERVICE.split('=')[0]}-",
                        check=False)
            multinode("start-node", seen.victim.removeprefix("node"))
        kubectl.run("delete", "namespace", ns, "--wait=false", check=False)


def _lose_a_node(kubectl: Kubectl, release: str, ns: str, seen: Outage) -> None:
    admit_control_plane(kubectl, ns, 8080)  # the API server's service proxy ingests here
    app = IngestApp.create(kubectl, ns, "ingest-node-loss", executors=2)
    place_apart(kubectl, ns, app.name, 2)
    driver_node = node_of(app.pods("driver")[0])
    operator_nodes = {node_of(p) for p in kubectl.json(
        "-n", OPERATOR_NS, "get", "pods", "-l", f"app.kubernetes.io/instance={release}")["items"]}
    candidates = sorted({node_of(p) for p in app.pods("executor")} - {driver_node},
                        key=lambda n: (n in operator_nodes, n))
    assert candidates, f"every executor is on the driver's node {driver_node}"
    victim = candidates[0]

    sent = app.send(batches=4)
    multinode("stop-node", victim.removeprefix("node"))
    seen.victim = victim
    wait_until(f"{victim} NotReady", lambda: victim not in nodes_ready(kubectl), timeout=90)

    def watch_status() -> dict[str, Any]:
        st = _capp_status(kubectl, app)
        ex = st.get("executors") or {}
        if ex.get("ready", 2) < ex.get("desired", 2):
            seen.missing = seen.missing or ex
            if _condition(st, "Degraded").get("status") == "True":
                seen.degraded = seen.degraded or _condition(st, "Degraded")
        return seen.missing

    def after_batch(_: int) -> None:
        watch_status()

    # Events keep coming while the node is gone; the status is read after every batch.
    sent += app.send(batches=6, after=after_batch)
    wait_until("the status showing executors missing", watch_status, timeout=60)
    kubectl.run("taint", "node", victim, OUT_OF_SERVICE, "--overwrite")

    def rescheduled() -> list[dict[str, Any]] | None:
        ps = app.pods("executor")
        ok = (len(ps) == 2 and all(p["status"].get("phase") == "Running" for p in ps)
              and all(node_of(p) != victim for p in ps))
        return ps if ok else None

    seen.placed = wait_until(f"executors rescheduled off {victim}", rescheduled, timeout=240)
    sent += app.send(batches=4, after=after_batch)
    seen.sent = sent

    def all_results() -> dict[str, Any] | None:
        fig = app.figures()
        return fig if fig.get("results", 0) >= sent and fig.get("uncommitted", 1) == 0 else None

    seen.figures = wait_until(f"results for all {sent} events", all_results, timeout=240)
    wait_until("condition Ready=True again", lambda: _condition(
        _capp_status(kubectl, app), "Ready").get("status") == "True", timeout=120)


def test_executors_rescheduled_to_the_other_nodes(kubectl: Kubectl, outage: Outage) -> None:
    assert len(outage.placed) == 2
    others = set(NODES) - {outage.victim}
    assert {node_of(p) for p in outage.placed} <= others, [node_of(p) for p in outage.placed]


def test_no_event_lost(outage: Outage) -> None:
    fig = outage.figures
    assert fig["results"] >= outage.sent and fig["events"] >= outage.sent, (outage.sent, fig)
    assert fig.get("uncommitted") == 0, fig


def test_status_shows_executors_missing_degraded(outage: Outage) -> None:
    assert outage.missing, (
        f"the status never showed an executor missing while {outage.victim} was NotReady")
    assert outage.degraded, (
        f"while {outage.victim} was NotReady the status showed executors {outage.missing} but "
        "never the condition Degraded=True (the issue asks for Degraded when executors are "
        "missing)")
