"""Fixtures for the end-to-end tests (helpers in e2e/tests/kube.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from e2e.tests.kube import Kubectl, tool, wait_until


@pytest.fixture(scope="session")
def kubectl() -> Iterator[Kubectl]:
    k = Kubectl()
    proc = k.run("version", "-o", "json", check=False, timeout=30)
    if proc.returncode != 0:
        where = os.environ.get("KUBECONFIG")
        pytest.fail(f"no reachable cluster (KUBECONFIG={where}):\n{proc.stderr}")
    yield k
    k.close()  # the `kubectl proxy` that Kubectl.http started, if any


@pytest.fixture(scope="session")
def helm() -> str:
    return tool("helm")


@pytest.fixture
def restricted_ns(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace enforcing the restricted Pod Security Standard, deleted afterwards."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kubectl.apply({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest"}},
    })
    wait_until(f"serviceaccount {name}/default",
               lambda: kubectl.run("-n", name, "get", "sa", "default", check=False).returncode == 0)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)
