"""The driver's state directory: committed offsets, and the HTTP ingest log.

With a state directory a killed driver restarts where it left off: `offsets.json` holds the last
committed token of every stream job (written atomically, a little behind at worst, which only
means replaying more), and `ingest/JOB/` the events HTTP ingest accepted, made durable before
the request is answered, so that accepted means durable. `lock` keeps a second driver out.
Sources restore from these through `Source.restore` (sources.py); this module only stores.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("neptune.driver")

SEGMENT_BYTES = 4 << 20
OFFSETS_FILE = "offsets.json"
LOCK_WAIT = 60.0
_locks: dict[Path, int] = {}  # state directories this process holds, and their lock's fd


class StateDirError(Exception):
    """The state directory (or something in it) cannot be used; the message names the path."""


def open_state_dir(path: str | os.PathLike[str], lock_wait: float = LOCK_WAIT) -> Path:
    """Create the directory if missing, check that we can write there, and hold its lock for
    the life of the process: two drivers must never write one state directory at once, as a
    replaced pod's driver, still stopping, and the new one would. Waits `lock_wait` seconds for
    another holder to exit (the kernel releases its lock however it ends)."""
    directory = Path(path)
    if directory.absolute() in _locks:
        return directory
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
        fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            log.warning("state directory %s is in use by another driver: waiting up to %gs for "
                        "it to exit", directory, lock_wait)
            deadline = time.monotonic() + lock_wait
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StateDirError(f"state directory {directory} is in use by another "
                                        f"driver (waited {lock_wait:g}s for its lock)")
                time.sleep(0.1)
    except OSError as exc:
        raise StateDirError(f"state directory {directory} is not usable: "
                            f"{exc.strerror or exc}") from None
    _locks[directory.absolute()] = fd
    return directory


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class OffsetStore:
    """The committed tokens of every stream job, one per source partition, with its source's
    kind (a token means nothing to another kind of source), in DIR/offsets.json. Tokens must be
    JSON values. `committed` is partition 0's token (the only one of most sources; older files
    have only it), `partitions` all of them."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / OFFSETS_FILE
        self._lock = threading.Lock()

    def load(self) -> dict[str, tuple[str, dict[int, Any]]]:
        """job -> (source kind, {partition: committed token})"""
        try:
            data = json.loads(self.path.read_text())
            loaded = {}
            for job, entry in data.items():
                tokens = {int(p): t for p, t in entry.get("partitions", {}).items()}
                if not tokens and entry["committed"] is not None:
                    tokens = {0: entry["committed"]}
                loaded[str(job)] = (str(entry["source"]), tokens)
            return loaded
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StateDirError(f"cannot read committed offsets {self.path}: {exc}") from None
        except (AttributeError, TypeError, KeyError):
            raise StateDirError(f"committed offsets {self.path}: expected "
                                '{"JOB": {"source": KIND, "committed": TOKEN}, ...}') from None

    def save(self, offsets: dict[str, tuple[str, dict[int, Any]]]) -> None:
        """Replace the file atomically (a crash leaves the old or the new one, whole). Callers
        may be the driver's writer thread and its last save at a clean stop, hence the lock."""
        document = {job: {"source": kind, "committed": tokens.get(0),
                          "partitions": {str(p): t for p, t in tokens.items()}}
                    for job, (kind, tokens) in offsets.items()}
        with self._lock:
            tmp = self.path.with_name(self.path.name + ".tmp")
            with tmp.open("w") as handle:
                json.dump(document, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)


class IngestLog:
    """A job's accepted events, one JSON line each, in segment files named by the index of their
    first event. Event k (0-based, counted across restarts) has token k + 1, so a token is also
    the number of events accepted up to it."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._bases = sorted(int(p.stem) for p in directory.glob("*.jsonl")
                                 if p.stem.isdigit()) or [0]
            self.accepted, self.torn = self._recover()
            self._fd = self._open(self._bases[-1])
        except OSError as exc:
            raise StateDirError(f"ingest log {directory} is not usable: "
                                f"{exc.strerror or exc}") from None
        self._size = os.fstat(self._fd).st_size

    def _segment(self, base: int) -> Path:
        return self.directory / f"{base:020d}.jsonl"

    def _open(self, base: int) -> int:
        return os.open(self._segment(base), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _recover(self) -> tuple[int, int]:
        """(events accepted, bytes cut): counts the last segment's whole lines, and cuts a last
        line that a crash tore (its request was never answered) so that appends start on a line
        of their own."""
        last = self._segment(self._bases[-1])
        data = last.read_bytes() if last.exists() else b""
        whole = data.rfind(b"\n") + 1
        if whole < len(data):
            os.truncate(last, whole)
        return self._bases[-1] + data.count(b"\n", 0, whole), len(data) - whole

    def segments(self, after: int) -> list[tuple[int, Path]]:
        """(base, path) of the segments holding events with tokens above `after`, in order; the
        event on line n (1-based) of a segment has token base + n."""
        ends = [*self._bases[1:], self.accepted]
        return [(base, self._segment(base))
                for base, end in zip(self._bases, ends, strict=True) if end > after]

    def append(self, values: list[Any]) -> int:
        """Write the events (not yet durable: see `syncer`); returns the new accepted count."""
        if self._size >= self.segment_bytes:
            self._roll()
        data = b"".join(json.dumps(v, separators=(",", ":")).encode() + b"\n" for v in values)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            os.ftruncate(self._fd, self._size)  # no half batch for the next append to glue onto
            raise
        self._size += len(data)
        self.accepted += len(values)
        return self.accepted

    def _roll(self) -> None:
        # In an order that leaves a usable log if any step fails. The finished segment is synced
        # here: a `syncer` taken later syncs only the new one.
        os.fsync(self._fd)
        fd = self._open(self.accepted)
        os.close(self._fd)
        self._fd, self._size = fd, 0
        self._bases.append(self.accepted)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the new file's name must survive a crash too
        finally:
            os.close(directory)

    def syncer(self) -> Callable[[], None]:
        """A function making everything appended so far durable. It may run in another thread
        while appends go on: it syncs its own handle, which a roll-over cannot close under it."""
        fd = os.dup(self._fd)

        def sync() -> None:
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)

        return sync

    def compact(self, committed: int) -> None:
        """Delete the finished segments whose events all have tokens up to `committed`."""
        while len(self._bases) > 1 and self._bases[1] <= committed:
            self._segment(self._bases.pop(0)).unlink(missing_ok=True)
