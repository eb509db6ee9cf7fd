"""The Bytewax peer of the window benchmark, with in-memory input (Bytewax's own TestingSource):
`python -m neptune_bench.kafka_peers.bytewax_flow EVENTS CPU`. The same window events as the
Kafka systems (kafka_peers.window_event, decoded from the same JSON bytes, so that the parse is
part of the work) -> count_window(TumblingWindower(WINDOW_MS), EventClock over "ts" with 10 s
of wait, keyed by "key") -> an output that counts. One worker, pinned to CPU. Prints one JSON
line:
{"events", "seconds", "events_per_s", "windows" (distinct key and window), "counted"
(the windows' counts added up)}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from neptune_bench import kafka_peers as kp


def main() -> None:
    import bytewax.operators as op
    import bytewax.operators.windowing as win
    from bytewax.dataflow import Dataflow
    from bytewax.outputs import DynamicSink, StatelessSinkPartition
    from bytewax.run import cli_main
    from bytewax.testing import TestingSource

    events, cpu = int(sys.argv[1]), sys.argv[2]
    if cpu != "-":
        os.sched_setaffinity(0, {int(cpu)})
    raw = [kp.dumps(kp.window_event(i)) for i in range(events)]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    windows: set[tuple[str, int]] = set()
    counted = [0]

    class Part(StatelessSinkPartition[Any]):
        def write_batch(self, items: list[Any]) -> None:
            for key, (window_id, count) in items:
                windows.add((key, window_id))
                counted[0] += count

    class Count(DynamicSink[Any]):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> Part:
            return Part()

    flow = Dataflow("windows")
    up = op.input("in", flow, TestingSource(raw, batch_size=1000))
    parsed = op.map("parse", up, json.loads)
    clock: Any = win.EventClock(lambda e: epoch + timedelta(milliseconds=e["ts"]),
                           wait_for_system_duration=timedelta(seconds=10))
    counts = win.count_window("count", parsed, clock,
                               win.TumblingWindower(timedelta(milliseconds=kp.WINDOW_MS), epoch),
                               key=lambda e: e["key"])
    op.output("out", counts.down, Count())
    started = time.perf_counter()
    cli_main(flow, workers_per_process=1)
    seconds = time.perf_counter() - started
    print(json.dumps({"events": events, "seconds": seconds, "events_per_s": events / seconds,
                      "windows": len(windows), "counted": counted[0]}), flush=True)


if __name__ == "__main__":
    main()
