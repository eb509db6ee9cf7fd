"""The dataflow API: streams of records with keys, event-time windows and aggregations,
compiled to one low-level stream job each (`app.stream(...)`; see `stream`)."""

from .aggregate import Aggregation, count, max, mean, min, reduce, sum
from .errors import DataflowError
from .stream import Aggregated, RoutedSink, Stream, WindowedStream
from .windows import Window, hopping, session, sliding, tumbling

__all__ = ["Aggregated", "Aggregation", "DataflowError", "RoutedSink", "Stream", "Window",
           "WindowedStream", "count", "hopping", "max", "mean", "min", "reduce", "session",
           "sliding", "sum", "tumbling"]
