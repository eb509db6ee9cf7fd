"""The executor: one process, one slot, every task in its own greenlet.

- core.py     the Executor: the hub's loop, draining the driver's messages, reconnecting
- link.py     the connection: connect with retries, handshake, sealed frames, heartbeats
- hub.py      what the driver's messages do to the slot (no sockets: unit-tested)
- runner.py   task greenlets: launch, step, finish, reuse
- express.py  the express path: a preemption taken at the yield point, and its rehearsal
- task.py     the record of one task
- metrics.py  the executor's Prometheus metrics
"""

from .core import Executor, run_executor
from .link import DriverLost, ExecutorError

__all__ = ["DriverLost", "Executor", "ExecutorError", "run_executor"]
