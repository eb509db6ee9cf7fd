from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from neptune_runtime import App, sources
from neptune_runtime.app import BatchJob, StreamJob, Trigger
from neptune_runtime.jobconfig import apply_job_settings, is_file_setting


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


def kafka_app(source: Any) -> App:
    app = App("kafka-demo")
    app.stream_job("score", source=source, task=lambda c, r: [], slo="20ms")
    return app


def score_source(app: App) -> sources.Source:
    job = app.jobs["score"]
    assert isinstance(job, StreamJob)
    return job.source


def secret_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    """A Secret as the kubelet mounts it: ..TIMESTAMP/ holds the files, ..data links to it,
    and each key is a link through ..data."""
    root = tmp_path / "kafka-creds"
    stamp = root / "..2026_01_01_00_00_00.000000000"
    stamp.mkdir(parents=True)
    for key, value in files.items():
        (stamp / key).write_text(value)
    (root / "..data").symlink_to(stamp.name)
    for key in files:
        (root / key).symlink_to(f"..data/{key}")
    return root


def test_kafka_from_the_resource_overrides_the_modules_kafka(tmp_path: Path) -> None:
    def decode(data: bytes | None) -> Any:
        return data

    module = sources.Kafka("dev-topic", bootstrap="localhost:9092", group="dev", decode=decode,
                           dead_letter_topic="dlq", config={"auto.offset.reset": "latest",
                                                            "sasl.username": "dev"})
    app = kafka_app(module)
    creds = secret_dir(tmp_path, {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "fraud\n", "sasl.password": "  s3cret\n",
        "ssl.ca.location": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"})
    problems = apply_job_settings(app, {"jobs": {"score": {"kind": "stream", "source": {
        "kafka": {"bootstrapServers": "kafka-0.kafka:9092,kafka-1.kafka:9092",
                  "topic": "transactions", "group": "fraud-score",
                  "secretRef": {"name": "kafka-creds"}, "secretDir": str(creds)}}}}})
    assert problems == []
    source = score_source(app)
    assert isinstance(source, sources.Kafka) and source is not module
    assert (source.topic, source.bootstrap, source.group) == (
        "transactions", "kafka-0.kafka:9092,kafka-1.kafka:9092", "fraud-score")
    assert source.decode is decode and source.dead_letter_topic == "dlq"
    assert source.config == {
        "auto.offset.reset": "latest",  # the module's, kept
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "fraud",  # the Secret's wins, without its newline
        "sasl.password": "s3cret",
        # A file setting: the mounted file's path (through the kubelet's ..data link), whose
        # content is the CA.
        "ssl.ca.location": str(creds / "ssl.ca.location"),
    }
    assert Path(source.config["ssl.ca.location"]).read_text().startswith("-----BEGIN")


def test_kafka_replaces_an_http_source_but_not_another() -> None:
    kafka = {"bootstrapServers": "kafka:9092", "topic": "in", "group": "g"}
    app = kafka_app(sources.HttpIngest())
    assert apply_job_settings(app, {"jobs": {"score": {"source": {"kafka": kafka}}}}) == []
    source = score_source(app)
    assert isinstance(source, sources.Kafka) and source.config == {}
    assert source.decode(b'{"card": 1}') == {"card": 1}  # JSON values, as over HTTP
    synthetic = sources.Synthetic(rate=1.0)
    app = kafka_app(synthetic)
    assert apply_job_settings(app, {"jobs": {"score": {"source": {"kafka": kafka}}}}) == [
        "job 'score': source.kafka can replace a Kafka or an HTTP source of the app module, "
        "not its synthetic source (whose events may not be JSON values); keeping it"]
    assert score_source(app) is synthetic


def test_http_source_object_and_the_old_name() -> None:
    named: tuple[Any, ...] = ({"http": {}}, "http")
    for source in named:
        app = kafka_app(sources.Kafka("t", bootstrap="k:9092", group="g"))
        assert apply_job_settings(app, {"jobs": {"score": {"source": source}}}) == []
        assert isinstance(score_source(app), sources.HttpIngest)


def test_secret_keys_that_cannot_be_settings_are_reported(tmp_path: Path) -> None:
    creds = secret_dir(tmp_path, {"group.id": "other", "enable.auto.commit": "true",
                                  "error_cb": "x", "Sasl.Username": "x",
                                  "sasl.username": "ok"})
    app = kafka_app(sources.HttpIngest())
    problems = apply_job_settings(app, {"jobs": {"score": {"source": {"kafka": {
        "bootstrapServers": "kafka:9092", "topic": "in", "group": "g",
        "secretDir": str(creds)}}}}})
    assert problems == [
        "job 'score': the Kafka Secret's key 'Sasl.Username' is ignored: not a librdkafka "
        "setting name (such as sasl.username)",
        "job 'score': the Kafka Secret's key 'enable.auto.commit' is ignored: it is set by "
        "the source (it commits after the tasks finished)",
        "job 'score': the Kafka Secret's key 'error_cb' is ignored: not a librdkafka setting "
        "name (such as sasl.username)",
        "job 'score': the Kafka Secret's key 'group.id' is ignored: it is set by "
        "spec.jobs[].source.kafka.group",
    ]
    source = score_source(app)
    assert isinstance(source, sources.Kafka)
    assert source.config == {"sasl.username": "ok"} and source.group == "g"


def test_a_missing_secret_dir_is_reported_and_the_resource_still_wins(tmp_path: Path) -> None:
    app = kafka_app(sources.Kafka("dev", bootstrap="localhost:9092", group="dev"))
    problems = apply_job_settings(app, {"jobs": {"score": {"source": {"kafka": {
        "bootstrapServers": "kafka:9092", "topic": "in", "group": "g",
        "secretDir": str(tmp_path / "absent")}}}}})
    assert len(problems) == 1
    assert problems[0].startswith("job 'score': cannot read the Kafka Secret's files in ")
    source = score_source(app)
    assert isinstance(source, sources.Kafka) and source.topic == "in"


@pytest.mark.parametrize(("key", "file"), [
    ("ssl.ca.location", True), ("ssl.certificate.location", True), ("ssl.key.location", True),
    ("sasl.kerberos.keytab", True), ("sasl.oauthbearer.assertion.private.key.file", True),
    ("ssl.ca.pem", False), ("ssl.key.password", False), ("sasl.password", False),
])
def test_file_settings(key: str, file: bool) -> None:
    assert is_file_setting(key) is file
