from __future__ import annotations

from typing import Any

from neptune_runtime import App, sources
from neptune_runtime.app import BatchJob, StreamJob, Trigger
from neptune_runtime.jobconfig import apply_job_settings


def make_app() -> App:
    app = App("demo")
    app.stream_job("score", source=sources.Synthetic(rate=5.0), task=lambda c, r: [],
                   slo="20ms")
    app.batch_job("train", read=lambda p, e: [], task=lambda c, r: 0, partitions=4)
    return app


def test_settings_from_the_resource_override_the_module() -> None:
    app = make_app()
    doc: dict[str, Any] = {"jobs": {
        "score": {"kind": "stream", "slo": "5ms", "trigger": "100ms", "source": "http"},
        "train": {"kind": "batch", "partitions": 16}}}
    assert apply_job_settings(app, doc) == []
    score, train = app.jobs["score"], app.jobs["train"]
    assert isinstance(score, StreamJob) and isinstance(train, BatchJob)
    assert score.slo == 0.005
    assert score.trigger == Trigger(0.1)
    assert isinstance(score.source, sources.HttpIngest)
    assert train.partitions == 16


def test_mismatches_are_reported_not_raised() -> None:
    app = make_app()
    problems = apply_job_settings(app, {"jobs": {
        "missing": {"kind": "stream", "slo": "1s"},
        "train": {"kind": "stream", "slo": "1s"},
        "score": {"kind": "stream", "slo": "soon", "source": "kafka"}}})
    assert problems == [
        "job 'missing' is in the resource but the app module declares only score, train",
        "job 'train' is a batch job in the app module, not stream as the resource says",
        "job 'score': slo: 'soon' is not a duration (use a number and a unit: us, ms, s, m, h)",
    ]
    score = app.jobs["score"]
    assert isinstance(score, StreamJob) and score.slo == 0.02  # untouched


def test_unknown_source_names_are_reported() -> None:
    app = make_app()
    assert apply_job_settings(app, {"jobs": {"score": {"source": "kafka"}}}) == [
        "job 'score': source 'kafka' cannot be set from the resource (only 'http'); "
        "keeping the module's synthetic source"]
