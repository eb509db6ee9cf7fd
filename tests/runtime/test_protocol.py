from __future__ import annotations

import gc

import msgpack
import pytest

from neptune_runtime import protocol


def test_frames_split_across_reads() -> None:
    data = protocol.encode({"t": "a", "n": 1}) + protocol.encode({"t": "b", "blob": b"\x00" * 10})
    buffer = protocol.FrameBuffer()
    got = []
    for i in range(len(data)):
        got += list(buffer.feed(data[i:i + 1]))
    assert got == [{"t": "a", "n": 1}, {"t": "b", "blob": b"\x00" * 10}]


def test_a_frame_taken_from_the_express_slot_is_skipped_by_its_offset() -> None:
    first, second, third = (protocol.encode({"t": t}) for t in ("a", "run", "c"))
    buffer = protocol.FrameBuffer()
    assert list(buffer.feed(first)) == [{"t": "a"}]
    assert buffer.consumed == len(first)  # where the express copy of `second` says it starts
    buffer.skip_at = buffer.consumed
    assert list(buffer.feed(second[:3])) == []
    assert list(buffer.feed(second[3:] + third)) == [{"t": "c"}]
    assert buffer.consumed == len(first + second + third)


def test_oversized_frame_is_refused() -> None:
    buffer = protocol.FrameBuffer(max_frame=16)
    with pytest.raises(protocol.ProtocolError, match="exceeds 16"):
        list(buffer.feed(protocol.encode({"t": "x", "pad": "y" * 100})))


@pytest.mark.parametrize(
    "body", [b"\xc1", protocol.encode({"no": "type"})[4:], b"\x93\x01\x02\x03"])
def test_undecodable_or_untyped_frames_are_refused(body: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_body(body)


def test_macs_bind_secret_nonces_and_name() -> None:
    a, b = protocol.new_nonce(), protocol.new_nonce()
    mac = protocol.executor_mac("s3cret", a, b, "exec-0")
    assert protocol.verify(mac, protocol.executor_mac("s3cret", a, b, "exec-0"))
    assert not protocol.verify(mac, protocol.executor_mac("other", a, b, "exec-0"))
    assert not protocol.verify(mac, protocol.executor_mac("s3cret", a, b, "exec-1"))
    assert not protocol.verify(mac, protocol.executor_mac("s3cret", b, a, "exec-0"))
    # the driver's proof is never accepted as an executor's
    assert not protocol.verify(mac, protocol.driver_mac("s3cret", b, a))
    assert not protocol.verify(mac, "not bytes")


@pytest.mark.parametrize("collecting", [True, False])
def test_a_large_frame_decodes_and_leaves_the_collector_as_it_was(collecting: bool) -> None:
    changes = [["n", f"k{i}", [1, i]] for i in range(100_000)]
    body = msgpack.packb({"t": "finished", "changes": changes}, use_bin_type=True)
    assert len(body) > protocol.LARGE_BODY
    if not collecting:
        gc.disable()
    try:
        assert protocol.decode_body(body)["changes"] == changes
        with pytest.raises(protocol.ProtocolError):
            protocol.decode_body(body[:-1])  # truncated
        assert gc.isenabled() == collecting
    finally:
        gc.enable()
