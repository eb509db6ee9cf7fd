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

# Ports of the runtime contract (see executor_image/neptune_runtime/cli.py).
EXECUTOR_PORT = 7077  # driver <- executors (msgpack over TCP, HMAC handshake)
HTTP_PORT = 8080  # driver: /metrics /healthz /status /ingest/JOB
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
