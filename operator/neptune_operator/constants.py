"""Names shared by the schema, the renderer, the handlers and the chart."""

from __future__ import annotations

GROUP = "neptune.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ContinuousApplication"
PLURAL = "continuousapplications"
SINGULAR = "continuousapplication"
SHORT_NAMES = ["capp"]

POLICIES = ("fifo", "fair", "kill", "neptune")
JOB_KINDS = ("stream", "batch")
# spec.upgradeMode (the Flink operator's idea), passed to the driver as NEPTUNE_UPGRADE_MODE.
UPGRADE_MODES = ("last-state", "stateless")
DEFAULT_UPGRADE_MODE = "last-state"

# Ports of the runtime contract (see executor_image/neptune_runtime/cli.py).
EXECUTOR_PORT = 7077  # driver <- executors (msgpack over TCP, HMAC handshake)
HTTP_PORT = 8080  # driver: /metrics /healthz (open), /status /state (read token), /ingest /admin
METRICS_PORT = 9090  # each executor process: Prometheus

# Labels put on every child so that selectors, NetworkPolicies and PodMonitors agree.
LABEL_APP = "neptune.dev/app"
LABEL_ROLE = "neptune.dev/role"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "neptune-operator"

# Field manager for server-side apply: one name, so re-applies never fight with themselves.
FIELD_MANAGER = "neptune-operator"

PRIORITIES_FILE = "priorities.json"
JOBS_FILE = "jobs.json"
CONFIG_MOUNT = "/etc/neptune"
# The driver keeps committed offsets and its ingest log here (NEPTUNE_STATE_DIR): a
# PersistentVolumeClaim with spec.driver.storage, else an emptyDir.
STATE_DIR = "/var/lib/neptune/state"
DEFAULT_STATE_SIZE = "1Gi"

# The image's non-root user. Set explicitly so that runAsNonRoot can be verified by the
# kubelet even when the image names its user instead of a number.
RUN_AS_UID = 10001

# The driver's HTTP tokens (Secret NAME-ingest-token, keys "ingest" and "read"), mounted
# read-only at TOKENS_DIR and named by NEPTUNE_TOKENS_DIR; the driver re-reads them when the
# kubelet refreshes the files, so replacing the Secret's values rotates them.
TOKENS_DIR = "/var/run/neptune/tokens"
INGEST_TOKEN_KEY = "ingest"  # POST /ingest/JOB, POST /admin/...
READ_TOKEN_KEY = "read"  # GET /status, GET /state/NAME (the ingest token works there too)
# The API server's service proxy strips Authorization (it authenticated the caller with it),
# so the driver also takes the token in this header.
TOKEN_HEADER = "X-Neptune-Token"
# Owner root, group fsGroup (10001): with fsGroup the kubelet makes secret files group-readable
# whatever the mode, so 0440 is what the files get; 0400 would read the same in the manifest
# and still end up 0440.
TOKENS_FILE_MODE = 0o440

# A Kafka source's Secret (spec.jobs[].source.kafka.secretRef) is mounted read-only in the
# driver at KAFKA_SECRETS_DIR/SECRET (its keys are librdkafka settings, one file each), with
# the same mode as the tokens.
KAFKA_SECRETS_DIR = "/var/run/neptune/kafka"

# Driver pod template annotations: the job settings' hash (a change restarts the driver), and
# the hash of what the driver runs (see render.driver_revision): NEPTUNE_SPEC_GENERATION only
# changes with it, so a scale or a priority change never restarts the driver.
JOBS_HASH_ANNOTATION = "neptune.dev/jobs-hash"
DRIVER_SPEC_ANNOTATION = "neptune.dev/driver-spec-hash"

# At most this many unschedulable pods are named in the status (the rest are counted).
UNSCHEDULABLE_SHOWN = 10
# The executor pods' container (render.py), whose CPU request cpushare.py resizes.
EXECUTOR_CONTAINER = "executor"
