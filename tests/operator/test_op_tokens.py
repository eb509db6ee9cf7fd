"""tokens: the driver's HTTP tokens in their Secret, and on a request."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from neptune_operator import tokens


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_generate_makes_two_distinct_random_tokens() -> None:
    first, second = tokens.generate(), tokens.generate()
    assert set(first) == {"ingest", "read"}
    assert first["ingest"] != first["read"]
    assert first != second
    for value in first.values():
        assert len(value) >= 43  # 32 random bytes
        assert value.strip() == value
        assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                 "0123456789-_")


def test_from_secret_decodes_and_strips_like_the_driver() -> None:
    secret = {"data": {"ingest": b64("  in-token\n"), "read": b64("rd\n"), "other": b64("x")}}
    assert tokens.from_secret(secret) == {"ingest": "in-token", "read": "rd"}


@pytest.mark.parametrize("secret", [
    None,
    {},
    {"data": None},
    {"data": {"read": b64("   \n")}},  # blank: no token
    {"data": {"read": "not base64!"}},
    {"data": {"read": base64.b64encode(b"\xff\xfe").decode()}},  # not text
    {"data": {"read": 12}},
])
def test_from_secret_leaves_out_what_is_no_token(secret: dict[str, Any] | None) -> None:
    assert tokens.from_secret(secret) == {}


def test_headers_carry_the_token_both_ways() -> None:
    assert tokens.headers("abc") == {"Authorization": "Bearer abc", "X-Neptune-Token": "abc"}
