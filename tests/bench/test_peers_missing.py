"""A peer whose engine is not installed fails at once, saying how to install it."""

from __future__ import annotations

import importlib.util

import pytest

from neptune_bench import peers
from neptune_bench.peers.common import PeerConfig


def test_a_peer_without_its_engine_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyspark" else real(name, *a))
    out = peers.run_peer("spark_fair", PeerConfig(loops=1, batch_records=1, stream_records=1,
                                                  rate=1.0, warmup=0.0, measure=0.0))
    assert out["failed"] is True
    assert out["error"].startswith("pyspark is not installed: run `make bench-setup`")
    assert out["elapsed_s"] == 0.0
