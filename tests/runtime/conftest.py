"""Fixtures shared by the runtime's unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from neptune_runtime import yieldpoint
from neptune_runtime.doorbell import Bell, Ringer


@pytest.fixture
def attached() -> Iterator[tuple[Bell, Ringer]]:
    """An executor's bell and the driver's side of it, in one process."""
    bell = Bell()
    ringer = Ringer.attach(bell.path, bell.token)
    assert ringer is not None
    yield bell, ringer
    yieldpoint.install(None)  # yield points may hold the mapping: let go before closing it
    ringer.close()
    bell.close()
