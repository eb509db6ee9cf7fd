"""Keyed-state changes written as rows, packed as executors send them (keyed.py)."""

from __future__ import annotations

from typing import Any

from neptune_runtime.keyed import Change, packed, unpacked


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
