"""The executor's connection to its driver: connect with retries, the handshake, sealed frames.

Sends from the executor's own thread go through an outbox (see `post`), flushed when a task ends
or the executor goes idle. A heartbeat thread sends `heartbeat` every HEARTBEAT_SECONDS whatever
the task does (a task that runs long between yield points still releases the GIL every switch
interval), so the driver's silence deadline (driver/session.py) catches only a process that is
stopped or truly hung. The two threads' sends are serialized by one lock: frames are numbered,
and must reach the socket in the order they were sealed.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import protocol

log = logging.getLogger("neptune.executor")

HEARTBEAT_SECONDS = 1.0
RECEIVE_BYTES = 1 << 16
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESTAMP_CMSG_SPACE = socket.CMSG_SPACE(16)


class ExecutorError(Exception):
    """The executor cannot start or reach its driver."""


class DriverLost(ExecutorError):
    """The connection to the driver broke, or the driver sent something invalid."""


@dataclass(frozen=True)
class Welcome:
    executor_id: str
    preempts: str
    states: dict[str, tuple[int, Any]]


def _arrival_ns(ancdata: list[tuple[int, int, bytes]]) -> int:
    """The kernel's receive time of the bytes just read, on the monotonic clock."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanos = struct.unpack("qq", data[:16])
            realtime = int(seconds) * 1_000_000_000 + int(nanos)
            return realtime - (time.time_ns() - time.monotonic_ns())
    return time.monotonic_ns()


