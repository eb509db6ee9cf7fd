"""Commit tracking for stream sources (pure).

Events are tracked in arrival order with their source tokens. Tasks mark them done in any
order; `done` returns the token up to which everything is done, if that point moved, which is
what the source may commit. At-least-once: nothing is committed before its task finished.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class OffsetTracker:
    def __init__(self) -> None:
        self._next_seq = 0
        self._pending: deque[tuple[int, Any]] = deque()  # (seq, token) not yet committed
        self._done: set[int] = set()
        self.released = 0  # events ever handed on (left `_pending`): commits count from it

    def track(self, token: Any) -> int:
        seq = self._next_seq
        self._next_seq += 1
        self._pending.append((seq, token))
        return seq

    def done(self, seqs: list[int]) -> Any | None:
        self._done.update(seqs)
        commit = None
        while self._pending and self._pending[0][0] in self._done:
            seq, commit = self._pending.popleft()
            self._done.discard(seq)
            self.released += 1
        return commit

    @property
    def unreleased(self) -> int:
        """Events tracked and not handed on yet (a commit may still be behind the rest)."""
        return len(self._pending)
