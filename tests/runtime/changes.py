"""Keyed-state changes written as rows, packed as executors send them (keyed.py)."""

from __future__ import annotations

from typing import Any

from neptune_runtime.checkpoints import CheckpointStore, Lane
from neptune_runtime.keyed import Change, PartitionState, packed, unpacked

Maps = dict[str, dict[Any, Any]]  # a lane's state: name -> key -> value


def pack(rows: list[list[Any]]) -> list[Change]:
    """[[name, key, value or None], ...] as packed changes, in order."""
    out: list[Change] = []
    for name, key, value in rows:
        out += packed(name, {key: value})
    return out


def rows(changes: list[Change]) -> list[list[Any]]:
    """Packed changes as [[name, key, value or None], ...]."""
    return [[name, key, value] for change in changes
            for name, entries in [unpacked(change)] for key, value in entries.items()]


def load(store: CheckpointStore) -> tuple[dict[Lane, Maps], dict[Lane, Any]]:
    """Every lane's state (name -> key -> value) and committed token, read as a new owner
    gets them (CheckpointStore.changes, then PartitionState.restore)."""
    tokens = store.tokens()
    maps: dict[Lane, Maps] = {}
    for lane in tokens:
        state = PartitionState()
        state.restore(store.changes(lane))
        if state.maps:
            maps[lane] = state.maps
    return maps, tokens
