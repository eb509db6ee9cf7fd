"""Wire protocol between driver and executors.

Frames are a 4-byte big-endian length and a msgpack map with a type key "t". Never pickle.
Handshake (protocol version 1), mutual HMAC-SHA256 over fresh nonces with the app's secret:
  executor -> hello   {v, app, executor, nonce}
  driver   -> challenge {v, nonce, mac}     mac proves the driver knows the secret
  executor -> auth    {mac}                 mac proves the executor knows the secret
  driver   -> welcome {executor_id, states}
Before `auth` verifies, the driver accepts frames of at most PREAUTH_MAX_FRAME bytes and drops
the connection on anything unexpected.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Iterator
from typing import Any

import msgpack

VERSION = 1
HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
PREAUTH_MAX_FRAME = 4096


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame or message."""


def encode(message: dict[str, Any]) -> bytes:
    body: bytes = msgpack.packb(message, use_bin_type=True)
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> dict[str, Any]:
    try:
        message = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"undecodable frame: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise ProtocolError("frame is not a message map with a type")
    return message


class FrameBuffer:
    """Accumulate a byte stream and split it into messages.

    `consumed` is the stream offset where the next frame starts; a frame starting at `skip_at`
    is dropped undecoded (the executor already took it from its doorbell's express slot)."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self.max_frame = max_frame
        self.consumed = 0
        self.skip_at = -1

    def feed(self, data: bytes) -> Iterator[dict[str, Any]]:
        self._buffer += data
        while len(self._buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buffer)
            if length > self.max_frame:
                raise ProtocolError(f"frame of {length} bytes exceeds {self.max_frame}")
            end = HEADER.size + length
            if len(self._buffer) < end:
                return
            body = bytes(self._buffer[HEADER.size:end])
            del self._buffer[:end]
            start, self.consumed = self.consumed, self.consumed + end
            if start != self.skip_at:
                yield decode_body(body)


def new_nonce() -> bytes:
    return secrets.token_bytes(32)


def new_secret() -> str:
    return secrets.token_hex(32)


def _mac(secret: str, *parts: bytes) -> bytes:
    return hmac.new(secret.encode(), b"|".join(parts), hashlib.sha256).digest()


def driver_mac(secret: str, executor_nonce: bytes, driver_nonce: bytes) -> bytes:
    return _mac(secret, b"driver", executor_nonce, driver_nonce)


def executor_mac(secret: str, driver_nonce: bytes, executor_nonce: bytes, name: str) -> bytes:
    return _mac(secret, b"executor", driver_nonce, executor_nonce, name.encode())


def verify(expected: bytes, received: Any) -> bool:
    return isinstance(received, bytes) and hmac.compare_digest(expected, received)
