"""A shared-memory doorbell, for a driver and an executor on one host (local mode, benchmarks).

The executor creates a small file in /dev/shm and names it, with a random token, in its `ready`
message. A driver that can open that file and finds the token there sets byte 0 after each
message it sends, and byte 1 when it has a new stream task that may preempt the executor's
(a forewarning: the executor warms its preemption path while the driver decides). The
executor's yield points read those bytes at every record (one load) instead of calling poll(2)
on the socket. Across hosts (Kubernetes pods) the driver cannot open the file and nothing
changes: yield points poll the socket.

Protocol: the driver writes a message to the socket, then sets the byte; the executor clears the
byte, then reads the socket. A message written after that read sets the byte after the clear, so
none is missed (the socket write is a system call, a full barrier).

Express slot: a preempting `run` is also copied into the file, before its frame is written to
the socket, with the stream offset at which that frame starts. If every frame before that
offset has been handled, the executor acts on the copy and drops the frame when it reads it
later; so the preemption path has no socket read (20-100 us run cold on the VMs we measured).
The copy carries an adler32 and is bracketed by a version counter; a torn or stale copy is
ignored and the socket serves. Both sides of the slot are C (_yieldcore.c): they run cold, and
there one call touches a few cache lines where the interpreter's paths touch hundreds. The
last version taken lives in the page too (SEEN_AT), where the executor's side keeps it.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import secrets
import struct
import tempfile
from typing import Any

from . import _yieldcore

log = logging.getLogger("neptune.doorbell")

PREFIX = "neptune-bell-"
TOKEN = slice(8, 40)
# The page (the same offsets as _yieldcore.c, whose opening comment draws it): byte 0 rung,
# byte 1 forewarned, the token, the slot's header at SLOT_AT, the executor's seen mark at SEEN_AT,
# the body (msgpack) at BODY_AT.
# The slot's header: version (odd while being written), stream offset, driver's send time
# (monotonic), body length, adler32 of the body. _yieldcore.c writes and reads it as a C struct,
# so in the host's native byte order ("=": native order, standard sizes, no padding): the page
# never leaves this host. The seen mark is a native uint64 as well.
SLOT = struct.Struct("=QQQII")
VERSION = struct.Struct("=Q")
SLOT_AT = 64
SEEN_AT = 104  # the executor's: the last version it took
BODY_AT = 128
EXPRESS_MAX = 4096 - BODY_AT
SIZE = 4096


def _directory() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


class Bell:
    """The executor's side: a flag the driver sets, and the express slot."""

    def __init__(self) -> None:
        fd, self.path = tempfile.mkstemp(prefix=PREFIX, dir=_directory())
        try:
            os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        self.token = secrets.token_bytes(TOKEN.stop - TOKEN.start)
        self._map[TOKEN] = self.token

    @property
    def mapping(self) -> mmap.mmap:
        """What yield points check (byte 0); see yieldpoint.install."""
        return self._map

    def rung(self) -> bool:
        return self._map[0] != 0

    def clear(self) -> None:
        self._map[0] = 0

    def take_express(self) -> tuple[int, int, dict[str, Any]] | None:
        """The slot's message, as (offset, sent_ns, message), if it is new, whole and decodes
        here; once. A plain tuple: an Express costs a cold Python call on the preemption path."""
        return _yieldcore.take_express(self._map)

    def unlink(self) -> None:
        """Once a driver has it mapped, the name is no longer needed (nothing is left behind)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def close(self) -> None:
        self.unlink()
        self._map.close()


class Ringer:
    """The driver's side of one executor's bell."""

    def __init__(self, mapped: mmap.mmap) -> None:
        self._map = mapped

    @classmethod
    def attach(cls, path: object, token: object) -> Ringer | None:
        """The bell at `path` if it is one and holds `token`; None otherwise (another host)."""
        if not isinstance(path, str) or not isinstance(token, bytes):
            return None
        if not os.path.basename(path).startswith(PREFIX) or \
                os.path.dirname(path) != _directory():
            return None  # only ever open what an executor could have created
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size != SIZE:
                return None
            mapped = mmap.mmap(fd, SIZE)
        except OSError:
            return None
        finally:
            os.close(fd)
        if mapped[TOKEN] != token:
            mapped.close()
            return None
        log.debug("attached the doorbell %s", path)
        return cls(mapped)

    def express(self, message: dict[str, Any], offset: int) -> bool:
        """Copy a message whose frame starts at stream `offset` into the slot, stamped, and
        ring (before the frame is encoded and written to the socket: the executor needs only
        the copy); False if it does not fit or has what the slot's encoder does not handle."""
        return _yieldcore.express(self._map, message, offset)

    def ring(self) -> None:
        self._map[0] = 1

    def forewarn(self) -> None:
        """A preempting `run` may follow soon: the executor warms its path meanwhile."""
        self._map[1] = 1

    def close(self) -> None:
        self._map.close()
