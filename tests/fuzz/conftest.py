"""Hypothesis profiles for the wire fuzzer: `make test` runs the bounded one; `make fuzz` the
long one (NEPTUNE_FUZZ=long), with statistics (executions, and any failing example)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("bounded", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=50_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("NEPTUNE_FUZZ", "bounded"))
