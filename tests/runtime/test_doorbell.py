"""The shared-memory doorbell (real files and mappings) and the driver's rehearsal socket."""

from __future__ import annotations

import os
import shutil
import time
import zlib

import msgpack
import pytest

from neptune_runtime import _yieldcore, hotpath, protocol
from neptune_runtime.doorbell import (
    BODY_AT,
    EXPRESS_MAX,
    SEEN_AT,
    SLOT,
    SLOT_AT,
    VERSION,
    Bell,
    Ringer,
)


def test_a_driver_rings_the_bell_it_was_offered() -> None:
    bell = Bell()
    try:
        check = bell.rung
        ringer = Ringer.attach(bell.path, bell.token)
        assert ringer is not None
        bell.unlink()  # the mapping outlives the name: nothing is left in /dev/shm
        assert not os.path.exists(bell.path)
        assert not check()
        ringer.ring()
        assert check()
        bell.clear()
        assert not check()
        ringer.close()
    finally:
        bell.close()


def test_a_bell_that_is_not_the_offered_one_is_not_attached(tmp_path: os.PathLike[str]) -> None:
    bell = Bell()
    try:
        assert Ringer.attach(bell.path, b"x" * len(bell.token)) is None  # another executor's
        assert Ringer.attach(bell.path + "-gone", bell.token) is None  # another host's
        assert Ringer.attach(bell.path, bell.path) is None  # not even a token
        # a file outside the bell directory is never opened, whatever its name and content
        foreign = os.path.join(str(tmp_path), os.path.basename(bell.path))
        shutil.copy(bell.path, foreign)
        assert Ringer.attach(foreign, bell.token) is None
    finally:
        bell.close()
    assert not os.path.exists(bell.path)


def test_the_rehearsal_sends_through_the_kernel_and_nothing_piles_up() -> None:
    rehearsal = hotpath.Rehearsal()
    try:
        for _ in range(2000):  # far more than a socket buffer, were the frames left unread
            rehearsal.run()
        assert rehearsal.runs == 2000
    finally:
        rehearsal.close()


def _write_raw(bell: Bell, body: bytes, offset: int = 0) -> None:
    """Put any body in the slot, as a driver would (the C writer only writes what it encodes)."""
    with open(bell.path, "r+b", buffering=0) as raw:
        raw.seek(SLOT_AT)
        version = VERSION.unpack(raw.read(VERSION.size))[0] + 2
        raw.seek(BODY_AT)
        raw.write(body)
        raw.seek(SLOT_AT)
        raw.write(SLOT.pack(version, offset, time.monotonic_ns(), len(body), zlib.adler32(body)))


def test_the_express_slot_hands_over_a_message_once(attached: tuple[Bell, Ringer]) -> None:
    bell, ringer = attached
    assert bell.take_express() is None  # nothing written yet
    before = time.monotonic_ns()
    assert ringer.express({"t": "run", "id": "s-1"}, offset=1234)
    assert bell.rung()  # the copy rings by itself
    taken = bell.take_express()
    assert taken is not None
    offset, sent_ns, message = taken
    assert (offset, message) == (1234, {"t": "run", "id": "s-1"})
    assert before <= sent_ns <= time.monotonic_ns()
    assert bell.take_express() is None  # once
    assert not ringer.express({"t": "run", "records": ["x" * EXPRESS_MAX]}, offset=0)
    assert not ringer.express({"t": "run", "x": {1, 2}}, offset=0)  # not msgpack's subset
    assert bell.take_express() is None  # the socket carries those


