"""App modules that `neptune_bench.cluster_bench` ships to the cluster's pods in a ConfigMap.

The project image holds the runtime and the operator, not neptune_bench, so a module here is
sent as one self-contained file (`cluster_bench.app_source`): a header that registers copies of
the benchmark modules it needs (work.py, workload.py) and sets the run's settings, then the
module itself. Local mode runs the very same file.
"""
