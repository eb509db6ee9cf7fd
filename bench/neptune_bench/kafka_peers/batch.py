"""The batch job of the peers, as a process of its own beside the stream process (what a Quix
Streams or Spark user would run): `python -m neptune_bench.kafka_peers.batch LOG RECORDS LOOPS
CPU`. Batch tasks of RECORDS records of `work` (neptune_bench.peers.common.batch_task, the
same work and record count as our batch job), one after another on CPU at normal priority,
each appending "end_time records" to LOG, until SIGTERM.
"""

from __future__ import annotations

import signal
import sys

from neptune_bench.peers.common import batch_task


def main() -> None:
    log, records, loops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cpu = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    seed = 0
    while True:
        batch_task(seed, records, loops, log, cpu)
        seed += 1


if __name__ == "__main__":
    main()
