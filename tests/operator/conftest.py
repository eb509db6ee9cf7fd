"""Fixtures for the operator tests: plain data for unit tests, a real control plane for
those marked `integration`."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.controlplane import ControlPlane, ControlPlaneMissing, cleanup_dir, find_binaries

from .op_helpers import BASE


@pytest.fixture
def capp() -> dict[str, Any]:
    return copy.deepcopy(BASE)


# -- integration: a real control plane (see op_controlplane.py) --------------------------------

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs etcd + kube-apiserver from NEPTUNE_K8S_BIN")
    config.addinivalue_line("markers", "chart: needs helm and promtool")


@pytest.fixture(scope="session")
def controlplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    try:
        bins = find_binaries()
    except ControlPlaneMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    root: Path = tmp_path_factory.mktemp("controlplane")
    cp = ControlPlane(root, bins)
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()
        cleanup_dir(root / "etcd")