class Link:
    def __init__(self, driver: tuple[str, int], app: str, name: str, secret: str) -> None:
        self.driver = driver
        self.app = app
        self.name = name
        self.secret = secret
        self.sock: socket.socket  # from `connect` on
        self.frames = protocol.FrameBuffer()
        self.sealer: protocol.Sealer | None = None
        self.outbox: list[dict[str, Any] | bytes] = []  # messages, or frames encoded already
        self.up = False  # the session is established: the heartbeat thread may send
        self._lock = threading.Lock()

    # -- connecting -------------------------------------------------------------------------
    def connect(self, timeout: float, stopping: Callable[[], bool]) -> Welcome:
        """Connect and authenticate, retrying until `timeout` seconds passed: the driver may
        not be up yet, may be restarting (a dying driver's listening socket can accept, even
        answer, and then reset us), or may be rolling to a new secret."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            sock: socket.socket | None = None
            # nothing of an earlier attempt carries over: not its bytes, not its keys
            self.frames, self.sealer = protocol.FrameBuffer(), None
            try:
                sock = self.sock = socket.create_connection(self.driver, timeout=5.0)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                welcome = self._handshake()
                break
            except (OSError, ExecutorError, protocol.ProtocolError) as exc:
                if sock is not None:
                    sock.close()
                if stopping() or time.monotonic() > deadline:
                    raise ExecutorError(
                        f"cannot reach driver at {self.driver[0]}:{self.driver[1]}: {exc}"
                    ) from None
                log.debug("connecting to the driver: %s; trying again", exc)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        self.sock.settimeout(None)
        return welcome

    def _recv_message(self) -> dict[str, Any]:
        """The next handshake message; what came with it stays buffered for `receive`."""
        data = b""
        while True:
            for message in self.frames.feed(data):
                return message
            data = self.sock.recv(1 << 16)
            if not data:
                raise ExecutorError("driver closed the connection during the handshake "
                                    "(wrong secret or app name?)")

    def _handshake(self) -> Welcome:
        ours = protocol.new_nonce()
        self._send_now({"t": "hello", "v": protocol.VERSION, "app": self.app,
                        "executor": self.name, "nonce": ours})
        challenge = self._recv_message()
        if challenge.get("t") != "challenge":
            raise ExecutorError(f"driver refused: {challenge.get('error', challenge.get('t'))}")
        theirs = challenge.get("nonce")
        if not isinstance(theirs, bytes) or len(theirs) != protocol.NONCE_BYTES:
            raise ExecutorError("driver's challenge has no valid nonce")
        if not protocol.verify(protocol.driver_mac(self.secret, ours, theirs),
                               challenge.get("mac")):
            self._send_now({"t": "abort", "reason": "secret_mismatch"})  # tell the operator why
            raise ExecutorError("driver failed authentication (its secret differs from ours)")
        self._send_now({"t": "auth", "mac": protocol.executor_mac(
            self.secret, theirs, ours, self.name)})
        to_us, to_driver = protocol.session_keys(self.secret, ours, theirs, self.name)
        self.frames.opener = protocol.Opener(to_us)
        self.sealer = protocol.Sealer(to_driver)
        welcome = self._recv_message()
        if welcome.get("t") != "welcome":
            raise ExecutorError("driver rejected this executor's authentication")
        protocol.check(welcome, protocol.FROM_DRIVER)
        self.frames.consumed = 0  # the driver counts stream offsets from after the welcome
        states = {str(name): (int(entry[0]), entry[1])
                  for name, entry in welcome["states"].items()
                  if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int)}
        return Welcome(welcome["executor_id"], welcome["preempts"], states)

    # -- sending ----------------------------------------------------------------------------
    def post(self, message: dict[str, Any] | bytes) -> None:
        """Queue a message that may wait: between a preemption request and the preempting task
        starting, a send would cost a cross-CPU wake-up of the driver (~100 us here), and even
        encoding is worth deferring."""
        self.outbox.append(message)

    def send(self, message: dict[str, Any]) -> None:
        """Send now, with whatever was posted before it."""
        self.outbox.append(message)
        self.flush()

    def flush(self) -> None:
        if self.outbox:
            outbox, self.outbox = self.outbox, []
            with self._lock:
                self._sendall(b"".join(self._frame(m) for m in outbox))

    def _frame(self, message: dict[str, Any] | bytes) -> bytes:
        """A message's frame; bytes are a body encoded already, sealed here (in send order)."""
        if isinstance(message, bytes):
            body = message if self.sealer is None else self.sealer.seal(message)
            return protocol.HEADER.pack(len(body)) + body
        return protocol.encode(message, self.sealer)

    def _send_now(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._sendall(self._frame(message))

    def _sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view):]
            except BlockingIOError:
                select.select([], [self.sock], [], 1.0)
            except OSError as exc:
                raise DriverLost(f"lost the driver connection: {exc}") from None

    def heartbeats(self, make: Callable[[], dict[str, Any]]) -> None:
        """Start the heartbeat thread (once per executor: it follows reconnections)."""
        def loop() -> None:
            while True:
                time.sleep(HEARTBEAT_SECONDS)
                message = make()
                with self._lock:
                    if not self.up:
                        continue
                    with contextlib.suppress(DriverLost):  # the main thread will notice
                        self._sendall(self._frame(message))

        threading.Thread(target=loop, name="heartbeat", daemon=True).start()

    # -- receiving --------------------------------------------------------------------------
    def receive(self) -> tuple[bytes, int]:
        """Read up to RECEIVE_BYTES with their arrival time; BlockingIOError if nothing is
        there, DriverLost if the connection broke."""
        try:
            data, ancdata, _, _ = self.sock.recvmsg(RECEIVE_BYTES, TIMESTAMP_CMSG_SPACE)
        except BlockingIOError:
            raise
        except OSError as exc:  # a killed driver's kernel may reset the connection
            raise DriverLost(f"lost the driver connection: {exc}") from None
        return data, _arrival_ns(ancdata)

    def serving(self) -> None:
        """The session is set up for serving: non-blocking, timestamped, heartbeats on."""
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        with self._lock:
            self.up = True

    def close(self) -> None:
        with self._lock:
            self.up = False
            self.outbox.clear()
            self.sock.close()

    def linger(self, seconds: float = 1.0) -> None:
        """After `bye`: end our side and read what the driver still sends until it closes. A
        socket closed with bytes unread (a frame taken from the express slot, a message sent
        since the last drain) resets the connection, and the reset can destroy the `bye` before
        the driver reads it: then a planned exit would look like a loss."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0 \
                    and select.select([self.sock], [], [], left)[0]:
                if not self.sock.recv(RECEIVE_BYTES):
                    return  # the driver closed its side
