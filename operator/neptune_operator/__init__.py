"""The Neptune operator: ContinuousApplication resources become driver and executor pods.

Pure logic (schema, render, specdiff, ranking, feedback, status) is kept apart from the
kopf wiring (handlers, main) so that it can be unit-tested without a cluster.
"""
