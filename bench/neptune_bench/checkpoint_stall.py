"""What a large checkpoint costs the driver's event loop: a commit of `--keys` changed keys
made the two ways, interleaved, each in a fresh store:

- "thread": CheckpointStore.commit on a worker thread of the loop (asyncio.to_thread), as the
  committer did before checkpoint_writer.py: rocksdict holds the GIL for the whole write;
- "writer": CheckpointWriter.commit on a worker thread, the write made by its child process.

Meanwhile a task on the loop sleeps 1 ms at a time; its lateness is what a stream event that
arrived then would have waited. Per way: the commit's time and the loop's longest wait, p99
wait and ticks.

    PYTHONPATH=bench .venv/bin/python -m neptune_bench.checkpoint_stall --out bench/results
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neptune_runtime.checkpoint_writer import CheckpointWriter
from neptune_runtime.checkpoints import CheckpointStore

from .kafka_bench import bulk_changes, publish, uptime
from .runner import machine
from .summary import spread

WAYS = ("thread", "writer")
TICK = 0.001


async def _watched(commit: Callable[[], None]) -> dict[str, float]:
    """Run `commit` on a worker thread while the loop ticks; ms figures."""
    waits: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(TICK)
            waits.append(time.perf_counter() - before - TICK)

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    await asyncio.to_thread(commit)
    took = time.perf_counter() - started
    done.set()
    await ticker
    waits.sort()
    return {"commit_ms": took * 1e3, "loop_max_wait_ms": waits[-1] * 1e3,
            "loop_p99_wait_ms": waits[int(len(waits) * 0.99)] * 1e3, "ticks": len(waits)}


def one(way: str, keys: int) -> dict[str, float]:
    changes, tokens = bulk_changes(keys), {("agg", 1): 12345}
    with tempfile.TemporaryDirectory(prefix="ckpt-stall-", dir="/var/tmp") as tmp:
        if way == "thread":
            store = CheckpointStore(Path(tmp))
            try:
                return asyncio.run(_watched(lambda: store.commit(changes, tokens)))
            finally:
                store.close()
        writer = CheckpointWriter(Path(tmp))
        writer.start()
        try:
            return asyncio.run(_watched(lambda: writer.commit(changes, tokens)))
        finally:
            writer.close()


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        "# A large checkpoint and the driver's event loop", "",
        f"`PYTHONPATH=bench .venv/bin/python -m neptune_bench.checkpoint_stall --out "
        f"bench/results --keys {cfg['keys']} --reps {cfg['reps']}`", "",
        f"A commit of {cfg['keys']:,} changed keys and a token (one synced RocksDB write "
        "batch) on a worker thread of an asyncio loop, while a task on the loop sleeps 1 ms at "
        "a time: its lateness is what a stream event arriving then would wait. \"thread\": "
        "CheckpointStore.commit on the thread (rocksdict holds the GIL for the whole write); "
        "\"writer\": CheckpointWriter.commit, the write made by its child process "
        f"(checkpoint_writer.py). {cfg['reps']} runs of each, interleaved, each in a fresh "
        f"store; median (min-max). Load average at start {result['uptime_start']}, at end "
        f"{result['uptime_end']}.", "",
        "| way | commit ms | loop's longest wait ms | loop's p99 wait ms |",
        "|---|---|---|---|",
    ]
    for way in WAYS:
        row = result["summary"][way]
        cells = [f"{row[f]['median']:.1f} ({row[f]['min']:.1f}-{row[f]['max']:.1f})"
                 for f in ("commit_ms", "loop_max_wait_ms", "loop_p99_wait_ms")]
        lines.append(f"| {way} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neptune_bench.checkpoint_stall",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print, write no files")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"config": {"keys": args.keys, "reps": args.reps},
                              "uptime_start": uptime(), "runs": []}
    for rep in range(args.reps):
        for way in WAYS:
            figures = one(way, args.keys)
            print(f"[{rep + 1}/{args.reps}] {way:<6} commit {figures['commit_ms']:7.1f} ms, "
                  f"loop waited at most {figures['loop_max_wait_ms']:6.1f} ms", flush=True)
            result["runs"].append({"way": way, **figures})
    result["uptime_end"] = uptime()
    result["machine"] = machine()
    result["summary"] = {way: {f: spread(r[f] for r in result["runs"] if r["way"] == way)
                               for f in ("commit_ms", "loop_max_wait_ms", "loop_p99_wait_ms")}
                         for way in WAYS}
    publish(result, markdown(result), None if args.no_write else args.out, "checkpoint_stall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
