"""Wire protocol between driver and executors.

Frames are a 4-byte big-endian length and a body; a body is a msgpack map with a type key "t".
Never pickle. Handshake (protocol version 2), in the clear, mutual HMAC-SHA256 over fresh nonces
with the app's secret:
  executor -> hello   {v, app, executor, nonce}
  driver   -> challenge {v, nonce, mac}     mac proves the driver knows the secret
  executor -> auth    {mac}                 mac proves the executor knows the secret
Both sides then derive one key per direction from the secret, both nonces and the executor's
name (`session_keys`), and every later frame, from the driver's `welcome {executor_id, states}`
on, is sealed with AES-GCM under its direction's key and a frame counter as nonce (`Sealer`,
`Opener`). So the session is bound to the handshake: a peer that relays a handshake without the
secret can neither read nor forge a frame of the session it relayed, and records and state are
not readable on the network. Before `auth` verifies, the driver accepts frames of at most
PREAUTH_MAX_FRAME bytes and drops the connection on anything unexpected. After it, every message
is checked against its type's fields (`check`) before anything acts on it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import collector

VERSION = 2
HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
PREAUTH_MAX_FRAME = 4096
NONCE_BYTES = 32
TAG_BYTES = 16


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame or message."""


class Sealer:
    """Seals the bodies of one direction's frames, numbering them from 0."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.count = 0

    def seal(self, body: bytes) -> bytes:
        nonce = self.count.to_bytes(12, "little")
        self.count += 1
        return self._aead.encrypt(nonce, body, None)


class Opener:
    """Opens the other direction's sealed bodies, in order; `skip` passes one unopened."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.count = 0

    def open(self, sealed: bytes) -> bytes:
        nonce = self.count.to_bytes(12, "little")
        self.count += 1
        try:
            return self._aead.decrypt(nonce, sealed, None)
        except InvalidTag:
            raise ProtocolError("a frame failed authentication (forged, altered, replayed "
                                "or out of order)") from None

    def skip(self) -> None:
        self.count += 1


def pack(message: dict[str, Any]) -> bytes:
    """A message's body, not sealed yet. Raises TypeError for what msgpack cannot encode."""
    body: bytes = msgpack.packb(message, use_bin_type=True)
    return body


def encode(message: dict[str, Any], sealer: Sealer | None = None) -> bytes:
    body = pack(message)
    if sealer is not None:
        body = sealer.seal(body)
    return HEADER.pack(len(body)) + body


LARGE_BODY = 1 << 20  # a frame past this unpacks with the collector paused (collector.py)


