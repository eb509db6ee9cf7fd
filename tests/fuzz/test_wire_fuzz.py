"""A wire fuzzer: whatever a peer sends, the frame decoder and every message handler of both
sides raise nothing but ProtocolError (which both answer with a counted disconnect).

Frames are fuzzed as raw bytes, sealed or not; messages as maps of the real field names with
values of any type, so that the checks and the handlers behind them are both reached.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from neptune_runtime import protocol
from neptune_runtime.app import App
from neptune_runtime.driver import Driver, ExecutorConn
from neptune_runtime.executor import Executor
from neptune_runtime.sources import HttpIngest

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(),
                    st.text(max_size=12), st.binary(max_size=40))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def messages(shapes: dict[str, protocol.Fields]) -> st.SearchStrategy[dict[str, Any]]:
    """Maps with a real (or unknown) type and some of its fields, of any type, or of the
    right type (so that a message that passes the check reaches the handler)."""
    def of(kind: str) -> st.SearchStrategy[dict[str, Any]]:
        fields = shapes.get(kind, {})
        right = {n: st.one_of(values, _typed(types)) for n, (types, _, _) in fields.items()}
        return st.fixed_dictionaries({"t": st.just(kind)}, optional=right)
    return st.sampled_from([*shapes, "bogus"]).flatmap(of)


def _typed(types: tuple[type, ...]) -> st.SearchStrategy[Any]:
    pick = {str: st.sampled_from(["events", "sums", "x", "stream", "batch", "suspend", "kill"]),
            int: st.integers(-1, 3), float: st.floats(0, 1), list: st.lists(values, max_size=3),
            dict: st.dictionaries(st.text(max_size=6), values, max_size=3), bytes: st.binary()}
    return st.one_of(*(pick.get(t, values) for t in types))


class _Writer:
    """Where the driver's sends to a fuzzed executor go (nowhere)."""

    transport = None

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def _app() -> App:
    app = App("fuzz")
    app.stream_job("events", source=HttpIngest(), task=lambda ctx, r: list(r), slo="1s")
    app.batch_job("sums", read=lambda p, e: range(3), task=lambda ctx, r: sum(r), partitions=2,
                  combine=lambda results, prev: sum(results), publishes="sums", initial_state=0)
    return app


@given(st.binary(max_size=200), st.booleans())
def test_the_frame_decoder_raises_only_protocol_errors(data: bytes, sealed: bool) -> None:
    frames = protocol.FrameBuffer(max_frame=1 << 12)
    if sealed:
        frames.opener = protocol.Opener(b"k" * 32)
    try:
        for message in frames.feed(data):
            assert isinstance(message, dict) and isinstance(message["t"], str)
    except protocol.ProtocolError:
        pass


@given(messages(protocol.FROM_DRIVER))
def test_the_executor_handles_any_driver_message_or_refuses_it(message: dict[str, Any]) -> None:
    executor = Executor(_app(), "fuzz", ("127.0.0.1", 1), "secret", "e")
    ours, theirs = socket.socketpair()  # where its answers (a fetched shuffle output) go
    executor.link.sock = ours
    try:
        executor._handle(message)
    except protocol.ProtocolError:
        return
    finally:
        ours.close()
        theirs.close()
    assert message["t"] in protocol.FROM_DRIVER


@given(st.lists(messages(protocol.FROM_EXECUTOR), max_size=6))
def test_the_driver_handles_any_executor_message_or_refuses_it(
        batch: list[dict[str, Any]]) -> None:
    async def go() -> None:
        driver = Driver(_app(), "secret", warm_us=0)
        driver.sources_started = True  # no sources: this is about the messages
        driver.batches.start()
        conn = ExecutorConn("e", _Writer(), protocol.Sealer(b"k" * 32))  # type: ignore[arg-type]
        driver.executors["e"] = conn
        conn.ready = True
        driver.schedule()
        tasks = list(driver.table.tasks)
        for message in batch:
            if "id" in message and tasks and message["id"] == "x":
                message["id"] = tasks[0]  # a real task's id, sometimes
            try:
                driver._on_message(conn, protocol.check(message, protocol.FROM_EXECUTOR))
            except protocol.ProtocolError:
                continue

    asyncio.run(go())
