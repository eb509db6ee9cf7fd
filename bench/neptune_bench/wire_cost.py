"""What the sealed wire costs on the preemption path (issue 13, item 10), measured cold.

The executor reads a preempting `run` after ~20 ms of batch work, when none of the path's code
is in the caches; this probe runs the same pure-Python busy loop on the executor's core and
then times one call: the AES-GCM open of a `run` frame (protocol.Opener), its msgpack decode,
and its field check (protocol.check), cold and warm. On one host the express slot carries the
`run` (no open, no decode in Python); across hosts (pods) the open and the decode are on the
path. `python -m neptune_bench.wire_cost --out bench/results`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neptune_runtime import protocol
from neptune_runtime.stats import percentile

RUN = {"t": "run", "id": "score-123", "job": "score", "kind": "stream", "priority": 10,
       "partition": -1, "epoch": 0, "attempt": 0, "records": [{"x": 0.5, "id": 3}],
       "more": 0, "victim": "train-55", "action": "suspend"}


def _busy(seconds: float) -> None:
    end, x = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        x = (x * 31 + 1) & 0xFFFF


def timed(call: Callable[[int], Any], samples: int, cold: bool) -> dict[str, float]:
    times = []
    for i in range(samples):
        if cold:
            _busy(0.02)
        start = time.perf_counter_ns()
        call(i)
        times.append((time.perf_counter_ns() - start) / 1000)
    times.sort()
    return {q: round(percentile(times, p), 1) for q, p in (("p50", 50), ("p90", 90),
                                                            ("p99", 99))}


def measure(samples: int = 300) -> dict[str, Any]:
    key = os.urandom(32)
    sealer, opener = protocol.Sealer(key), protocol.Opener(key)
    frames = [protocol.encode(RUN, sealer)[4:] for _ in range(4 * samples)]
    plain = protocol.encode(RUN)[4:]
    out: dict[str, Any] = {}
    for cold in (True, False):
        batch = frames[:samples] if cold else frames[2 * samples:3 * samples]

        def open_one(i: int, batch: list[bytes] = batch) -> bytes:
            return opener.open(batch[i])

        out["cold" if cold else "warm"] = {
            "aes_gcm_open_us": timed(open_one, samples, cold),
            "decode_us": timed(lambda i: protocol.decode_body(plain), samples, cold),
            "check_us": timed(lambda i: protocol.check(RUN, protocol.FROM_DRIVER), samples,
                              cold),
        }
        opener.count = 2 * samples  # the warm half's frames are numbered from here
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = ["| step | cold p50 | cold p90 | cold p99 | warm p50 | warm p99 |",
             "|---|---:|---:|---:|---:|---:|"]
    for step in ("aes_gcm_open_us", "decode_us", "check_us"):
        c, w = result["cold"][step], result["warm"][step]
        lines.append(f"| {step.removesuffix('_us')} | {c['p50']} us | {c['p90']} us | "
                     f"{c['p99']} us | {w['p50']} us | {w['p99']} us |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neptune_bench.wire_cost")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})  # the benchmark's executor core
    runs = [measure() for _ in range(args.repetitions)]
    text = "\n\n".join(f"Run {i + 1} (load average {os.getloadavg()[0]:.2f}):\n\n{markdown(r)}"
                       for i, r in enumerate(runs))
    Path(args.out, "wire_cost.json").write_text(json.dumps(runs, indent=2) + "\n")
    Path(args.out, "wire_cost.md").write_text(
        "# The sealed wire on the preemption path (neptune_bench.wire_cost)\n\n"
        "One call each after 20 ms of busy Python on the executor's core (cold) and back to "
        "back (warm). On one host a preempting run comes through the express slot: none of "
        "these run on the path. Across hosts the open and the decode do.\n\n" + text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
