"""The driver's copy of keyed state (driver/streams.py): fresh changes applied by the copier
between other work, or all at once when the lane is placed on a new owner."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack

from neptune_runtime import App, sinks, sources
from neptune_runtime.bodies import IngestLimits
from neptune_runtime.driver.figures import JobStats
from neptune_runtime.driver.streams import Streams
from neptune_runtime.keyed import CHUNK, packed
from neptune_runtime.tasks import Task

from .changes import pack


def _streams() -> Streams:
    app = App("copy")
    app.stream_job("agg", source=sources.HttpIngest(), task=lambda ctx, events: [], slo="1s",
                   keyed=True, sink=sinks.JsonLines("/dev/null"))
    jobs = list(app.stream_jobs())
    return Streams(host=None, jobs=jobs, stats={"agg": JobStats()},  # type: ignore[arg-type]
                   saved={}, state_dir=None, limits=IngestLimits(),
                   state={("agg", 0): {"n": {"old": [0], "gone": [1]}}})


def _restored(messages: list[dict[str, Any]]) -> dict[str, dict[Any, Any]]:
    """What a new owner holds after the `restore` messages, as it decodes them."""
    state: dict[str, dict[Any, Any]] = {}
    for message in messages:
        wire = msgpack.unpackb(msgpack.packb(message["maps"], use_bin_type=True), raw=False,
                               strict_map_key=False)
        if not message["add"]:
            state = {}
        for name, entries in wire.items():
            state.setdefault(name, {}).update(dict(entries))
    return state


def test_a_lane_placed_anew_gets_every_finished_change_the_copier_had_not_applied() -> None:
    streams = _streams()
    lane = streams.jobs["agg"].lane(0)
    lane.fresh.extend(pack([["n", "gone", None], ["n", "new", [2]]]))
    lane.fresh.extend(packed("n", {i: [i] for i in range(2 * CHUNK)}))
    task = Task(id="agg-1", job="agg", kind="stream", priority=1, ready_at=0.0, partition=0)
    restored = _restored(streams.placing(task, "exec-1"))
    expected: dict[Any, Any] = {"old": [0], "new": [2], **{i: [i] for i in range(2 * CHUNK)}}
    assert restored == {"n": expected}
    assert not lane.fresh and streams.placing(task, "exec-1") == [], "its owner holds it now"


def test_the_copier_applies_fresh_changes_in_order_and_lets_the_loop_run() -> None:
    streams = _streams()
    lane = streams.jobs["agg"].lane(0)
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while lane.fresh:
            turns += 1
            await asyncio.sleep(0)

    async def run() -> None:
        copier = asyncio.ensure_future(streams.copier())
        lane.fresh.extend(packed("n", {i: [i] for i in range(40 * CHUNK)}))
        lane.fresh.extend(pack([["n", 0, None], ["n", "old", [9]]]))
        streams._fresh.set()
        await asyncio.wait_for(other_work(), 60)
        copier.cancel()

    asyncio.run(run())
    expected: dict[Any, Any] = {"old": (9,), "gone": [1],
                                **{i: (i,) for i in range(1, 40 * CHUNK)}}
    assert lane.state == {"n": expected}, "the later change wins; the removal holds"
    assert turns >= 40, "the copier gave the loop turns between its slices"
