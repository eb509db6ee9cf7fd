"""The driver: one per application (see core.py for how its parts fit together).

- core.py       the Driver: lifecycle, executor messages, task state, re-runs, scheduling
- session.py    an executor's session: handshake, sealed frames, the silence deadline
- streams.py    events in, micro-batches, outputs handed on, dead letters, commits
- batch.py      batch epochs, combine, published shared state
- placement.py  a policy's decisions as the messages to send (pure)
- figures.py    a job's live figures and state (pure)
"""

from .core import Driver
from .session import ExecutorConn

__all__ = ["Driver", "ExecutorConn"]
