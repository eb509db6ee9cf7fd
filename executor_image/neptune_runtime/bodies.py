"""Parsing of ingest request bodies, within limits (pure).

A body is a JSON value, a JSON array of events, or JSON lines. Parsing is bounded so that no
request can stall the driver or take its memory: the nesting depth is checked before anything
is parsed (CPython's parser recurses, and a 100k-deep array raised RecursionError), and an array
or a body of lines with more events than allowed is refused after at most that many events are
parsed, not after all of them. The driver runs this off its event loop.
"""

from __future__ import annotations

import json
import re
from array import array
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_EVENTS = 100_000
DEFAULT_MAX_BODY = 8 * 1024 * 1024
DEFAULT_MAX_BACKLOG = 100_000


@dataclass(frozen=True)
class IngestLimits:
    """Bounds of one ingest request, and of a job's events in flight."""

    max_depth: int = DEFAULT_MAX_DEPTH  # nesting of arrays and objects, the top level counting
    max_events: int = DEFAULT_MAX_EVENTS  # per request
    max_body: int = DEFAULT_MAX_BODY  # bytes per request
    max_backlog: int = DEFAULT_MAX_BACKLOG  # a job's accepted events not yet handed on

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_events", "max_body", "max_backlog"):
            if getattr(self, name) < 1:
                raise ValueError(f"ingest limit {name} must be at least 1, "
                                 f"got {getattr(self, name)}")


class BodyError(ValueError):
    """The body is refused; `status` is the HTTP status to answer (400, or 413 over a limit)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes
_SPACE = re.compile(r"[ \t\n\r]*")
_CHUNK = 1 << 16


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether the JSON text nests arrays and objects deeper than `limit`. Strings are cut out,
    the brackets kept as +1/-1 steps, and the running depth's peak taken a chunk at a time, in
    C (`max` over `accumulate`), stopping at the first chunk that passes the limit. Cutting
    the strings costs about what parsing does; a body with at most `limit` opening brackets
    cannot nest deeper, and skips it."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    steps = array("b", _STRING.sub(b"", body).translate(_STEPS, _NOT_BRACKETS))
    depth = 0
    for start in range(0, len(steps), _CHUNK):
        chunk = steps[start:start + _CHUNK]
        if max(accumulate(chunk, initial=depth)) > limit:
            return True
        depth += sum(chunk)
    return False


def _too_many(limit: int) -> BodyError:
    return BodyError(f"more than {limit} events in one request (the limit, max_events): "
                     "split it into several requests", 413)


def _array(text: str, limit: int) -> list[Any]:
    """The events of a top-level JSON array, parsed one by one, refused past `limit`."""
    decoder = json.JSONDecoder()
    events: list[Any] = []
    index = _SPACE.match(text, 1).end()  # type: ignore[union-attr]  # always matches
    if text.startswith("]", index):
        return events
    while True:
        value, index = decoder.raw_decode(text, index)
        events.append(value)
        if len(events) > limit:
            raise _too_many(limit)
        index = _SPACE.match(text, index).end()  # type: ignore[union-attr]
        if text.startswith("]", index):
            if text[index + 1:].strip():
                raise json.JSONDecodeError("extra data", text, index + 1)
            return events
        if not text.startswith(",", index):
            raise json.JSONDecodeError("expecting ',' delimiter", text, index)
        index = _SPACE.match(text, index + 1).end()  # type: ignore[union-attr]


def parse_body(body: bytes, content_type: str, limits: IngestLimits = IngestLimits()) -> list[Any]:
    """Parse an ingest request body into events; raise BodyError naming the problem."""
    if len(body) > limits.max_body:
        raise BodyError(f"body of {len(body)} bytes is over the limit of {limits.max_body} "
                        "(max_body)", 413)
    if not body.strip():
        raise BodyError("empty body: send a JSON value, a JSON array, or JSON lines")
    try:
        text = body.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise BodyError(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    if nesting_exceeds(body, limits.max_depth):
        raise BodyError(f"JSON nested deeper than {limits.max_depth} levels (the limit, "
                        "max_depth)")
    if "ndjson" in content_type or "jsonl" in content_type or "json-seq" in content_type:
        return _lines(text, limits.max_events)
    try:
        stripped = text.lstrip()
        # Fewer commas than the limit: fewer events too, so one call of the C parser does it.
        if stripped.startswith("[") and text.count(",") >= limits.max_events:
            return _array(stripped, limits.max_events)
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BodyError(f"invalid JSON at line {exc.lineno} column {exc.colno}: "
                        f"{exc.msg}") from None
    except RecursionError:  # a nesting the check above let through: still a clean refusal
        raise BodyError("JSON nested too deeply to parse") from None
    return value if isinstance(value, list) else [value]


def _lines(text: str, limit: int) -> list[Any]:
    events = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise BodyError(f"line {number}: invalid JSON: {exc.msg}") from None
            if len(events) > limit:
                raise _too_many(limit)
    return events