def test_the_slot_header_is_the_c_struct_in_native_byte_order(
        attached: tuple[Bell, Ringer]) -> None:
    # C writes the header as its struct (native order: the slot never leaves this host);
    # doorbell.SLOT is how Python reads and writes the same bytes
    bell, ringer = attached
    assert SLOT.size == 32 and SLOT_AT + SLOT.size <= SEEN_AT and SEEN_AT + 8 <= BODY_AT
    before = VERSION.unpack_from(bell.mapping, SLOT_AT)[0]
    assert ringer.express({"t": "run"}, offset=0x0102030405060708)
    version, offset, sent_ns, length, checksum = SLOT.unpack_from(bell.mapping, SLOT_AT)
    body = bell.mapping[BODY_AT:BODY_AT + length]
    assert (version, offset, checksum) == (before + 2, 0x0102030405060708, zlib.adler32(body))
    assert 0 < sent_ns <= time.monotonic_ns()
    taken = bell.take_express()
    assert taken is not None
    assert VERSION.unpack_from(bell.mapping, SEEN_AT)[0] == version  # the executor's mark


def test_a_torn_or_corrupt_express_copy_is_ignored(attached: tuple[Bell, Ringer]) -> None:
    bell, ringer = attached
    ringer.express({"t": "run"}, offset=0)
    with open(bell.path, "r+b", buffering=0) as raw:  # a writer half-way: odd version
        raw.seek(SLOT_AT)
        version = VERSION.unpack(raw.read(VERSION.size))[0]
        raw.seek(SLOT_AT)
        raw.write(VERSION.pack(version + 1))
    assert bell.take_express() is None
    ringer.express({"t": "run"}, offset=0)
    with open(bell.path, "r+b", buffering=0) as raw:  # a body that does not match its checksum
        raw.seek(BODY_AT)
        raw.write(b"\x80")
    assert bell.take_express() is None


VALUES = [
    None, True, False, 0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1,
    2**63, 2**64 - 1, -1, -32, -33, -128, -129, -32768, -32769, -2**31, -2**31 - 1, -2**63,
    0.5, -1e300, float("inf"), "", "é", "x" * 31, "x" * 32, "y" * 255, "z" * 256, "w" * 3000,
    b"", b"\x00\xff", b"b" * 300, [], [1, [2, [3]]], list(range(20)), (1, "tuple"), {},
    {"a": {"b": [None]}}, {str(i): i for i in range(20)}, {1: "int keys", 2: b"too"},
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: repr(v)[:40])
def test_the_express_slot_writes_and_reads_as_msgpack_does(attached: tuple[Bell, Ringer],
                                                           value: object) -> None:
    # the C encoder and decoder (a msgpack subset) agree with msgpack byte for byte
    bell, ringer = attached
    message = {"t": "run", "records": [value]}
    assert ringer.express(message, offset=7)
    length = SLOT.unpack_from(bell.mapping, SLOT_AT)[3]
    body = protocol.encode(message)[protocol.HEADER.size:]
    assert bell.mapping[BODY_AT:BODY_AT + length] == body
    taken = bell.take_express()
    assert taken is not None
    assert taken[2] == protocol.decode_body(body)


def test_what_the_express_decoder_cannot_read_is_left_to_the_socket(
        attached: tuple[Bell, Ringer]) -> None:
    bell, ringer = attached
    ext = msgpack.packb({"t": "run", "x": msgpack.ExtType(5, b"e")})
    deep = b"\x81\xa1t" + b"\x91" * 40 + b"\xc0"  # nesting deeper than the decoder goes
    for body in (ext, b"\x81\xa1t", b"\x92\x01\x02", b"\x81\xa1t\xa3run\xc0", deep):
        # an ext type, a truncated map, not a map, a trailing byte, too deep
        _write_raw(bell, body)
        assert bell.take_express() is None
    assert ringer.express({"t": "run"}, offset=0)
    taken = bell.take_express()  # and the slot still works
    assert taken is not None and (taken[0], taken[2]) == (0, {"t": "run"})


def test_a_mapping_smaller_than_a_doorbell_is_refused() -> None:
    small = bytearray(100)
    with pytest.raises(ValueError, match="the doorbell mapping is too small"):
        _yieldcore.take_express(small)
    with pytest.raises(ValueError, match="the doorbell mapping is too small"):
        _yieldcore.express(small, {"t": "run"}, 0)
    with pytest.raises(ValueError, match="the doorbell mapping is too small"):
        _yieldcore.install(None, bell=small)
