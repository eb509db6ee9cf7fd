"""The one source of the ContinuousApplication CRD.

`crdgen` writes this to crds/ and helm/neptune/crds/; a test fails when the files drift.
Validation lives here (OpenAPI + CEL) so that `kubectl apply` rejects a bad resource with a
message naming the field, instead of the operator discovering the problem later.
"""

from __future__ import annotations

from typing import Any

from .constants import (
    DEFAULT_STATE_SIZE,
    DEFAULT_UPGRADE_MODE,
    GROUP,
    JOB_KINDS,
    KIND,
    PLURAL,
    POLICIES,
    SHORT_NAMES,
    SINGULAR,
    UNSCHEDULABLE_SHOWN,
    UPGRADE_MODES,
    VERSION,
)

Schema = dict[str, Any]

# A positive duration with a unit; zero is refused by a CEL rule (a regex for "non-zero"
# would be unreadable). Units match neptune_runtime.durations minus "h" (no SLO is that long).
DURATION_PATTERN = r"^[0-9]+(\.[0-9]+)?(us|ms|s|m)$"
ZERO_DURATION = r"^0+([.]0+)?(us|ms|s|m)$"  # [.]: CEL strings reject \.
# Kubernetes' own quantity grammar, without the sign (a negative request is never meant), and
# with an exponent of at most three digits: the API server takes 1e9999999999 in a custom
# resource, then times out on the pod template made from it.
QUANTITY_PATTERN = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?[0-9]{1,3}))?$"
)
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_JOBS = 32
MAX_REPLICAS = 1000
MAX_NAME = 40  # of an app: NAME-executor-N stays a valid pod name and label value


