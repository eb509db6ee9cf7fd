"""Histogram buckets, shared by the driver's metrics (metrics.py) and the executors'
(executor/metrics.py), which live in different processes and registries."""

# Sub-millisecond buckets: suspension takes microseconds, prometheus' default starts at 5 ms.
FAST_BUCKETS = (
    10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
    1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0, 10.0,
)
TASK_BUCKETS = (1e-3, 5e-3, 10e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