def decode_body(body: bytes) -> dict[str, Any]:
    try:
        with collector.paused(len(body) > LARGE_BODY):
            message = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(f"undecodable frame: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise ProtocolError("frame is not a message map with a type")
    return message


class FrameBuffer:
    """Accumulate a byte stream and split it into messages, opening sealed frames once an
    `opener` is set.

    `consumed` is the stream offset where the next frame starts; a frame starting at `skip_at`
    is dropped unopened and undecoded (the executor already took it from its doorbell's express
    slot, a channel of its own host)."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self.max_frame = max_frame
        self.consumed = 0
        self.skip_at = -1
        self.opener: Opener | None = None

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
            opener = self.opener
            if start == self.skip_at:
                if opener is not None:
                    opener.skip()
                continue
            yield decode_body(body if opener is None else opener.open(body))


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def new_secret() -> str:
    return secrets.token_hex(32)


def _mac(secret: str, *parts: bytes) -> bytes:
    return hmac.new(secret.encode(), b"|".join(parts), hashlib.sha256).digest()


_V = str(VERSION).encode()


def driver_mac(secret: str, executor_nonce: bytes, driver_nonce: bytes) -> bytes:
    return _mac(secret, b"driver", _V, executor_nonce, driver_nonce)


def executor_mac(secret: str, driver_nonce: bytes, executor_nonce: bytes, name: str) -> bytes:
    return _mac(secret, b"executor", _V, driver_nonce, executor_nonce, name.encode())


def verify(expected: bytes, received: Any) -> bool:
    return isinstance(received, bytes) and hmac.compare_digest(expected, received)


def session_keys(secret: str, executor_nonce: bytes, driver_nonce: bytes,
                 name: str) -> tuple[bytes, bytes]:
    """(driver-to-executor key, executor-to-driver key): HKDF-SHA256 (RFC 5869) of the secret,
    salted with both nonces, one expansion per direction."""
    prk = hmac.new(executor_nonce + driver_nonce, secret.encode(), hashlib.sha256).digest()

    def expand(direction: bytes) -> bytes:
        info = b"neptune/" + _V + b" " + direction + b" " + name.encode()
        return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()

    return expand(b"driver->executor"), expand(b"executor->driver")


# -- message shapes ------------------------------------------------------------------------
# Every field of every message after the handshake: name -> (accepted types, required, least
# value for numbers or None). A message of an unknown type, a missing required field, a field
# of another type or a number below its least is a ProtocolError, which both sides answer with
# a counted disconnect.
Fields = Mapping[str, tuple[tuple[type, ...], bool, int | None]]
ANY = (object,)
_ID = ((str,), True, None)
_COUNT = ((int,), True, 0)
_SECONDS = ((float, int), True, 0)

FROM_DRIVER: dict[str, Fields] = {
    "welcome": {"executor_id": _ID, "preempts": ((str,), True, None),
                "states": ((dict,), True, None)},
    "run": {"id": _ID, "job": _ID, "kind": ((str,), True, None), "priority": ((int,), True, None),
            "partition": ((int,), True, -1), "epoch": _COUNT, "attempt": _COUNT,
            "records": ((list,), False, None), "victim": ((str,), False, None),
            "action": ((str,), False, None), "more": ((int,), False, 0),
            "stage": ((int,), False, 0)},
    "resume": {"id": _ID},
    "kill": {"id": _ID},
    "state": {"name": _ID, "version": _COUNT, "value": (ANY, True, None)},
    "restore": {"job": _ID, "partition": _COUNT, "changes": ((list,), True, None),
                "add": ((bool,), False, None)},
    "fetch": {"job": _ID, "epoch": _COUNT, "stage": _COUNT, "partition": _COUNT},
    "bell": {},
    "forewarn": {},
}
# In the running task's greenlet, from the doorbell's express slot or from the socket; or in
# the hub, after the task switched to it.
SUSPENDED_VIA = ("express", "socket", "hub")
FROM_EXECUTOR: dict[str, Fields] = {
    "ready": {"memory_limit": _COUNT, "pid": _COUNT, "bell": ((dict,), False, None),
              "forewarn": ((bool,), False, None)},
    "heartbeat": {"memory": _COUNT, "memory_limit": _COUNT, "partitions": ((list,), True, None)},
    "bye": {},
    # noticed_ns: of a preempting task's wait, until a yield point noticed its `run` coming;
    # span_ns: how long the task it preempted had gone since the tune before that yield point
    "started": {"id": _ID, "ns": ((int,), True, None), "waited_ns": ((int,), True, None),
                "noticed_ns": ((int,), False, None), "span_ns": ((int,), False, None)},
    "resumed": {"id": _ID},
    # via: where the executor took the preempting `run` (SUSPENDED_VIA); older ones omit it
    "suspended": {"id": _ID, "ns": ((int,), True, None), "via": ((str,), False, None)},
    "finished": {"id": _ID, "result": (ANY, True, None), "records": _COUNT, "elapsed": _SECONDS,
                 "gap_ns": ((int,), False, 0), "changes": ((list,), False, None)},
    "failed": {"id": _ID, "error": ((str,), True, None)},
    # a keyed task's body ended and its slot is free; its changes follow, then its `finished`
    "shipping": {"id": _ID},
    "changes": {"id": _ID, "changes": ((list,), True, None)},
    "killed": {"id": _ID, "ran_s": _SECONDS},
    # a fetched shuffle output: [[bucket, records], ...], or nil when it is not there
    "shuffle": {"job": _ID, "epoch": _COUNT, "stage": _COUNT, "partition": _COUNT,
                "buckets": ((list,), False, None)},
}


def _checker(kind: str, fields: Fields) -> Callable[[dict[str, Any]], bool]:
    """A straight-line check of one message type, made from its fields: the preemption path
    checks a `run` cold, and the loop of `_problem` cost ~30 us there, this ~10 us (names as
    constants, types as locals: every dictionary lookup is a cold cache line)."""
    params, body = ["m"], ["    g = m.get"]
    for i, (name, (types, required, least)) in enumerate(fields.items()):
        body.append(f"    v = g({name!r})")
        if types is ANY:
            if required:
                body.append(f"    if v is None and {name!r} not in m: return False")
            continue
        params.append(f"T{i}=T{i}")
        test = f"type(v) is not T{i}" if len(types) == 1 else f"type(v) not in T{i}"
        body.append(f"    if v is None: {'return False' if required else 'pass'}")
        body.append(f"    elif {test}: return False")
        if least is not None:
            body.append(f"    elif not v >= {least}: return False")
    namespace: dict[str, Any] = {f"T{i}": (types[0] if len(types) == 1 else types)
                                 for i, (types, _, _) in enumerate(fields.values())}
    source = "\n".join([f"def ok({', '.join(params)}):", *body, "    return True"])
    exec(source, namespace)  # code made from the tables above
    made: Callable[[dict[str, Any]], bool] = namespace["ok"]
    return made


def _problem(message: dict[str, Any], fields: Fields) -> str:
    """What is wrong with a message that failed its check (the slow way, only then)."""
    for name, (types, required, least) in fields.items():
        value = message.get(name)
        if value is None:
            if required and (types is not ANY or name not in message):
                return f"missing field {name!r}"
        elif types is not ANY and type(value) not in types:
            return f"field {name!r} is a {type(value).__name__}"
        elif least is not None and not value >= least:
            return f"field {name!r} is {value!r}, below {least}"
    return "invalid"


_CHECKERS = {id(shapes): {kind: _checker(kind, fields) for kind, fields in shapes.items()}
             for shapes in (FROM_DRIVER, FROM_EXECUTOR)}


def check(message: dict[str, Any], shapes: Mapping[str, Fields]) -> dict[str, Any]:
    """The message, if its type is one of `shapes` (FROM_DRIVER or FROM_EXECUTOR) and its
    fields are as that type says; ProtocolError naming the first problem otherwise."""
    kind = message["t"]
    checker = _CHECKERS[id(shapes)].get(kind)
    if checker is None:
        raise ProtocolError(f"unexpected message type {kind!r}")
    if not checker(message):
        raise ProtocolError(f"{kind}: {_problem(message, shapes[kind])}")
    return message