def _s(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _i(description: str, **extra: Any) -> Schema:
    return {"type": "integer", "description": description, **extra}


def _n(description: str, **extra: Any) -> Schema:
    return {"type": "number", "description": description, **extra}


def _b(description: str, **extra: Any) -> Schema:
    return {"type": "boolean", "description": description, **extra}


def _o(description: str, properties: dict[str, Schema], **extra: Any) -> Schema:
    return {"type": "object", "description": description, "properties": properties, **extra}


def _rule(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    out = {"rule": rule, "message": message}
    if field_path is not None:
        out["fieldPath"] = field_path
    return out


# Resource names a container accepts (what the API server checks in a pod template): the
# native ones the runtime can use, and extended resources DOMAIN/NAME (e.g. nvidia.com/gpu).
# hugepages-* are left out: they need a page-size multiple and requests == limits, and the
# runtime has no use for them.
NATIVE_RESOURCES = ("cpu", "memory", "ephemeral-storage")
EXTENDED_RESOURCE = (r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
                     r"/([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
MAX_QUANTITY_LENGTH = 64
MAX_RESOURCE_NAME_LENGTH = 253 + 1 + 63  # DNS subdomain / name, as the API server allows


def _valid_resource_name(k: str) -> str:
    """CEL: k is a container resource name the API server takes (kubernetes.io/ and
    requests.* names are quota names, not container resources)."""
    native = ", ".join(f"'{n}'" for n in NATIVE_RESOURCES)
    return (f"({k} in [{native}] || ({k}.matches('{EXTENDED_RESOURCE}') && "
            f"!{k}.contains('kubernetes.io/') && !{k}.startsWith('requests.')))")


def _q(value: str) -> str:
    return f"quantity(string({value}))"


def _whole(value: str) -> str:
    """CEL: the quantity `value` is a whole number (isInteger() is false for 1.5Gi, which is
    one: the library keeps it as a decimal). Above 2^53 every double is whole."""
    f = f"{_q(value)}.asApproximateFloat()"
    return f"({f} > 9.0e15 || double(int({f})) == {f})"


def parses(value: str) -> str:
    """CEL: `value` is a quantity that quantity() can take. CEL rules run even where the
    pattern failed, and quantity() on a huge exponent (1e9999999999, which isQuantity accepts)
    makes the API server time out: no comparison without this guard."""
    return (f"(isQuantity(string({value})) && "
            f"!string({value}).matches('[eE][-+]?[0-9]{{4,}}$'))")


def _quantities(description: str) -> Schema:
    names = ", ".join(NATIVE_RESOURCES)
    return {
        "type": "object",
        "description": description + f" Keys: {names}, or an extended resource DOMAIN/NAME.",
        "maxProperties": 8,
        "additionalProperties": {
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
            "maxLength": MAX_QUANTITY_LENGTH,
            "description": "A non-negative resource quantity such as 500m, 2, 512Mi or 1Gi.",
            # The pattern follows Kubernetes' grammar; isQuantity is the API server's own parser
            # (a string that fails the pattern gets both messages).
            "x-kubernetes-validations": [{
                **_rule("isQuantity(string(self))", "must be a resource quantity"),
                "messageExpression": "'must be a resource quantity such as 500m or 1Gi, not ' "
                                     "+ string(self)",
            }],
        },
        # Static messages: a messageExpression listing the offending keys is beyond the API
        # server's cost budget (map keys have no length bound it can see).
        "x-kubernetes-validations": [
            _rule(f"self.all(k, k.size() <= {MAX_RESOURCE_NAME_LENGTH} && "
                  f"{_valid_resource_name('k')})",
                  f"resource names must be {names} or an extended resource DOMAIN/NAME such "
                  "as nvidia.com/gpu (hugepages are not supported)"),
            # Extended resources are counted in whole units.
            _rule(f"self.all(k, !k.contains('/') || !{parses('self[k]')} || "
                  f"{_whole('self[k]')})",
                  "extended resources (DOMAIN/NAME) must be whole numbers"),
            # 500m of memory is half a byte: the API server warns that it is invalid.
            _rule("['memory', 'ephemeral-storage'].all(n, !(n in self) || "
                  f"!{parses('self[n]')} || {_whole('self[n]')})",
                  "memory and ephemeral-storage must be whole bytes (500m is half a byte; "
                  "write 512Mi or 1Gi)"),
        ],
    }


def _limit_not_below_request(name: str) -> dict[str, str]:
    """A pod template whose limit is below its request is refused by the API server."""
    both = (f"has(self.requests) && has(self.limits) && '{name}' in self.requests && "
            f"'{name}' in self.limits")
    parse = f"{parses(f'self.requests[{name!r}]')} && {parses(f'self.limits[{name!r}]')}"
    return {
        **_rule(f"!({both} && {parse}) || "
                f"{_q(f'self.limits[{name!r}]')}.compareTo({_q(f'self.requests[{name!r}]')}) >= 0",
                f"limits.{name} must not be below requests.{name}",
                f".limits['{name}']"),
        "messageExpression": (f"'limits.{name} (' + string(self.limits['{name}']) + ') must not "
                              f"be below requests.{name} (' + string(self.requests['{name}']) "
                              "+ ')'"),
    }


# Extended resources cannot be overcommitted: the API server wants a limit equal to any
# request, and whole numbers.
_EXTENDED_OK = ("!k.contains('/') || (has(self.limits) && k in self.limits && "
                f"{parses('self.requests[k]')} && {parses('self.limits[k]')} && "
                f"{_q('self.limits[k]')}.compareTo({_q('self.requests[k]')}) == 0)")
_EXTENDED_EQUAL = _rule(
    f"!has(self.requests) || self.requests.all(k, {_EXTENDED_OK})",
    "an extended resource (DOMAIN/NAME) in requests needs the same value in limits",
    ".requests")


def resources_schema(who: str) -> Schema:
    return _o(
        f"Compute resources of the {who} container (as in a Pod's container resources). "
        "A limit must not be below its request.",
        {
            "requests": _quantities(f"Minimum resources the {who} is scheduled with."),
            "limits": _quantities(f"Maximum resources the {who} may use."),
        },
        **{"x-kubernetes-validations": [
            *(_limit_not_below_request(n) for n in NATIVE_RESOURCES),
            _EXTENDED_EQUAL,
        ]},
    )


# Label keys and values as the API server checks a pod's nodeSelector: an optional DNS
# subdomain prefix and "/", then a name of up to 63 characters; a value of up to 63, or empty.
LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
             + LABEL_NAME + "$")
LABEL_VALUE = "^(" + LABEL_NAME + ")?$"
MAX_SELECTOR_LABELS = 32
MAX_TOLERATIONS = 32


def _label_key_ok(k: str) -> str:
    """CEL: k is a label key (the prefix at most 253 characters)."""
    return f"({k}.matches('{LABEL_KEY}') && ({k}.indexOf('/') < 0 || {k}.indexOf('/') <= 253))"


def placement_schema(who: str) -> dict[str, Schema]:
    """nodeSelector and tolerations of the {who}'s pods, checked as the API server checks
    them in a pod template, so that a spec whose pods it would refuse is refused itself."""
    return {
        "nodeSelector": {
            "type": "object",
            "description": f"Node labels the {who} pods must run on (a Pod's nodeSelector).",
            "maxProperties": MAX_SELECTOR_LABELS,
            "additionalProperties": {"type": "string", "maxLength": 63,
                                     "pattern": LABEL_VALUE,
                                     "description": "The label's value (may be empty)."},
            "x-kubernetes-validations": [_rule(
                f"self.all(k, {_label_key_ok('k')})",
                "nodeSelector keys must be label keys: [prefix/]name, the name of up to 63 "
                "alphanumerics, '-', '_' or '.', starting and ending alphanumeric")],
        },
        "tolerations": {
            "type": "array",
            "description": f"Taints the {who} pods tolerate (a Pod's tolerations).",
            "maxItems": MAX_TOLERATIONS,
            "items": _o(
                "One toleration.",
                {
                    "key": _s("Taint key (empty with operator Exists: every taint).",
                              maxLength=317),
                    "operator": _s("Exists or Equal.", enum=["Exists", "Equal"],
                                   default="Equal"),
                    "value": _s("Taint value (Equal only).", maxLength=63,
                                pattern=LABEL_VALUE),
                    "effect": _s("Taint effect matched (empty: all).",
                                 enum=["NoSchedule", "PreferNoSchedule", "NoExecute"]),
                    "tolerationSeconds": _i("How long a NoExecute taint is tolerated.",
                                            minimum=0),
                },
                **{"x-kubernetes-validations": [
                    _rule(f"!has(self.key) || self.key == '' || {_label_key_ok('self.key')}",
                          "tolerations key must be a label key", ".key"),
                    _rule("(has(self.key) && self.key != '') || self.operator == 'Exists'",
                          "a toleration without a key must have operator Exists", ".operator"),
                    _rule("self.operator != 'Exists' || !has(self.value) || self.value == ''",
                          "a toleration with operator Exists must not have a value", ".value"),
                    _rule("!has(self.tolerationSeconds) || "
                          "(has(self.effect) && self.effect == 'NoExecute')",
                          "tolerationSeconds needs effect NoExecute", ".tolerationSeconds"),
                ]},
            ),
        },
    }


def storage_schema() -> Schema:
    return _o(
        "A PersistentVolumeClaim NAME-driver-state (ReadWriteOnce) for the driver's state "
        "(committed offsets of every stream job, the log of HTTP-ingested events), so that a "
        "new driver pod resumes from them. Without it the state is on an emptyDir, which "
        "survives a container restart but not the pod's deletion. Fixed at creation: to "
        "change it, delete and re-create the application.",
        {
            "size": {
                "x-kubernetes-int-or-string": True,
                "pattern": QUANTITY_PATTERN,
                "maxLength": MAX_QUANTITY_LENGTH,
                "default": DEFAULT_STATE_SIZE,
                "description": "Requested size of the claim: a positive quantity such as "
                               "512Mi or 1Gi (default 1Gi).",
                # The pattern has no sign but admits zero. A value that is no quantity at all
                # is the pattern's error alone (parses() guards quantity()).
                "x-kubernetes-validations": [{
                    **_rule(f"!{parses('self')} || "
                            "quantity(string(self)).isGreaterThan(quantity('0'))",
                            "size must be a positive quantity such as 1Gi"),
                    # int-or-string values show as "" in the API server's message: name it.
                    "messageExpression": "'size must be a positive quantity such as 1Gi, not '"
                                         " + string(self)",
                }],
            },
            "storageClassName": _s(
                "StorageClass of the claim; absent: the cluster's default StorageClass.",
                pattern=DNS_SUBDOMAIN, maxLength=253),
        },
    )


# CEL regexes (no backslashes: CEL string literals refuse them, so [.] and friends).
CEL_DNS_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# host:port, comma-separated: a host name or IPv4 address, or an IPv6 address in brackets.
PORT = "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
KAFKA_HOST_PORT = f"([a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?|[[][0-9a-fA-F:.]+[]]):{PORT}"
KAFKA_BOOTSTRAP = f"^{KAFKA_HOST_PORT}(,{KAFKA_HOST_PORT})*$"
KAFKA_TOPIC = "^[-._a-zA-Z0-9]+$"
MAX_KAFKA_TOPIC = 249  # Kafka's own limit
MAX_BOOTSTRAP = 512


def kafka_schema() -> Schema:
    return _o(
        "Read the job's events from a Kafka topic (the runtime's sources.Kafka): its "
        "partitions map onto the job's partitions, offsets are committed to the group after "
        "their tasks finished. Replaces the app module's source when that is a Kafka or an "
        "HTTP source. Credentials (SASL, TLS) come from secretRef, never from the spec.",
        {
            "bootstrapServers": _s(
                "Brokers to start from: host:port, comma-separated without spaces, e.g. "
                "kafka-0.kafka.svc:9092,kafka-1.kafka.svc:9092.",
                minLength=1, maxLength=MAX_BOOTSTRAP,
                **{"x-kubernetes-validations": [{
                    **_rule(f"self.matches('{KAFKA_BOOTSTRAP}')",
                            "bootstrapServers must be host:port pairs separated by commas "
                            "(no spaces, ports 1-65535)"),
                    "messageExpression": (
                        "'bootstrapServers must be host:port pairs separated by commas (no "
                        "spaces, ports 1-65535), e.g. kafka-0.kafka:9092,kafka-1.kafka:9092, "
                        "not ' + self"),
                }]}),
            "topic": _s(
                "The topic to read (it must exist: the broker may refuse to create topics).",
                minLength=1, maxLength=MAX_KAFKA_TOPIC,
                **{"x-kubernetes-validations": [{
                    **_rule(f"self.matches('{KAFKA_TOPIC}') && self != '.' && self != '..'",
                            "topic must be a Kafka topic name: letters, digits, '.', '_' and "
                            "'-', not '.' or '..'"),
                    "messageExpression": ("'topic must be a Kafka topic name (letters, digits, "
                                          "., _ and -; not . or ..), not ' + self"),
                }]}),
            "group": _s(
                "Consumer group: where the job's offsets are committed, and where a stateless "
                "upgrade starts from. One group per job and topic.",
                minLength=1, maxLength=255,
                **{"x-kubernetes-validations": [
                    _rule("!self.matches('[[:space:][:cntrl:]]')",
                          "group must not contain whitespace or control characters"),
                ]}),
            "secretRef": _o(
                "A Secret in the application's namespace whose keys are librdkafka settings "
                "(security.protocol, sasl.mechanism, sasl.username, sasl.password, "
                "ssl.ca.location, ...). It is mounted read-only in the driver; a key that "
                "names a file setting (ending in .location or .file, or "
                "sasl.kerberos.keytab) holds the file's content and the setting gets the "
                "mounted file's path, every other key holds the setting's value.",
                {"name": _s(
                    "Name of the Secret.", minLength=1, maxLength=253,
                    **{"x-kubernetes-validations": [
                        _rule(f"self.matches('{CEL_DNS_SUBDOMAIN}')",
                              "secretRef.name must be a Secret name (a DNS subdomain: "
                              "lowercase letters, digits, '-' and '.')"),
                    ]})},
                required=["name"],
            ),
        },
        required=["bootstrapServers", "topic", "group"],
    )


def source_schema() -> Schema:
    return _o(
        "Where a stream job's events come from, overriding the app module's source: "
        "exactly one of http and kafka. Absent: the module's own source.",
        {
            "http": _o("Events POSTed to the driver's /ingest/JOB (with the ingest token).",
                       {}),
            "kafka": kafka_schema(),
        },
        **{"x-kubernetes-validations": [
            _rule("[has(self.http), has(self.kafka)].exists_one(x, x)",
                  "source must set exactly one of http and kafka"),
        ]},
    )


def _kafka_key(j: str) -> str:
    return f"has({j}.source) && has({j}.source.kafka)"


# Two jobs consuming one topic in one group would split its partitions between them.
KAFKA_UNIQUE = _rule(
    f"self.all(j, !({_kafka_key('j')}) || self.exists_one(k, {_kafka_key('k')} && "
    "k.source.kafka.topic == j.source.kafka.topic && "
    "k.source.kafka.group == j.source.kafka.group))",
    "two jobs must not read the same Kafka topic in the same group (they would split its "
    "partitions): give each job its own source.kafka.group")


def autoscale_schema() -> Schema:
    return _o(
        "Scale the executors from the lag the driver reports: for each running stream job "
        "whose source reports lag, the seconds to drain it (records waiting / records per "
        "second); the worst job decides. Over targetLagSeconds for scaleUpWindowSeconds: "
        "scale up (up to double, at least one pod); under half of it for "
        "scaleDownWindowSeconds: one pod down; at most one step per window, within "
        "minReplicas..maxReplicas. While set, the operator owns executors.replicas.",
        {
            "minReplicas": _i("Fewest executor pods.", minimum=1, maximum=MAX_REPLICAS,
                              default=1),
            "maxReplicas": _i("Most executor pods.", minimum=1, maximum=MAX_REPLICAS),
            "targetLagSeconds": _i(
                "Seconds of backlog (lag / throughput) the executors may have before they are "
                "scaled up; under half of it they are scaled down.",
                minimum=1, maximum=86400, default=30),
            "scaleUpWindowSeconds": _i(
                "How long the lag must stay over target before a step up.",
                minimum=0, maximum=3600, default=60),
            "scaleDownWindowSeconds": _i(
                "How long the lag must stay under half the target before a step down (at "
                "least scaleUpWindowSeconds).",
                minimum=0, maximum=86400, default=300),
        },
        required=["maxReplicas"],
        **{"x-kubernetes-validations": [
            # Static: string(int) in a messageExpression is beyond the cost budget.
            _rule("self.minReplicas <= self.maxReplicas",
                  "autoscale.minReplicas must not be above autoscale.maxReplicas",
                  ".minReplicas"),
            _rule("self.scaleDownWindowSeconds >= self.scaleUpWindowSeconds",
                  "autoscale.scaleDownWindowSeconds must be at least scaleUpWindowSeconds "
                  "(scale down more slowly than up, or it flaps)",
                  ".scaleDownWindowSeconds"),
        ]},
    )


def job_schema() -> Schema:
    return _o(
        "One job of the application. Stream jobs are latency-critical and carry an SLO; "
        "batch jobs use the cores left over and are suspended (not killed) when a stream "
        "task needs a core.",
        {
            "name": _s(
                "Job name, as declared in the app module (a DNS label).",
                pattern=DNS_LABEL,
                maxLength=40,
            ),
            "kind": _s("stream (latency-critical, needs an slo) or batch (throughput).",
                       enum=list(JOB_KINDS)),
            "slo": _s(
                "Latency objective of a stream job, event in to result out: a positive "
                "duration with a unit (us, ms, s, m), e.g. 50ms. Not allowed on batch jobs.",
                pattern=DURATION_PATTERN,
                maxLength=32,
                **{"x-kubernetes-validations": [
                    _rule(f"!self.matches('{ZERO_DURATION}')",
                          "slo must be a positive duration, not zero"),
                ]},
            ),
            "trigger": _s(
                "When a stream job runs a task: 'event' (one task per event) or a micro-batch "
                "interval such as 100ms.",
                pattern=r"^(event|[0-9]+(\.[0-9]+)?(us|ms|s|m))$",
                maxLength=32,
            ),
            "partitions": _i("Number of partitions of a batch job's dataset.",
                             minimum=1, maximum=100000),
            "source": source_schema(),
        },
        required=["name", "kind"],
        **{"x-kubernetes-validations": [
            _rule("self.kind == 'stream' || !has(self.source)",
                  "source applies to stream jobs only (a batch job reads its dataset with its "
                  "read function)", ".source"),
            _rule("self.kind != 'stream' || has(self.slo)",
                  "a stream job needs an slo (e.g. slo: 50ms)", ".slo"),
            _rule("self.kind != 'batch' || !has(self.slo)",
                  "a batch job must not have an slo (only stream jobs have latency objectives)",
                  ".slo"),
            _rule("self.kind != 'stream' || !has(self.partitions)",
                  "partitions apply to batch jobs only", ".partitions"),
        ]},
    )


# A transition rule (oldSelf) on spec rather than on storage itself: a rule on a field only
# runs when the field exists on both sides, and adding or removing storage must be caught too.
_HAS_NEW, _HAS_OLD = (f"(has({s}.driver) && has({s}.driver.storage))" for s in ("self", "oldSelf"))
STORAGE_FIXED = _rule(
    f"{_HAS_NEW} == {_HAS_OLD} && (!{_HAS_NEW} || self.driver.storage == oldSelf.driver.storage)",
    "driver.storage cannot be changed after creation (a claim's class and size are not "
    "changed in place): delete and re-create the application to change it",
    ".driver.storage",
)


def spec_schema() -> Schema:
    return _o(
        "Desired state of a continuous (stream + batch) application.",
        {
            "image": _s("Container image holding neptunectl and the app module.",
                        minLength=1, maxLength=512,
                        # The API server takes it in a pod template, but the kubelet never
                        # pulls it (InvalidImageName): the pods would never start.
                        **{"x-kubernetes-validations": [
                            _rule("!self.matches('[[:space:]]')",
                                  "image must not contain whitespace"),
                        ]}),
            "imagePullPolicy": _s("Image pull policy of driver and executor pods.",
                                  enum=["Always", "IfNotPresent", "Never"],
                                  default="IfNotPresent"),
            "app": _o(
                "Where the application module comes from: a module path inside the image, or "
                "a ConfigMap key holding the module source. Exactly one of the two.",
                {
                    "module": _s("Dotted module name or .py path inside the image.",
                                 minLength=1, maxLength=512),
                    "configMap": _o(
                        "A ConfigMap key whose value is the module source (mounted read-only).",
                        {
                            "name": _s("ConfigMap name (same namespace).", pattern=DNS_LABEL,
                                       maxLength=253),
                            "key": _s("Key holding the source, e.g. app.py.",
                                      pattern=r"^[-._a-zA-Z0-9]+$", maxLength=253),
                        },
                        required=["name", "key"],
                        # The key is also the file's path in the volume: the API server
                        # refuses a path that is '..' or starts with it, and no ConfigMap
                        # has the key '.'.
                        **{"x-kubernetes-validations": [
                            _rule("self.key != '.' && !self.key.startsWith('..')",
                                  "app.configMap.key must not be '.' or start with '..' (it "
                                  "is the file name under /app/source)", ".key"),
                        ]},
                    ),
                },
                **{"x-kubernetes-validations": [
                    _rule("has(self.module) != has(self.configMap)",
                          "set exactly one of app.module and app.configMap"),
                ]},
            ),
            "driver": _o("The driver pod (one per application).",
                         {"resources": resources_schema("driver"),
                          "storage": storage_schema(), **placement_schema("driver")}),
            "executors": _o(
                "The executor pods. Each pod runs one executor process per slot (one core); "
                "give each pod about one CPU per slot in resources.",
                {
                    "replicas": _i(
                        "Number of executor pods (scale subresource). Required unless "
                        "autoscale is set; while autoscale is set, the operator writes it "
                        "(leave it out of manifests applied with server-side apply).",
                        minimum=1, maximum=MAX_REPLICAS),
                    "slotsPerPod": _i("Executor processes (one core each) per pod.", minimum=1,
                                      maximum=64, default=1),
                    "resources": resources_schema("executor"),
                    "autoscale": autoscale_schema(),
                    # the scheduler spreads them over nodes by itself (render.py)
                    **placement_schema("executor"),
                },
                **{"x-kubernetes-validations": [
                    _rule("has(self.replicas) || has(self.autoscale)",
                          "executors.replicas is required unless executors.autoscale is set",
                          ".replicas"),
                ]},
            ),
            "jobs": {
                "type": "array",
                "description": "Jobs of the application and their settings. Names are unique.",
                "minItems": 1,
                "maxItems": MAX_JOBS,
                "items": job_schema(),
                # listType=map makes the API server itself reject a duplicate name.
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "x-kubernetes-validations": [
                    _rule("self.all(j, self.exists_one(k, k.name == j.name))",
                          "job names must be unique"),
                    KAFKA_UNIQUE,
                ],
            },
            "policy": _s(
                "Scheduling policy inside the app: fifo, fair, kill (preempt by killing) or "
                "neptune (suspend batch tasks; locality- and memory-aware).",
                enum=list(POLICIES), default="neptune"),
            "upgradeMode": _s(
                "What a driver of a new spec (a roll or a reload that changes what the driver "
                "runs) starts from. last-state: the keyed state and offsets the last driver "
                "left in its state directory (durable only with driver.storage). stateless: "
                "empty keyed state, from the source's committed offsets (a Kafka group's). A "
                "restart of the same spec keeps state either way. Changing upgradeMode alone "
                "restarts nothing: it applies to the next upgrade.",
                enum=list(UPGRADE_MODES), default=DEFAULT_UPGRADE_MODE),
            "priority": _i(
                "Application priority across the cluster (higher first). Ranks this app's "
                "stream jobs against other apps', then SLO tightness breaks ties.",
                minimum=0, maximum=1000, default=0),
            "suspend": _b("true removes the pods and keeps the resource; false brings them back.",
                          default=False),
            "monitoring": _o(
                "Monitoring options.",
                {"podMonitor": _b("Create a PodMonitor (Prometheus Operator) for the pods.",
                                  default=False)},
            ),
        },
        required=["image", "app", "executors", "jobs"],
        **{"x-kubernetes-validations": [STORAGE_FIXED]},
    )


def status_schema() -> Schema:
    condition = _o(
        "A condition: Ready, Progressing, Degraded, SLOMet or Suspended.",
        {
            "type": _s("Condition type."),
            "status": _s("True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "reason": _s("Machine-readable reason in CamelCase."),
            "message": _s("Human-readable explanation."),
            "lastTransitionTime": _s("When the status last changed.", format="date-time"),
            "observedGeneration": _i("Generation the condition was computed from."),
        },
        required=["type", "status"],
    )
    job = _o(
        "Live figures of one job, read from the driver's /status.",
        {
            "kind": _s("stream or batch."),
            "state": _s("Job state reported by the driver."),
            "error": _s("Last error of the job, if any."),
            "priority": _i("Runtime priority the driver uses for the job's tasks."),
            "sloMs": _n("SLO in milliseconds (stream jobs)."),
            "p50Ms": _n("Median event latency in milliseconds (stream jobs)."),
            "p99Ms": _n("99th percentile event latency in milliseconds (stream jobs)."),
            "sloAttainment": _n("Fraction of events within the SLO (stream jobs)."),
            "suspensions": _i("Batch task suspensions caused by or suffered by the job."),
            "failures": _i("Task failures."),
            "records": _i("Records processed."),
            "throughputPerSecond": _n("Records per second."),
            "uncommitted": _i("Events accepted but not yet committed (stream jobs)."),
            "lag": _i("Records waiting in the source, over all its partitions (a Kafka "
                      "source's high watermark minus its position)."),
            "offsets": _o(
                "Offsets of a stream job's source, kept in the driver's state directory.",
                {
                    "committed": _s("Token up to which every event was processed."),
                    "resumedFrom": _s("Committed token the running driver started from; "
                                      "absent: it started fresh."),
                    "accepted": _i("Events accepted by the source (HTTP ingest: across "
                                   "driver restarts)."),
                },
            ),
        },
    )
    return _o(
        "Observed state, written by the operator.",
        {
            "phase": _s("Pending, Running, Degraded, Suspended or Failed."),
            "observedGeneration": _i("metadata.generation the status describes."),
            "conditions": {
                "type": "array",
                "description": "Standard conditions.",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "executors": _o(
                "Executor pods.",
                {
                    "desired": _i("Pods wanted (0 while suspended)."),
                    "ready": _i("Pods ready."),
                    "registered": _i("Executor processes registered with the driver."),
                    "summary": _s("ready/desired, for kubectl get."),
                },
            ),
            "unschedulable": _o(
                "The app's pods that the scheduler cannot place, with its reasons (absent "
                "when there are none). The scheduler keeps trying by itself.",
                {
                    "count": _i("Pods that cannot be scheduled."),
                    "pods": {
                        "type": "array",
                        "description": f"The first {UNSCHEDULABLE_SHOWN}, by name.",
                        "items": _o("One pod.", {
                            "pod": _s("The pod's name."),
                            "message": _s("The scheduler's message, e.g. 0/1 nodes are "
                                          "available: 1 Insufficient cpu."),
                        }),
                    },
                },
            ),
            "selector": _s("Label selector of the executor pods (scale subresource)."),
            "jobs": {
                "type": "object",
                "description": "Per-job figures, keyed by job name.",
                "additionalProperties": job,
            },
            "worstJob": _s("The stream job furthest from its SLO: name p99/slo."),
            "assignedPriority": _o(
                "Cluster-wide priority the operator assigned.",
                {
                    "priorityClassName": _s("PriorityClass of the app's pods."),
                    "rank": _i("Rank of the app's best stream job cluster-wide (0 = first)."),
                    "boost": _i("Steps added by the SLO feedback loop."),
                    "executorCpuRequest": _s(
                        "The executors' CPU request the operator keeps, in place: the spec's "
                        "at the top priority level, a quarter of it for each distinct priority "
                        "level below (absent: not managed)."),
                    "reason": _s("Why the priority is what it is."),
                    "since": _s("When the boost last changed.", format="date-time"),
                },
            ),
            "driver": _o(
                "What the operator last read from the driver, and its state volume.",
                {
                    "reachable": _b("Whether /status answered."),
                    "message": _s("Error when it did not."),
                    "storage": _o(
                        "Where the driver keeps committed offsets and its ingest log.",
                        {
                            "volume": _s("PersistentVolumeClaim (spec.driver.storage) or "
                                         "emptyDir (lost with the pod)."),
                            "claimName": _s("The claim, NAME-driver-state."),
                            "phase": _s("The claim's phase: Pending, Bound, Lost, or "
                                        "Missing before it exists."),
                            "capacity": _s("The bound volume's capacity."),
                        },
                    ),
                },
            ),
            "autoscale": _o(
                "What the executor autoscaler (spec.executors.autoscale) last saw and did.",
                {
                    "drainSeconds": _n("Seconds to drain the worst stream job's lag at its "
                                       "throughput (absent: no evidence; very large: lag "
                                       "but no throughput)."),
                    "job": _s("The stream job that decided (the worst)."),
                    "message": _s("What the autoscaler is waiting for, or why it holds."),
                    "lastScaleTime": _s("When it last changed executors.replicas.",
                                        format="date-time"),
                    "lastScale": _s("Its last change: from -> to, and why."),
                },
            ),
            "lastAction": _s("The last spec change classification: scale, roll, reload, ..."),
            # kopf keeps handler progress here; without this the API server prunes it
            # silently and kopf re-runs handlers forever.
            "kopf": {
                "type": "object",
                "description": "Handler progress kept by kopf.",
                "x-kubernetes-preserve-unknown-fields": True,
            },
        },
    )


def printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase",
         "description": "Application phase."},
        {"name": "Executors", "type": "string", "jsonPath": ".status.executors.summary",
         "description": "Ready/desired executor pods."},
        {"name": "Worst-P99/SLO", "type": "string", "jsonPath": ".status.worstJob",
         "description": "Stream job furthest from its SLO."},
        {"name": "Policy", "type": "string", "jsonPath": ".spec.policy", "priority": 1,
         "description": "Scheduling policy."},
        {"name": "Priority", "type": "string",
         "jsonPath": ".status.assignedPriority.priorityClassName", "priority": 1,
         "description": "Assigned PriorityClass."},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "neptune"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["neptune"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": _o(
                            "A continuous application: stream and batch jobs sharing code and "
                            "state, with batch tasks suspended when stream tasks need a core.",
                            {
                                "apiVersion": _s("API version of the object."),
                                "kind": _s("Kind of the object."),
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                            required=["spec"],
                            **{"x-kubernetes-validations": [
                                _rule(f"self.metadata.name.size() <= {MAX_NAME}",
                                      f"metadata.name must be at most {MAX_NAME} characters "
                                      "(children add suffixes such as -executor-12)"),
                                # A resource name may be any DNS subdomain, but it names the
                                # app's Services, which must be DNS-1035 labels.
                                _rule(f"self.metadata.name.matches('{DNS_1035_LABEL}')",
                                      "metadata.name must start with a lowercase letter and "
                                      "hold only lowercase letters, digits and '-' (it names "
                                      "the app's Services NAME-driver and NAME-executor, "
                                      "which must be DNS-1035 labels)"),
                            ]},
                        )
                    },
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.executors.replicas",
                            "statusReplicasPath": ".status.executors.ready",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": printer_columns(),
                }
            ],
        },
    }
