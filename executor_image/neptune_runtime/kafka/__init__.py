"""Kafka in and out, on confluent-kafka (librdkafka): `sources.Kafka` and `sinks.Kafka`.

Both run on the driver, as every source and sink does; the client is imported only when one is
used, so apps without Kafka do not load it.

The source maps the topic's partitions onto the job's lanes (a token is a message's offset):
- it never lets librdkafka commit: the driver commits a partition's offset only once every
  event up to it was handed on (at-least-once); a new driver resumes from the group's committed
  offsets, or from its checkpoint's for a keyed job;
- malformed records (the decoder raised) are counted in neptune_source_bad_records_total{job},
  logged with topic, partition and offset, and sent to `dead_letter_topic` if given;
- per-partition lag (high watermark minus position) goes to /status and
  neptune_source_lag_records{job,partition}; partitions added to the topic are picked up;
- an unreachable broker or a missing topic degrades the job with a cause that names both the
  bootstrap servers and the topic; the source keeps trying and the job recovers when they
  answer, with nothing lost (nothing was committed that was not handed on).

The sink is an idempotent producer (acks=all): `sync` waits until the broker has every record,
producing again whatever failed, before the driver commits. With `exactly_once=True`, a job's
outputs and the offsets its source consumed are committed in one Kafka transaction per commit
(`Transactional`): a `read_committed` consumer sees each result once, whatever is killed.
"""

import logging

# librdkafka's own log: it says every failed connection, many times a second, while the broker
# is away; the causes reach the job's status through error_cb. Shown with --log-level DEBUG.
CLIENT_LOG = logging.getLogger("neptune.kafka.client")
CLIENT_LOG.addFilter(lambda record: logging.getLogger().isEnabledFor(logging.DEBUG))
