"""The dataflow API's errors, and how a record is shown in them."""

from __future__ import annotations

from typing import Any

SHOWN = 200  # characters of a record's repr in an error message


class DataflowError(Exception):
    """A record an operator cannot handle. The message names the job, the operator and the
    record (or its field); the task fails with it, so the runtime retries it and, after
    `max_retries`, sends the record to the dead-letter sink (or fails the job)."""


class BadRecord(Exception):
    """Internal: what is wrong with a record, before the job and operator are added."""


def shown(record: Any) -> str:
    """`repr(record)`, cut to SHOWN characters."""
    text = repr(record)
    return text if len(text) <= SHOWN else text[:SHOWN - 3] + "..."
