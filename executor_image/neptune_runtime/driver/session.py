"""The driver's side of an executor session: the handshake, the sealed frames, the silence rule.

The handshake is protocol.py's; once it verified, both directions are sealed with keys derived
from it. An executor is heard from at least every second (its heartbeat thread), so one that is
silent for the heartbeat timeout (stopped, hung, or cut off without a reset) is declared lost:
its connection is aborted and the driver re-runs its tasks, as for a closed connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .. import metrics, protocol
from ..doorbell import Ringer

log = logging.getLogger("neptune.driver")

HANDSHAKE_TIMEOUT = 5.0
DEFAULT_HEARTBEAT_TIMEOUT = 10.0


@dataclass
class ExecutorConn:
    id: str
    writer: asyncio.StreamWriter
    sealer: protocol.Sealer
    running: str | None = None
    suspended: list[str] = field(default_factory=list)
    ahead: list[str] = field(default_factory=list)  # sent behind `running` (placement.py)
    memory: int = 0
    memory_limit: int = 0
    partitions: frozenset[tuple[str, int]] = frozenset()
    ready: bool = False
    pid: int = 0
    ringer: Ringer | None = None  # the executor's doorbell, when it runs on this host
    takes_forewarn: bool = False  # it said it acts on a `forewarn` message (no ringer)
    sent_bytes: int = 0  # after the welcome: where the executor's stream offsets start
    leaving: bool = False  # it said `bye`: a planned exit, not a loss
    silent: bool = False  # declared lost for not being heard from
    heard_at: float = field(default_factory=time.monotonic)

    def send(self, message: dict[str, Any], express: bool = False) -> None:
        """Send; `express` also copies it into the executor's doorbell slot, if we ring one."""
        rung = False
        if express and self.ringer is not None:
            # the copy rings before the frame is even encoded: the executor needs only the copy
            rung = self.ringer.express(message, self.sent_bytes)
        frame = protocol.encode(message, self.sealer)
        self.writer.write(frame)
        self.sent_bytes += len(frame)
        if self.ringer is not None and not rung:
            self.ringer.ring()

    def attach_bell(self, offer: Any) -> None:
        """Ring the doorbell the executor offered, if we can open it (same host)."""
        if isinstance(offer, dict):
            self.ringer = Ringer.attach(offer.get("path"), offer.get("token"))
        if self.ringer is not None:
            self.send({"t": "bell"})

    def close(self) -> None:
        ringer, self.ringer = self.ringer, None
        if ringer is not None:
            ringer.close()
        self.writer.close()


class Rejected(Exception):
    """The peer failed the handshake; `reason` labels neptune_auth_failures_total."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Hello:
    """A verified handshake: the executor's name and the session's keys."""

    name: str
    sealer: protocol.Sealer
    opener: protocol.Opener


async def _read_one(reader: asyncio.StreamReader) -> dict[str, Any]:
    header = await reader.readexactly(protocol.HEADER.size)
    (length,) = protocol.HEADER.unpack(header)
    if length > protocol.PREAUTH_MAX_FRAME:
        raise protocol.ProtocolError(f"pre-auth frame of {length} bytes")
    return protocol.decode_body(await reader.readexactly(length))


async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: str,
                    secret: str) -> Hello:
    """Verify the executor, or raise Rejected."""
    try:
        hello = await asyncio.wait_for(_read_one(reader), HANDSHAKE_TIMEOUT)
        if hello.get("t") != "hello" or hello.get("v") != protocol.VERSION:
            raise Rejected("bad_hello")
        theirs, name = hello.get("nonce"), hello.get("executor", "executor")
        if hello.get("app") != app or not isinstance(theirs, bytes) \
                or len(theirs) != protocol.NONCE_BYTES or not isinstance(name, str):
            raise Rejected("wrong_app")
        name = name[:100]
        ours = protocol.new_nonce()
        writer.write(protocol.encode({
            "t": "challenge", "v": protocol.VERSION, "nonce": ours,
            "mac": protocol.driver_mac(secret, theirs, ours)}))
        auth = await asyncio.wait_for(_read_one(reader), HANDSHAKE_TIMEOUT)
        if auth.get("t") == "abort":
            raise Rejected("secret_mismatch")
        expected = protocol.executor_mac(secret, ours, theirs, name)
        if auth.get("t") != "auth" or not protocol.verify(expected, auth.get("mac")):
            raise Rejected("bad_hmac")
    except TimeoutError:
        raise Rejected("timeout") from None
    except (asyncio.IncompleteReadError, ConnectionError):
        raise Rejected("aborted") from None
    except protocol.ProtocolError:
        raise Rejected("protocol") from None
    to_executor, from_executor = protocol.session_keys(secret, theirs, ours, name)
    return Hello(name, protocol.Sealer(to_executor), protocol.Opener(from_executor))


def rejected(writer: asyncio.StreamWriter, reason: str) -> None:
    metrics.AUTH_FAILURES.labels(reason).inc()
    log.warning("dropped executor connection from %s: %s", writer.get_extra_info("peername"),
                reason)
    writer.close()


def silent(executors: list[ExecutorConn], timeout: float, now: float) -> list[ExecutorConn]:
    """The executors not heard from for `timeout` seconds (pure)."""
    return [c for c in executors if now - c.heard_at > timeout and not c.silent]


async def watch(executors: dict[str, ExecutorConn], timeout: float) -> None:
    """Abort the connections of silent executors; the reading side then declares them lost."""
    while True:
        await asyncio.sleep(min(1.0, timeout / 4))
        for conn in silent(list(executors.values()), timeout, time.monotonic()):
            conn.silent = True
            log.warning("executor %s: not heard from for %.1fs (stopped, hung or cut off): "
                        "declaring it lost", conn.id, time.monotonic() - conn.heard_at)
            transport = conn.writer.transport
            transport.abort()
