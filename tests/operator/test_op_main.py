"""main: argument handling of `neptunectl operator` (no operator is started here)."""

from __future__ import annotations

import pytest

from neptune_operator.main import build_parser, parse


def test_defaults_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEPTUNE_OPERATOR_LIVENESS", "http://127.0.0.1:9/healthz")
    args = build_parser().parse_args([])
    assert args.liveness == "http://127.0.0.1:9/healthz"
    assert args.namespace == []


def test_repeatable_namespace() -> None:
    args = build_parser().parse_args(["-n", "a", "--namespace", "b", "-v"])
    assert args.namespace == ["a", "b"]
    assert args.verbose is True


def test_leading_separator_is_dropped() -> None:
    assert parse(["--", "--namespace", "x"]).namespace == ["x"]
    assert parse(["--liveness", ""]).liveness == ""
