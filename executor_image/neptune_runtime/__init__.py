"""Neptune runtime: suspendable stream/batch Python applications."""

from . import sinks, sources
from .app import App, BatchJob, StreamJob, TaskContext, Trigger
from .yieldpoint import checkpoint, yielding

__all__ = ["App", "BatchJob", "StreamJob", "TaskContext", "Trigger", "checkpoint", "sinks",
           "sources", "yielding"]
