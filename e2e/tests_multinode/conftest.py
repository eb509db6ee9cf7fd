"""Fixtures of the multi-node e2e tests: the cluster of e2e/multinode.sh (three nodes in
network namespaces, kube-router enforcing NetworkPolicy), reached through KUBECONFIG."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from e2e.tests.kube import OPERATOR_NS, RELEASE, Kubectl, install_release, tool, wait_until
from e2e.tests_multinode.mn import NODES, UP, namespace, nodes_ready

__all__ = ["helm", "kubectl", "multinode_ns", "release"]


@pytest.fixture(scope="session")
def kubectl() -> Iterator[Kubectl]:
    """The multi-node cluster, or a failure that says how to bring it up."""
    where = os.environ.get("KUBECONFIG")
    if not where:
        pytest.fail(f"KUBECONFIG is not set: {UP}", pytrace=False)
    k = Kubectl()
    proc = k.run("get", "nodes", "-l", "neptune.dev/node", "-o", "name", check=False, timeout=30)
    if proc.returncode != 0:
        pytest.fail(f"no reachable cluster at KUBECONFIG={where} ({proc.stderr.strip()}): {UP}",
                    pytrace=False)
    names = sorted(n.removeprefix("node/") for n in proc.stdout.split())
    if names != list(NODES):
        pytest.fail(f"KUBECONFIG={where} is not the multi-node cluster (nodes labelled "
                    f"neptune.dev/node: {names}, want {list(NODES)}): {UP}", pytrace=False)
    yield k
    k.close()


@pytest.fixture(scope="session")
def helm() -> str:
    return tool("helm")


@pytest.fixture(scope="session")
def release(kubectl: Kubectl, helm: str) -> Iterator[str]:
    """The chart, installed once for the session (and left: the next session upgrades it)."""
    wait_until("every node Ready", lambda: nodes_ready(kubectl) == set(NODES), timeout=120)
    install_release(RELEASE, OPERATOR_NS, "--set", "operator.statusInterval=3")
    yield RELEASE


@pytest.fixture
def multinode_ns(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace enforcing the restricted Pod Security Standard, deleted afterwards."""
    name = namespace(kubectl, "mn")
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)
