"""Parsing of human durations ("50ms", "1.5s", "2m") used by the app API, the CLI and the CRD."""

from __future__ import annotations

import re

_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h)\s*$")


def parse_duration(value: str | float | int, *, what: str = "duration") -> float:
    """Return seconds. Numbers are taken as seconds; strings need a unit."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a duration like '50ms', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _PATTERN.match(value)
        if match is None:
            raise ValueError(
                f"{what}: {value!r} is not a duration (use a number and a unit: us, ms, s, m, h)"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{what}: must be positive, got {value!r}")
    return seconds
