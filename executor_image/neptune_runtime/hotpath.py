"""Keeping the driver's part of the preemption path warm.

On the VMs we measured, code that has not run for a few milliseconds runs 10-30x slower than
warm: a msgpack encode of a `run` message takes 0.7 us right after another one, 3 us after 3 ms
and 20-50 us after the 50 ms between two stream events; a loopback TCP send goes from 6 us to
60 us (caches and TLBs refilled after the host ran something else). A preemption is rare by
design, so its path is always cold.

The driver rehearses its part: while any executor runs a task, every NEPTUNE_WARM_US (default
1 ms; 0: never) it encodes a `run` message and sends it through a loopback TCP connection of its
own. That took encode+send from ~100 us to ~20 us when the socket carries the preemption (across
hosts). On one host the driver's C copy into the executor's express slot comes first and the
frame after it, so there this only keeps the rest of the send warm. It costs ~50 us of the
driver's CPU per rehearsal (~5% of its core while tasks run). The executor does not rehearse on
a timer (that halved its path but cost 7% of batch throughput at 1 ms): it rehearses once per
forewarning, when the driver has a stream task that may preempt it (Executor._rehearse).
Nothing rehearsed reaches a peer.
"""

from __future__ import annotations

import contextlib
import socket

from . import protocol, yieldpoint

DEFAULT_WARM_US = 1000

# shaped like the driver's preempting `run` messages
CANNED_RUN = {"t": "run", "id": "warm-stream-0-0", "job": "warm", "kind": "stream",
               "priority": 10, "partition": 0, "epoch": 0, "attempt": 0, "records": [0] * 4,
               "victim": "warm-batch-0-0", "action": "suspend"}


def warm_from_env() -> int:
    """The driver's rehearsal period in microseconds: NEPTUNE_WARM_US (0: never)."""
    return yieldpoint.microseconds_from_env("NEPTUNE_WARM_US", DEFAULT_WARM_US, 0)


class Rehearsal:
    """A loopback TCP connection to ourselves, to send a `run` frame through."""

    def __init__(self) -> None:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            self._tx = socket.create_connection(listener.getsockname())
            self._rx, _ = listener.accept()
        self._tx.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rx.setblocking(False)
        self.runs = 0

    def run(self) -> None:
        """Encode and send (and take it back, so that nothing piles up)."""
        self._tx.send(protocol.encode(CANNED_RUN))
        self.runs += 1
        with contextlib.suppress(BlockingIOError):  # not there yet: the next read takes it
            self._rx.recv(1 << 16)

    def close(self) -> None:
        self._tx.close()
        self._rx.close()
