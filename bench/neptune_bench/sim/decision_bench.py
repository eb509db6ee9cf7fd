"""How long one placement decision takes for a large snapshot (a benchmark, not a unit test).

The snapshot is the one the simulator meets at scale: every executor busy with a batch task,
some holding suspended tasks, cached partitions, and a ready queue of stream tasks (which must
preempt) followed by batch tasks (which must wait). Reports the median and p99 over repetitions
of one policy call, per policy and queue length.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from typing import Any

from neptune_runtime.policies import POLICIES, ExecutorView, Snapshot, TaskView


def snapshot(executors: int, stream: int, batch: int, seed: int = 3) -> Snapshot:
    rng = random.Random(seed)
    views = []
    for i in range(executors):
        running = TaskView(f"b{i}", "batch", "batch", 0, rng.uniform(0, 10), i % 64,
                           rng.randint(0, 3), rng.uniform(9, 10))
        suspended = tuple(
            TaskView(f"s{i}-{k}", "batch", "batch", 0, rng.uniform(0, 10), (i + k) % 64, 1, 5.0)
            for k in range(rng.choice((0, 0, 0, 1, 2))))
        views.append(ExecutorView(
            f"e{i:04d}", running, suspended, rng.randint(200, 3000) << 20, 4096 << 20,
            frozenset(("batch", (i + k) % 64) for k in range(4))))
    queue = tuple(TaskView(f"q{j}", "stream", "stream", 10, 10.0 + j * 1e-3)
                  for j in range(stream))
    queue += tuple(TaskView(f"w{j}", "batch", "batch", 0, 10.0 + j * 1e-3, j % 64)
                   for j in range(batch))
    return Snapshot(10.5, tuple(views), queue)


def measure(policy: str, snap: Snapshot, repetitions: int) -> dict[str, float]:
    decide = POLICIES[policy].decide
    decide(snap)  # warm
    times = []
    for _ in range(repetitions):
        began = time.perf_counter()
        decide(snap)
        times.append(time.perf_counter() - began)
    times.sort()
    return {"median_ms": statistics.median(times) * 1e3,
            "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1e3,
            "decisions": float(len(decide(snap)))}


def run(executors: int, queues: list[tuple[int, int]], repetitions: int) -> dict[str, Any]:
    rows = []
    for stream, batch in queues:
        snap = snapshot(executors, stream, batch)
        for policy in POLICIES:
            rows.append({"policy": policy, "executors": executors, "stream_queued": stream,
                         "batch_queued": batch, **measure(policy, snap, repetitions)})
            print(f"  {policy:<8} {executors} executors, queue {stream} stream + {batch} batch:"
                  f" median {rows[-1]['median_ms']:.3f} ms, p99 {rows[-1]['p99_ms']:.3f} ms",
                  file=sys.stderr)
    return {"rows": rows, "python": sys.version.split()[0], "loadavg": list(os.getloadavg())}


def markdown(result: dict[str, Any]) -> str:
    lines = ["# One placement decision on a large snapshot", "",
             "Every executor busy with a batch task; the queue holds stream tasks (which must "
             "preempt) and batch tasks (which must wait). Wall time of one policy call, "
             f"Python {result['python']}, load average "
             f"{', '.join(f'{v:.2f}' for v in result['loadavg'])}.", "",
             "| policy | executors | queued stream + batch | median ms | p99 ms |",
             "|---|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['policy']} | {row['executors']} | {row['stream_queued']} + "
                     f"{row['batch_queued']} | {row['median_ms']:.3f} | {row['p99_ms']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executors", type=int, default=1000)
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    queues = [(1, 0), (4, 0), (1, 10), (1, 100), (4, 1000)]
    result = run(args.executors, queues, args.repetitions)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
        with open(os.path.splitext(args.json)[0] + ".md", "w") as handle:
            handle.write(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
