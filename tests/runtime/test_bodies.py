"""Ingest bodies: parsed right, refused within their limits, with the limit named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from neptune_runtime.bodies import BodyError, IngestLimits, nesting_exceeds, parse_body


@pytest.mark.parametrize(("body", "ctype", "expected"), [
    (b'{"a": 1}', "application/json", [{"a": 1}]),
    (b'[1, 2, 3]', "application/json", [1, 2, 3]),
    (b' [ ] ', "application/json", []),
    (b'{"a": 1}\n\n{"a": 2}\n', "application/x-ndjson", [{"a": 1}, {"a": 2}]),
])
def test_parse_body(body: bytes, ctype: str, expected: list[Any]) -> None:
    assert parse_body(body, ctype) == expected


@pytest.mark.parametrize(("body", "ctype", "message"), [
    (b"", "application/json", "empty body"),
    (b'{"a": ', "application/json", "invalid JSON at line 1"),
    (b'{"a": 1}\n{oops}\n', "application/x-ndjson", "line 2: invalid JSON"),
    (b'\xff\xfe', "application/json", "not UTF-8"),
])
def test_parse_body_names_the_problem(body: bytes, ctype: str, message: str) -> None:
    with pytest.raises(BodyError, match=message) as caught:
        parse_body(body, ctype)
    assert caught.value.status == 400


def test_a_deep_array_is_a_400_naming_the_depth_limit_not_a_recursion_error() -> None:
    with pytest.raises(BodyError, match=r"nested deeper than 64 levels.*max_depth") as caught:
        parse_body(b"[" * 100_000 + b"]" * 100_000, "application/json")
    assert caught.value.status == 400


@pytest.mark.parametrize(("text", "limit", "deeper"), [
    ('[[["]]]]"]]]', 3, False),  # brackets in strings do not count
    ('[[[[]]]]', 3, True),
    ('[[[]]]', 3, False),
    ('[[[', 3, False),  # not JSON at all: the parser says so, not the depth check
    ('[{"a": [1]}]', 3, False),
    ('[{"a": [[1]]}]', 3, True),
    ('["\\"[[[[", {}]', 2, False),  # an escaped quote does not end the string
])
def test_nesting_is_measured_outside_strings(text: str, limit: int, deeper: bool) -> None:
    assert nesting_exceeds(text.encode(), limit) is deeper


@pytest.mark.parametrize(("body", "ctype"), [
    (json.dumps(list(range(11))).encode(), "application/json"),
    ("\n".join(["1"] * 11).encode(), "application/x-ndjson"),
])
def test_too_many_events_is_a_413_naming_the_limit(body: bytes, ctype: str) -> None:
    with pytest.raises(BodyError, match=r"more than 10 events.*max_events") as caught:
        parse_body(body, ctype, IngestLimits(max_events=10))
    assert caught.value.status == 413


def test_the_event_limit_stops_parsing_early() -> None:
    # 4M small ints: refused after the first events, not after building a list of all of them
    body = b"[" + b",".join([b"1"] * 4_000_000) + b"]"
    with pytest.raises(BodyError, match="max_events"):
        parse_body(body, "application/json", IngestLimits(max_body=len(body)))


def test_an_array_at_the_limit_parses_whole_even_on_the_slow_path() -> None:
    body = json.dumps([{"i": i, "s": "a, b"} for i in range(10)]).encode()  # commas in strings
    assert parse_body(body, "application/json", IngestLimits(max_events=10)) == [
        {"i": i, "s": "a, b"} for i in range(10)]
    with pytest.raises(BodyError, match="column 8: expecting ',' delimiter"):
        parse_body(b"[1, 2  3, 4]", "application/json", IngestLimits(max_events=2))


def test_a_body_over_max_body_is_a_413() -> None:
    with pytest.raises(BodyError, match=r"over the limit of 8 .*max_body") as caught:
        parse_body(b"[1,2,3,4,5]", "application/json", IngestLimits(max_body=8))
    assert caught.value.status == 413


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_events must be at least 1"):
        IngestLimits(max_events=0)
