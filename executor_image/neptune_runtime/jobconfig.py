"""Job settings from the ContinuousApplication resource, applied over the app module's own.

The operator writes {"jobs": {NAME: {"kind", "slo", "trigger", "partitions", "source"}}} into
the app's ConfigMap; the driver applies it at start (a change of job settings restarts the
driver). The app's job objects are changed in place and what could not be applied is
returned as sentences for /status, never raised, so a mismatch degrades the app visibly
instead of crash-looping its driver.

A stream job's `source` is {"http": {}} or {"kafka": {"bootstrapServers", "topic", "group",
"secretRef": {"name"}, "secretDir"}} (objects written before sources were objects hold a
name: "http"). Kafka replaces a module's Kafka source (its decoder, dead-letter topic and
settings are kept, the resource's broker, topic and group win) or its HTTP source (both give
the task JSON values); any other module source is kept and reported. `secretDir` is where
the operator mounted the Secret of `secretRef` (docs/operator.md, "Kafka sources"): each of
its files is a librdkafka setting named like the file. The only I/O here is reading those.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .app import App, StreamJob, Trigger
from .durations import parse_duration
from .sources import HttpIngest, Kafka

# Settings whose value is a file's path: the Secret's key holds the file's content (a CA, a
# certificate, a key, a keytab), and the setting gets the path of the mounted file.
FILE_SUFFIXES = (".location", ".file")
FILE_SETTINGS = frozenset({"sasl.kerberos.keytab"})
# Owned by the resource (bootstrapServers, group) or by the source, which commits offsets
# itself only after their tasks finished: a Secret must not change them.
RESERVED = {
    "bootstrap.servers": "spec.jobs[].source.kafka.bootstrapServers",
    "group.id": "spec.jobs[].source.kafka.group",
    "enable.auto.commit": "the source (it commits after the tasks finished)",
    "enable.auto.offset.store": "the source (it commits after the tasks finished)",
}
# A librdkafka property name; confluent-kafka's callables (error_cb, logger, ...) are not.
SETTING_NAME = re.compile(r"^[a-z][a-z0-9]*([.-][a-z0-9]+)*$")


def is_file_setting(key: str) -> bool:
    return key.endswith(FILE_SUFFIXES) or key in FILE_SETTINGS


def kafka_settings(directory: Path, job: str, problems: list[str]) -> dict[str, str]:
    """librdkafka settings from a mounted Secret: one file per key. File settings get the
    file's path, others its content without surrounding whitespace (so a trailing newline
    from `kubectl create secret --from-file` does not end up in a password)."""
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        problems.append(f"job {job!r}: cannot read the Kafka Secret's files in {directory}: "
                        f"{exc.strerror or exc}")
        return {}
    out: dict[str, str] = {}
    for entry in entries:
        key = entry.name
        # The kubelet's own entries (..data, ..2024_01_01...) start with two dots.
        if key.startswith(".") or not entry.is_file():
            continue
        if key in RESERVED:
            problems.append(f"job {job!r}: the Kafka Secret's key {key!r} is ignored: it is "
                            f"set by {RESERVED[key]}")
            continue
        if not SETTING_NAME.match(key):
            problems.append(f"job {job!r}: the Kafka Secret's key {key!r} is ignored: not a "
                            "librdkafka setting name (such as sasl.username)")
            continue
        if is_file_setting(key):
            out[key] = str(entry)
            continue
        try:
            out[key] = entry.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"job {job!r}: cannot read the Kafka Secret's key {key!r}: {exc}")
    return out


def apply_job_settings(app: App, document: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for name, settings in (document.get("jobs") or {}).items():
        job = app.jobs.get(name)
        if job is None:
            problems.append(f"job {name!r} is in the resource but the app module "
                            f"declares only {', '.join(sorted(app.jobs))}")
            continue
        kind = settings.get("kind", job.kind)
        if kind != job.kind:
            problems.append(f"job {name!r} is a {job.kind} job in the app module, "
                            f"not {kind} as the resource says")
            continue
        try:
            if isinstance(job, StreamJob):
                _apply_stream(job, settings, problems)
            elif "partitions" in settings:
                job.partitions = int(settings["partitions"])
        except ValueError as exc:
            problems.append(f"job {name!r}: {exc}")
    return problems


def _apply_stream(job: StreamJob, settings: Mapping[str, Any], problems: list[str]) -> None:
    if "slo" in settings:
        job.slo = parse_duration(settings["slo"], what="slo")
    if "trigger" in settings:
        job.trigger = Trigger.parse(settings["trigger"])
    source = settings.get("source")
    if source is None:
        return
    if source == "http" or (isinstance(source, Mapping) and "http" in source):
        if not isinstance(job.source, HttpIngest):
            job.source = HttpIngest()
    elif isinstance(source, Mapping) and isinstance(source.get("kafka"), Mapping):
        _apply_kafka(job, source["kafka"], problems)
    elif isinstance(source, str):
        if source != job.source.kind:
            problems.append(f"job {job.name!r}: source {source!r} cannot be set from the "
                            f"resource (only 'http'); keeping the module's {job.source.kind} "
                            "source")
    else:
        problems.append(f"job {job.name!r}: source {source!r} is neither http nor kafka; "
                        f"keeping the module's {job.source.kind} source")


def _apply_kafka(job: StreamJob, kafka: Mapping[str, Any], problems: list[str]) -> None:
    module = job.source
    if not isinstance(module, Kafka | HttpIngest):
        problems.append(f"job {job.name!r}: source.kafka can replace a Kafka or an HTTP source "
                        f"of the app module, not its {module.kind} source (whose events may "
                        "not be JSON values); keeping it")
        return
    try:
        topic, bootstrap, group = (str(kafka[k]) for k in ("topic", "bootstrapServers",
                                                             "group"))
    except KeyError as exc:
        problems.append(f"job {job.name!r}: source.kafka lacks {exc.args[0]}; keeping the "
                        f"module's {module.kind} source")
        return
    config: dict[str, Any] = dict(module.config) if isinstance(module, Kafka) else {}
    if kafka.get("secretDir"):
        # Even when a key cannot be read the resource's broker and topic are used: falling
        # back to the module's (a developer's broker) would be worse than failing to log in.
        config.update(kafka_settings(Path(str(kafka["secretDir"])), job.name, problems))
    if isinstance(module, Kafka):
        job.source = Kafka(topic, bootstrap=bootstrap, group=group, decode=module.decode,
                           dead_letter_topic=module.dead_letter_topic, config=config)
    else:
        job.source = Kafka(topic, bootstrap=bootstrap, group=group, config=config)
