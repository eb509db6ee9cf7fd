"""The Quix Streams peer: `python -m neptune_bench.kafka_peers.quix_app CONFIG_JSON`, run by the
Quix virtualenv's Python (Quix Streams pins confluent-kafka < 2.13, the project >= 2.16).

CONFIG: {"mode": "keyed" | "window", "bootstrap", "in", "out", "group", "state_dir",
"executor_cpu", "driver_cpu", "guarantee"}. Quix's defaults otherwise (a commit every 5 s,
state in RocksDB with its changelog topic), as its users run it.
- keyed: per message, the key's running [count, sum] in Quix's state (`apply(stateful=True)`,
  the same kafka_peers.aggregate as ours), the output record to `out`;
- window: `tumbling_window(WINDOW_MS).count().final()` over the event time "ts".
The Python work runs on `executor_cpu`: once its threads exist, the main thread (where Quix runs
every callback) is pinned there and librdkafka's threads to `driver_cpu`, as our driver (Kafka
I/O) and executor (the work) are split.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from typing import Any

from neptune_bench import kafka_peers as kp


def repin(main_cpu: int | None, other_cpu: int | None, seconds: float = 10.0) -> None:
    """Pin the main thread to `main_cpu` and every other thread to `other_cpu`, again every
    0.5 s for `seconds` (threads that librdkafka starts later are caught too)."""
    if main_cpu is None:
        return
    main = os.getpid()
    me = threading.get_native_id()

    def run() -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for tid in os.listdir("/proc/self/task"):
                cpu = main_cpu if int(tid) == main else other_cpu
                if cpu is not None and int(tid) != me:
                    with contextlib.suppress(OSError):
                        os.sched_setaffinity(int(tid), {cpu})
            time.sleep(0.5)

    threading.Thread(target=run, daemon=True).start()


def main() -> None:
    from quixstreams import Application, State  # type: ignore[import-not-found, unused-ignore]

    cfg: dict[str, Any] = json.loads(sys.argv[1])
    app = Application(broker_address=cfg["bootstrap"], consumer_group=cfg["group"],
                      auto_offset_reset="earliest", state_dir=cfg["state_dir"],
                      processing_guarantee=cfg.get("guarantee", "at-least-once"),
                      loglevel="WARNING")
    if cfg["mode"] == "keyed":
        source = app.topic(cfg["in"], value_deserializer="json", key_deserializer="str")
        out = app.topic(cfg["out"], value_serializer="json", key_serializer="str")

        def update(value: dict[str, Any], state: State) -> dict[str, Any]:
            new, result = kp.aggregate(state.get("agg"), value)
            state.set("agg", new)
            return result

        sdf = app.dataframe(source).apply(update, stateful=True)
    else:
        source = app.topic(cfg["in"], value_deserializer="json", key_deserializer="str",
                           timestamp_extractor=lambda value, headers, ts, kind: int(value["ts"]))
        out = app.topic(cfg["out"], value_serializer="json", key_serializer="str")
        sdf = app.dataframe(source).tumbling_window(duration_ms=kp.WINDOW_MS).count().final()
    sdf.to_topic(out)
    repin(cfg.get("executor_cpu"), cfg.get("driver_cpu"))
    print("quix running", file=sys.stderr, flush=True)
    app.run()


if __name__ == "__main__":
    main()
