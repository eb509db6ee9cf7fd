"""`make bench-cluster`: the quick benchmark's neptune point as ContinuousApplications on the
local cluster, beside local mode on the same machine, in one run (issue 14, item 1, and item
2's measurements).

The workload is the quick benchmark's kind shape: ~100 ms batch tasks of ~10 us pure-Python
records (workload.py's tasks, calibrated here), 1 ms stream tasks, one task and one result per
event, events arriving Poisson at 20/s. Here the events are POSTed one a request to the driver's
/ingest/stream, as an HTTP client of the app would (`PoissonPoster`), and the driver keeps its
ingest log in its state directory (the pods' emptyDir; a temporary directory in local mode).
The app module is `cluster_apps/bench_app.py`, shipped as one self-contained file in a
ConfigMap (`app_source`): the image holds only the runtime and the operator.

Scenarios (`plan`): stream alone, batch alone, neptune, fair and kill, each in pods (a driver
pod and one executor pod of one slot, made by the operator from a ContinuousApplication) and
in local mode (driver and executor processes pinned to one core each, as `neptunectl bench`
runs them), side by side; then A/B runs of item 2's fast path in pods, the executor's bell
watcher (_bellwatch.c) on and off (NEPTUNE_BELL_WATCH), interleaved; neptune in local mode with
a driver that does not ring the doorbell, as in pods, watcher on and off; and neptune in local
mode unpinned. One scenario at a time, each app deleted before the next starts.

Each measured window: a warm-up with events, a pause until the last event is answered (and,
in pods, until Prometheus scraped both pods after it), the driver's live figures reset, the
window with events, a pause again, then the figures: the driver's /status (read over `kubectl
proxy` and the API server's service proxy with the read token of the Secret NAME-ingest-token)
and the Prometheus histograms of the pods (the local Prometheus of e2e/prometheus.sh; the
difference of the cumulative buckets before and after the window, so exactly the window's
observations; local mode scrapes the processes' /metrics the same way).

    python -m neptune_bench.cluster_bench --json bench/results/cluster.json \\
        --markdown bench/results/cluster.md
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from neptune_operator.constants import EXECUTOR_CONTAINER, HTTP_PORT, LABEL_APP, TOKEN_HEADER
from neptune_runtime.processes import LocalCluster

from . import workload
from .report import verdicts
from .runner import LEDGER_GRACE_S, Point, _cpus, machine
from .summary import bucket_cdf, histogram_buckets
from .work import calibrate, records_for

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parents[1]
try:
    from e2e.tests.kube import IMAGE, Kubectl, install_release, prom_query, tool, wait_until
    from e2e.tests.test_neptune import IngestApp
    from e2e.tests_multinode.mn import LABEL_NODE, admit_control_plane
except ModuleNotFoundError:  # run from outside the checkout's root: the e2e helpers are there
    sys.path.insert(0, str(REPO_DIR))
    from e2e.tests.kube import IMAGE, Kubectl, install_release, prom_query, tool, wait_until
    from e2e.tests.test_neptune import IngestApp
    from e2e.tests_multinode.mn import LABEL_NODE, admit_control_plane

APP_FILE = BENCH_DIR / "cluster_apps" / "bench_app.py"
SHIPPED = ("work", "workload")  # neptune_bench modules the app module needs, in import order
NAMESPACE = "neptune-bench"
OPERATOR_NS = "neptune-bench-system"
RELEASE = "neptune-bench"
PRIORITY_CLASS = "neptune-bench"
# What `neptunectl bench --quick` gives its neptune run (runner.QUICK_NEPTUNE_MEASURE_S), for
# every run here: ~200 preemptions a window, whose p99 is their third largest.
WARMUP_S = 3.0
MEASURE_S = 10.0
BUDGET_S = 13 * 60.0
# Above this, local mode's suspension p99 is the machine's load, not the runtime (the report
# says so beside the targets).
LOCAL_P99_SANE_US = 1000.0
# Resources of the pods, as examples/online-learning.yaml gives them.
DRIVER_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"}}
EXECUTOR_RESOURCES = {"requests": {"cpu": "500m", "memory": "256Mi"},
                      "limits": {"cpu": "1", "memory": "512Mi"}}
# The histograms a user would look at: (name, labels matched, where)
HISTOGRAMS = {
    "stream_latency": ("neptune_stream_latency_seconds", 'job="stream"', "driver"),
    "stream_queue_delay": ("neptune_task_queue_delay_seconds", 'job="stream"', "driver"),
    "suspension_latency": ("neptune_task_suspension_latency_seconds", "", "executor"),
}
QUANTILES = (0.5, 0.99)


@dataclass(frozen=True)
class Scenario:
    """One run: the jobs (`mode`), the policy, where it runs ("pods", "local" pinned like
    `neptunectl bench`, or "local-unpinned"), whether the executor's bell watcher runs,
    whether the driver may ring the executor's doorbell (local mode only: in pods it cannot)
    the executor pod's CPU (pods only: EXECUTOR_CPU), and on the multi-node cluster
    ("nodes") the nodes of the driver and of the executor."""

    name: str
    mode: str
    policy: str
    where: str
    watch: bool = True
    doorbell: bool = True  # False: the driver does not ring it (local mode as the pods are)
    executor_cpu: str = "dedicated"  # one of EXECUTOR_CPU
    # where "nodes" (the multi-node cluster): the driver's node and the executor's
    nodes: tuple[str, str] | None = None
    image: str | None = None  # the app's pods run this image (None: the project image)

    @property
    def key(self) -> str:
        return f"{self.where}/{self.name}"

    @property
    def app_name(self) -> str:
        """The ContinuousApplication's name (a DNS label)."""
        return "bench-" + self.name.replace("_", "-")


CORE = (("stream_alone", "stream", "fifo"), ("batch_alone", "batch", "fifo"),
        ("neptune", "both", "neptune"), ("fair", "both", "fair"), ("kill", "both", "kill"))


AB_AXES = ("watch", "shared", "cpulimit", "image")
# The executor pod's CPU: "dedicated", one whole CPU requested and limited (Guaranteed: the
# kubelet's static CPU manager gives it a CPU of its own, as local mode pins its executor);
# "shared", EXECUTOR_RESOURCES (Burstable: it shares the node's CPUs with every other pod);
# "nolimit", the same without the CPU limit (no CFS quota).
EXECUTOR_CPU = ("dedicated", "shared", "nolimit")
AB_SIDES = {"watch": "defaults (watch)", "nowatch": "bell watcher off (nowatch)",
            "nolimit": "executor pod without a CPU limit (nolimit)",
            "shared": "executor pod sharing the node's CPUs (shared)",
            "imageb": "the pods on --image-b (imageb)",
            "across": "driver and executor on two nodes (across)",
            "samenode": "both on one node (samenode)"}


CLUSTER_PLACES = ("pods", "nodes")  # scenarios of a Kubernetes cluster (KUBECONFIG)
ACROSS = ("node1", "node2")  # the driver on one node, the executor on another
SAME_NODE = ("node2", "node2")


def plan_nodes(rounds: int = 3) -> list[Scenario]:
    """On the multi-node cluster (e2e/multinode.sh): stream and batch alone across nodes,
    then `rounds` rounds of neptune with the executor on another node than the driver against
    both on one node, alternating which goes first."""
    # Its kubelets give no pod a CPU of its own (they share the host's cores): shared.
    out = [Scenario("stream_alone", "stream", "fifo", "nodes", nodes=ACROSS,
                    executor_cpu="shared"),
           Scenario("batch_alone", "batch", "fifo", "nodes", nodes=ACROSS,
                    executor_cpu="shared")]
    for round_ in range(rounds):
        sides = [Scenario(f"neptune_r{round_ + 1}", "both", "neptune", "nodes", nodes=ACROSS,
                          executor_cpu="shared"),
                 Scenario(f"neptune_samenode_r{round_ + 1}", "both", "neptune", "nodes",
                          nodes=SAME_NODE, executor_cpu="shared")]
        out += sides if round_ % 2 else sides[::-1]
    return out


def plan(ab_rounds: int = 3, ab: str = "watch", image_b: str | None = None) -> list[Scenario]:
    """Every scenario, in the order they run: the five core ones, local mode then pods for
    each; then `ab_rounds` rounds of an A/B in pods, alternating which side goes first: with
    `ab` "watch", the executor's bell watcher on against off; with "shared", the executor
    pod on a CPU of its own against sharing the node's; with "cpulimit", against sharing them
    with no CPU limit; with "image", the app's pods on the project
    image against on `image_b` (another build of the runtime); then neptune in local mode
    with a driver that does not ring the doorbell (the executor's part of the pods' path, on
    the local processes' placement), watcher on and off; neptune in local mode unpinned."""
    if ab not in AB_AXES:
        raise ValueError(f"ab must be one of {AB_AXES}, not {ab!r}")
    if (ab == "image") != (image_b is not None):
        raise ValueError("the image A/B needs image_b, and only it takes one")
    out = [Scenario(name, mode, policy, where) for name, mode, policy in CORE
           for where in ("local", "pods")]
    for round_ in range(ab_rounds):
        other = {"watch": Scenario(f"neptune_nowatch_r{round_ + 1}", "both", "neptune", "pods",
                                   watch=False),
                 "cpulimit": Scenario(f"neptune_nolimit_r{round_ + 1}", "both", "neptune",
                                      "pods", executor_cpu="nolimit"),
                 "shared": Scenario(f"neptune_shared_r{round_ + 1}", "both", "neptune",
                                    "pods", executor_cpu="shared"),
                 "image": Scenario(f"neptune_imageb_r{round_ + 1}", "both", "neptune", "pods",
                                   image=image_b)}[ab]
        sides = [Scenario(f"neptune_r{round_ + 2}", "both", "neptune", "pods"), other]
        out += sides if round_ % 2 else sides[::-1]
    out.append(Scenario("neptune_nobell", "both", "neptune", "local", doorbell=False))
    out.append(Scenario("neptune_nobell_nowatch", "both", "neptune", "local", watch=False,
                        doorbell=False))
    out.append(Scenario("neptune", "both", "neptune", "local-unpinned"))
    return out


# ---------------------------------------------------------------------------------------------
# The app module and the resources (pure)


def settings(scenario: Scenario, loops: int) -> dict[str, str]:
    """The environment the app module sets for itself (the CRD passes none to the pods):
    the quick benchmark's workload settings, its jobs, and the poll interval if any."""
    out = {**Point().env(loops), "BENCH_MODE": "none", "BENCH_APP_MODE": scenario.mode}
    if not scenario.watch:
        out["NEPTUNE_BELL_WATCH"] = "0"
    if not scenario.doorbell:
        out["BENCH_NO_DOORBELL"] = "1"
    return out


FUTURE = "from __future__ import annotations\n"
HEADER = '''# Generated by neptune_bench.cluster_bench (app_source). The image holds no
# neptune_bench: this file sets the run's settings, registers copies of the neptune_bench
# modules that the app needs, then is neptune_bench/cluster_apps/bench_app.py.
import os as _os
import sys as _sys
import types as _types

_os.environ.update({settings!r})


def _register(_name: str, _source: str) -> None:
    _module = _types.ModuleType(_name)
    _module.__file__ = f"<{{_name}}, shipped by cluster_bench>"
    _sys.modules[_name] = _module
    exec(compile(_source, _module.__file__, "exec"), _module.__dict__)
    _parent, _, _child = _name.rpartition(".")
    if _parent:
        setattr(_sys.modules[_parent], _child, _module)


if _os.environ.get("BENCH_NO_DOORBELL") == "1":
    import neptune_runtime.doorbell as _doorbell  # the driver's and the executor's

    def _cannot_attach(*_args: object) -> None:  # the driver cannot ring it, as across pods
        return None

    _doorbell.Ringer.attach = _cannot_attach  # type: ignore[method-assign, assignment]


_package = _types.ModuleType("neptune_bench")
_package.__path__ = []
_sys.modules["neptune_bench"] = _package
'''


def app_source(env: dict[str, str]) -> str:
    """The app module of a run as one file: `env` set into os.environ, then copies of the
    SHIPPED modules registered as neptune_bench.NAME, then cluster_apps/bench_app.py."""
    body = APP_FILE.read_text()
    if FUTURE not in body:
        raise ValueError(f"{APP_FILE} must start with {FUTURE.strip()!r}")
    parts = [FUTURE, HEADER.format(settings=dict(sorted(env.items())))]
    for name in SHIPPED:
        source = (BENCH_DIR / f"{name}.py").read_text()
        parts.append(f"_register({f'neptune_bench.{name}'!r}, {source!r})\n")
    parts.append("del _register, _package\n\n")
    parts.append(body.replace(FUTURE, "", 1))
    return "".join(parts)


def jobs(mode: str) -> list[dict[str, Any]]:
    """spec.jobs for the app's jobs in `mode` (bench_app.py declares the same)."""
    out: list[dict[str, Any]] = []
    if mode in ("both", "batch"):
        out.append({"name": "batch", "kind": "batch", "partitions": workload.PARTITIONS})
    if mode in ("both", "stream"):
        out.append({"name": "stream", "kind": "stream", "slo": "10ms", "trigger": "event",
                    "source": {"http": {}}})
    return out


def source_configmap(scenario: Scenario, ns: str, source: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{scenario.app_name}-source", "namespace": ns},
            "data": {"app.py": source}}


def executor_resources(cpu: str = "dedicated") -> dict[str, dict[str, str]]:
    """The executor pod's resources for `cpu`, one of EXECUTOR_CPU."""
    limits = EXECUTOR_RESOURCES["limits"]
    if cpu == "dedicated":  # requests equal to limits, a whole CPU: Guaranteed
        return {"requests": {**limits, "cpu": "1"}, "limits": {**limits, "cpu": "1"}}
    if cpu == "shared":
        return EXECUTOR_RESOURCES
    if cpu == "nolimit":
        return {**EXECUTOR_RESOURCES, "limits": {k: v for k, v in limits.items() if k != "cpu"}}
    raise ValueError(f"executor cpu must be one of {EXECUTOR_CPU}, not {cpu!r}")


def app_manifest(scenario: Scenario, ns: str, image: str = IMAGE,
                 **spec: Any) -> dict[str, Any]:
    """The ContinuousApplication of a pods scenario: one driver, one executor pod of one slot,
    the module from the scenario's ConfigMap, the driver's state on an emptyDir, on the
    scenario's nodes if it names them, its image if it has one; `spec`'s fields replace
    those."""
    driver: dict[str, Any] = {"resources": DRIVER_RESOURCES}
    executors: dict[str, Any] = {"replicas": 1, "slotsPerPod": 1,
                                 "resources": executor_resources(scenario.executor_cpu)}
    if scenario.nodes is not None:
        driver["nodeSelector"] = {LABEL_NODE: scenario.nodes[0]}
        executors["nodeSelector"] = {LABEL_NODE: scenario.nodes[1]}
    return {
        "apiVersion": "neptune.dev/v1alpha1", "kind": "ContinuousApplication",
        "metadata": {"name": scenario.app_name, "namespace": ns},
        "spec": {
            "image": scenario.image or image, "imagePullPolicy": "IfNotPresent",
            "app": {"configMap": {"name": f"{scenario.app_name}-source", "key": "app.py"}},
            "driver": driver,
            "executors": executors,
            "jobs": jobs(scenario.mode),
            "policy": scenario.policy,
            **spec,
        },
    }


def operator_values(namespaces: list[str], image: str = IMAGE,
                    feedback: dict[str, Any] | None = None, **operator: Any) -> dict[str, Any]:
    """The chart's values for the benchmark's own operator: it watches only the benchmark's
    namespaces and has its own PriorityClass, so it shares nothing with another release;
    `feedback` and `operator`'s settings replace the chart's `feedback.*` and `operator.*`."""
    repo, _, tag = image.rpartition(":")
    return {**({"feedback": feedback} if feedback else {}),
            "image": {"repository": repo, "tag": tag, "pullPolicy": "IfNotPresent"},
            "operator": {"watchNamespaces": namespaces, "statusInterval": 15, **operator},
            "priorityClasses": {"create": True, "classes": [
                {"name": PRIORITY_CLASS, "value": 10000, "minAppPriority": 0}]},
            "monitoring": {"dashboard": {"enabled": False}}}


# ---------------------------------------------------------------------------------------------
# Summaries (pure)


def histogram_diff(before: list[tuple[float, float]],
                   after: list[tuple[float, float]]) -> dict[str, Any]:
    """The observations between two snapshots of a cumulative histogram: count, and p50/p99
    by Prometheus' histogram_quantile rule (linear within the bucket holding the rank; the
    first bucket starts at 0; a rank in the +Inf bucket gives the highest finite bound), in
    microseconds, with the CDF points (upper bound ms, fraction)."""
    base = dict(before)
    total = dict(after).get(float("inf"), 0.0) - base.get(float("inf"), 0.0)
    cdf = bucket_cdf(before, after)
    out: dict[str, Any] = {"count": total, "cdf": cdf}
    for q in QUANTILES:
        out[f"p{q * 100:g}_us"] = quantile_from_cdf(cdf, q)
    return out


def quantile_from_cdf(cdf: list[tuple[float, float]], q: float) -> float | None:
    """histogram_quantile over CDF points (upper bound in ms, fraction <= it), in us."""
    if not cdf:
        return None
    lower_bound, lower_frac = 0.0, 0.0
    for bound, frac in cdf:
        if frac >= q:
            if frac == lower_frac:
                return bound * 1e3
            return (lower_bound + (bound - lower_bound) * (q - lower_frac)
                    / (frac - lower_frac)) * 1e3
        lower_bound, lower_frac = bound, frac
    return cdf[-1][0] * 1e3  # in the +Inf bucket


def hop_split(row: dict[str, Any]) -> dict[str, Any]:
    """The suspension figures of a run by hop: driver send to task start (/status
    send_to_start_us), of which on the executor, kernel arrival to start (arrival_to_start_us);
    the driver-to-executor hop (send to kernel arrival) as the difference of the p50s and of
    the p99s: /status gives percentiles, not pairs, so these differences are estimates."""
    s2s, local = row.get("send_to_start_us") or {}, row.get("arrival_to_start_us") or {}
    out: dict[str, Any] = {"count": s2s.get("count", 0)}
    for k in ("p50", "p99", "max"):
        out[f"send_to_start_{k}_us"] = s2s.get(k)
        out[f"arrival_to_start_{k}_us"] = local.get(k)
    for k in ("p50", "p99"):
        a, b = s2s.get(k), local.get(k)
        out[f"send_to_arrival_{k}_us_est"] = None if a is None or b is None else a - b
    return out


def _ratio(value: float | None, reference: float | None) -> float | None:
    return None if value is None or not reference else value / reference


def _median(values: list[float | None]) -> float | None:
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    mid = len(present) // 2
    return present[mid] if len(present) % 2 else (present[mid - 1] + present[mid]) / 2


def summarize(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per place (pods, local): each policy's stream p50/p99, batch throughput relative to
    batch alone in the same place and the suspension hops; item 2's three targets; the
    bell watcher's A/B (pods, every neptune run of each side, median and range)."""
    places: dict[str, Any] = {}
    for where in ("local", "pods", "local-unpinned", "nodes"):
        rows = {k.split("/", 1)[1]: r for k, r in runs.items()
                if k.split("/", 1)[0] == where and not r.get("error")}
        if not rows:
            continue
        alone = (rows.get("batch_alone") or {}).get("batch_records_per_s")
        places[where] = {name: {
            "stream_p50_ms": row.get("stream_p50_ms"), "stream_p99_ms": row.get("stream_p99_ms"),
            "stream_max_ms": row.get("stream_max_ms"),
            "batch_throughput_rel": (_ratio(row.get("batch_records_per_s"), alone)
                                     if row["mode"] == "both" else None),
            "batch_records_per_s": row.get("batch_records_per_s"),
            "suspension": hop_split(row) if row["mode"] == "both" else None,
        } for name, row in rows.items()}
    pods, local = places.get("pods", {}), places.get("local", {})

    def figure(place: dict[str, Any], name: str, *path: str) -> float | None:
        value: Any = place.get(name)
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        return value if isinstance(value, (int, float)) else None

    pods_s99 = figure(pods, "neptune", "suspension", "send_to_start_p99_us")
    local_s99 = figure(local, "neptune", "suspension", "send_to_start_p99_us")
    alone_p99 = figure(pods, "stream_alone", "stream_p99_ms")
    checks = {
        "pods: neptune suspension p99 <= 1.5x local mode's": (
            pods_s99, None if local_s99 is None else 1.5 * local_s99, "<="),
        "pods: neptune stream p99 <= 2x stream alone's in pods": (
            figure(pods, "neptune", "stream_p99_ms"),
            None if alone_p99 is None else 2 * alone_p99, "<="),
        "pods: neptune batch_throughput_rel >= 0.90": (
            figure(pods, "neptune", "batch_throughput_rel"), 0.90, ">="),
    }
    return {"places": places, "targets": verdicts(checks) if pods else {},
            "ab": ab_summary(pods), "nodes_ab": ab_summary(places.get("nodes", {}), "across")}


AB_VARIANTS = ("nowatch", "shared", "nolimit", "imageb", "samenode")


def ab_summary(pods: dict[str, Any], default: str = "watch") -> dict[str, Any]:
    """A place's neptune runs by side: the defaults (`default`: neptune, neptune_rN; pods:
    watch, nodes: across), the bell watcher off (nowatch: neptune_nowatch_rN), the executor
    sharing the node's CPUs (shared: neptune_shared_rN), without a CPU limit (nolimit:
    neptune_nolimit_rN), the pods on the A/B's other image
    (imageb: neptune_imageb_rN), driver and executor on one node of
    the multi-node cluster (samenode: neptune_samenode_rN); per figure the median, min and
    max over the side's runs."""
    sides: dict[str, list[dict[str, Any]]] = {default: [], **{k: [] for k in AB_VARIANTS}}
    for name, row in pods.items():
        if not name.startswith("neptune") or row.get("suspension") is None:
            continue
        side = next((k for k in AB_VARIANTS if name.startswith(f"neptune_{k}")), default)
        s = row["suspension"]
        sides[side].append({"run": name, "s2s_p50_us": s["send_to_start_p50_us"],
                            "s2s_p99_us": s["send_to_start_p99_us"],
                            "s2s_max_us": s["send_to_start_max_us"],
                            "a2s_p50_us": s["arrival_to_start_p50_us"],
                            "a2s_p99_us": s["arrival_to_start_p99_us"],
                            "stream_p99_ms": row["stream_p99_ms"],
                            "batch_rel": row["batch_throughput_rel"]})
    out: dict[str, Any] = {}
    for side, side_runs in sides.items():
        if not side_runs:
            continue
        keys = [k for k in side_runs[0] if k != "run"]
        out[side] = {"runs": side_runs, **{k: {
            "median": _median([r[k] for r in side_runs]),
            "min": min((r[k] for r in side_runs if r[k] is not None), default=None),
            "max": max((r[k] for r in side_runs if r[k] is not None), default=None)}
            for k in keys}}
    return out


# ---------------------------------------------------------------------------------------------
# Events: a Poisson client of /ingest/stream


class PoissonPoster:
    """POSTs event i (a JSON array of one integer, counting on from `first`) to `url` at
    Poisson times of `rate` per second, one request each, over one keep-alive connection, in a
    thread; counts what the driver accepted (202). A request that fails is counted, the
    connection made again, and the schedule kept (a late event goes at once)."""

    def __init__(self, url: str, token: str, rate: float, first: int = 0, seed: int = 11):
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port, self.path = parsed.hostname or "", parsed.port or 80, parsed.path
        self.token, self.rate, self.first, self.next_index = token, rate, first, first
        self.rng = random.Random(seed + first)
        self.accepted = self.failed = 0
        self.late_ms_max = 0.0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PoissonPoster:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        due = time.monotonic()
        while not self._stop.is_set():
            due += self.rng.expovariate(self.rate)
            if self._stop.wait(max(0.0, due - time.monotonic())):
                break
            self.late_ms_max = max(self.late_ms_max, (time.monotonic() - due) * 1e3)
            body = json.dumps([self.next_index]).encode()
            self.next_index += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                conn.request("POST", self.path, body, {"Content-Type": "application/json",
                                                       TOKEN_HEADER: self.token})
                response = conn.getresponse()
                response.read()
                if response.status == 202:
                    self.accepted += 1
                else:
                    self.failed += 1
                    self.errors = [*self.errors, f"HTTP {response.status}"][-5:]
            except (OSError, http.client.HTTPException) as exc:
                self.failed += 1
                self.errors = [*self.errors, f"{type(exc).__name__}: {exc}"][-5:]
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()


# ---------------------------------------------------------------------------------------------
# Where a scenario runs


class Target(Protocol):
    ingest_url: str
    ingest_token: str

    def status(self) -> dict[str, Any]: ...

    def reset(self) -> None: ...

    def snapshot(self, quiet_since: float) -> dict[str, list[tuple[float, float]]]: ...


@dataclass
class PodTarget:
    """A pods scenario's app: /status and reset over `kubectl proxy` (IngestApp.request), events
    straight to the driver pod's IP (from this host, as a client in the cluster would: no API
    server on the events' path), histograms from Prometheus."""

    app: IngestApp
    prometheus: bool = True  # False: no histograms (the multi-node cluster has no Prometheus)
    ingest_url: str = ""
    ingest_token: str = ""
    image_id: str | None = None  # what the executor pod runs (the image's digest)
    executor_cpus: list[int] | None = None  # the CPUs its container may run on

    def __post_init__(self) -> None:
        (driver,) = self.app.pods("driver")
        self.ingest_url = f"http://{driver['status']['podIP']}:{HTTP_PORT}/ingest/stream"
        self.ingest_token = self.app.tokens()["ingest"]
        statuses = self.app.pods("executor")[0]["status"].get("containerStatuses") or [{}]
        self.image_id = statuses[0].get("imageID")
        self.executor_cpus = self.app.kubectl.cpus(
            self.app.ns, self.app.pods("executor")[0]["metadata"]["name"], EXECUTOR_CONTAINER)

    def status(self) -> dict[str, Any]:
        code, doc = self.app.request("GET", "/status", self.app.tokens()["read"])
        if code != 200 or not isinstance(doc, dict):
            raise AssertionError(f"GET /status: {code} {doc}")
        return doc

    def reset(self) -> None:
        code, doc = self.app.request("POST", "/admin/reset-stats", self.ingest_token)
        if code != 200:
            raise AssertionError(f"POST /admin/reset-stats: {code} {doc}")

    @property
    def selector(self) -> str:
        label = LABEL_APP.replace(".", "_").replace("/", "_")
        return f'namespace="{self.app.ns}",{label}="{self.app.name}"'

    def snapshot(self, quiet_since: float) -> dict[str, list[tuple[float, float]]]:
        """Once Prometheus scraped the driver and the executor after `quiet_since` (wall
        clock), the buckets of each histogram as of now."""
        if not self.prometheus:
            return {}

        def scraped() -> bool:
            found = prom_query(f"timestamp(up{{{self.selector}}})")
            return len(found) >= 2 and all(float(r["value"][1]) > quiet_since for r in found)

        wait_until("a Prometheus scrape of both pods after the pause", scraped, timeout=30,
                   interval=0.5)
        at = time.time()
        out = {}
        for key, (name, match, _) in HISTOGRAMS.items():
            labels = ",".join(x for x in (self.selector, match) if x)
            found = prom_query(f"sum by (le) ({name}_bucket{{{labels}}} @ {at:.3f})")
            out[key] = sorted((float(r["metric"]["le"]), float(r["value"][1])) for r in found)
        return out


@dataclass
class LocalTarget:
    cluster: LocalCluster
    ingest_url: str = ""
    ingest_token: str = ""

    def __post_init__(self) -> None:
        self.ingest_url = self.cluster.http + "/ingest/stream"
        self.ingest_token = self.cluster.tokens["ingest"]

    def status(self) -> dict[str, Any]:
        return self.cluster.status()

    def reset(self) -> None:
        self.cluster.post("/admin/reset-stats")

    def snapshot(self, quiet_since: float) -> dict[str, list[tuple[float, float]]]:
        """The processes' /metrics now (the same histograms, scraped directly)."""
        texts = {"driver": _get(self.cluster.http + "/metrics"),
                 "executor": "".join(_get(f"http://127.0.0.1:{port}/metrics")
                                     for port in self.cluster.metrics_ports.values())}
        return {key: histogram_buckets(texts[where], name, match)
                for key, (name, match, where) in HISTOGRAMS.items()}


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        text: str = response.read().decode()
        return text


# ---------------------------------------------------------------------------------------------
# One measured window


def _drained(target: Target, grace: float = LEDGER_GRACE_S) -> dict[str, Any]:
    """/status once the stream job answered every event it took (or after `grace`)."""
    deadline = time.monotonic() + grace
    while True:
        status = target.status()
        stream = status["jobs"].get("stream")
        if stream is None or (stream["results"] >= stream["events"]
                              and stream["uncommitted"] == 0) or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def measure(target: Target, scenario: Scenario, warmup: float, window: float,
            rate: float) -> dict[str, Any]:
    """Warm-up, pause, reset, the window, pause; the run's figures (runner.run_scenario's
    keys, plus events in and out, the histograms and the executors' doorbells)."""
    stream = scenario.mode != "batch"
    posters: list[PoissonPoster] = []

    def events(seconds: float) -> None:
        if not stream:
            time.sleep(seconds)
            return
        first = posters[-1].next_index if posters else 0
        with PoissonPoster(target.ingest_url, target.ingest_token, rate, first) as poster:
            time.sleep(seconds)
        posters.append(poster)

    events(warmup)
    _drained(target)
    before = target.snapshot(time.time()) if stream else {}
    target.reset()
    start = target.status()["jobs"].get("batch", {})
    events(window)
    at_end = target.status()  # the batch job's figures: the window's, none of the pause's
    final = _drained(target)
    after = target.snapshot(time.time()) if stream else {}
    s, b = final["jobs"].get("stream", {}), at_end["jobs"].get("batch", {})
    records = (b["records"] - start.get("records", 0)) if b else None
    poster = posters[-1] if posters else None
    return {
        "where": scenario.where, "policy": scenario.policy, "mode": scenario.mode,
        "watch": scenario.watch, "driver_rings": scenario.doorbell,
        "executor_cpu": scenario.executor_cpu, "image": scenario.image,
        "stream_p50_ms": s.get("p50_ms"), "stream_p99_ms": s.get("p99_ms"),
        "stream_max_ms": s.get("max_ms"), "stream_events": s.get("events"),
        "slo_attainment": s.get("slo_attainment"),
        "events": {"posted": poster.next_index - poster.first,
                   "accepted": poster.accepted, "failed": poster.failed,
                   "errors": poster.errors, "client_late_ms_max": round(poster.late_ms_max, 3),
                   "driver_events": s.get("events"), "results": s.get("results"),
                   "unanswered": s["events"] - s["results"]} if poster and s else None,
        "batch_records": records,
        "batch_tasks": (b["tasks_finished"] - start.get("tasks_finished", 0)) if b else None,
        "batch_records_per_s": records / window if records is not None else None,
        "suspensions": b.get("suspensions", 0) if b else 0,
        "yield_interval_ms": b.get("yield_interval_ms") if b else None,
        "wasted_task_seconds": final["wasted_task_seconds"],
        "send_to_start_us": final["preemption"]["send_to_start_us"],
        "arrival_to_start_us": final["preemption"]["arrival_to_start_us"],
        "slowest": final["preemption"].get("slowest"),
        "doorbell": [e["doorbell"] for e in final["executors"]["list"]],
        "warnings": final.get("warnings", []),
        "histograms": {key: histogram_diff(before[key], after[key]) for key in after},
    }


# ---------------------------------------------------------------------------------------------
# The cluster side


def other_operators(kubectl: Kubectl) -> list[str]:
    """Neptune operators of other releases: they would reconcile our apps too."""
    found = kubectl.json("get", "deploy", "-A", "-l", "app.kubernetes.io/name=neptune-operator")
    return [f"{d['metadata']['namespace']}/{d['metadata']['name']}" for d in found["items"]
            if d["metadata"]["namespace"] != OPERATOR_NS]


def install_operator(kubectl: Kubectl, namespaces: list[str],
                     feedback: dict[str, Any] | None = None, **operator: Any) -> None:
    """The benchmark's release, installed or upgraded to `operator`'s settings."""
    for ns in namespaces:
        kubectl.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest"}}})
    with tempfile.NamedTemporaryFile("w", suffix=".json") as values:
        json.dump(operator_values(namespaces, feedback=feedback, **operator), values)
        values.flush()
        install_release(RELEASE, OPERATOR_NS, "-f", values.name)


def uninstall(kubectl: Kubectl, namespaces: list[str]) -> None:
    """The release and the namespaces, gone when this returns: a run started next would find
    its namespace still Terminating, where nothing can be created."""
    for ns in namespaces:
        kubectl.run("delete", "namespace", ns, "--wait=false", check=False)
    subprocess.run([tool("helm"), "uninstall", RELEASE, "-n", OPERATOR_NS, "--ignore-not-found",
                    "--wait"], check=False, capture_output=True, timeout=300)
    kubectl.run("delete", "namespace", *namespaces, OPERATOR_NS, "--ignore-not-found",
                "--wait=true", "--timeout=180s", check=False, timeout=200)


@contextlib.contextmanager
def pod_app(kubectl: Kubectl, scenario: Scenario, source: str, ns: str = NAMESPACE,
            **spec: Any) -> Iterator[PodTarget]:
    """The scenario's ContinuousApplication (`spec`: app_manifest's), Running with its
    executors registered; deleted afterwards, and its pods gone before the next scenario
    starts."""
    manifest = app_manifest(scenario, ns, **spec)
    replicas = int(manifest["spec"]["executors"]["replicas"])
    kubectl.apply([source_configmap(scenario, ns, source), manifest])
    if scenario.where == "nodes":  # kube-router enforces the app's policy: admit this host
        admit_control_plane(kubectl, ns, HTTP_PORT)
    app = IngestApp(kubectl, ns, scenario.app_name, replicas)
    try:
        app.wait_running()
        wait_until(f"{app.name}: the driver's /healthz through the service proxy",
                   lambda: app.request("GET", "/healthz")[0] == 200, timeout=120)
        target = PodTarget(app, prometheus=scenario.where == "pods")
        wait_until(f"{app.name}: the executors registered",
                   lambda: target.status()["executors"]["live"] >= replicas, timeout=120)
        yield target
    finally:
        kubectl.run("-n", ns, "delete", "capp", scenario.app_name, "--wait=true", check=False,
                    timeout=180)
        kubectl.run("-n", ns, "delete", "configmap", f"{scenario.app_name}-source",
                    check=False)
        wait_until(f"{app.name}: its pods gone", lambda: not kubectl.json(
            "-n", ns, "get", "pods", "-l", f"{LABEL_APP}={app.name}")["items"], timeout=180)


@contextlib.contextmanager
def local_app(scenario: Scenario, source: str) -> Iterator[LocalTarget]:
    """The same module as processes: one executor; pinned like `neptunectl bench` (driver on
    the first CPU, executor on the last) unless "local-unpinned"; state in a temporary
    directory (the ingest log, as in the pods)."""
    driver_cpu, executor_cpu = _cpus() if scenario.where == "local" else (None, None)
    with tempfile.TemporaryDirectory(prefix="neptune-cluster-bench-") as tmp, \
            open(os.devnull, "w") as log:
        path = Path(tmp) / "bench_app.py"
        path.write_text(source)
        cluster = LocalCluster(str(path), executors=1, policy=scenario.policy, log=log,
                               executor_cpus=None if executor_cpu is None else [executor_cpu],
                               driver_cpu=driver_cpu, executor_metrics=True,
                               state_dir=str(Path(tmp) / "state"))
        with cluster:
            yield LocalTarget(cluster)


# ---------------------------------------------------------------------------------------------
# The run


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _pytests() -> list[str]:
    """The pytest runs on this machine (other sessions' tests load it too: noted per run)."""
    out = subprocess.run(["pgrep", "-af", "pytest"], capture_output=True, text=True,
                         check=False)
    return [line[:160] for line in out.stdout.splitlines() if "pgrep" not in line]


def _uptime() -> str:
    out = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def run(scenarios: list[Scenario], warmup: float, window: float, budget: float,
        log: Callable[[str], None], loops: int | None = None) -> dict[str, Any]:
    """Every scenario in turn (none started after `budget` seconds); `loops` per record, or
    calibrated here."""
    calibrated = loops is None
    loops = calibrate() if loops is None else loops
    point = Point()
    started = time.monotonic()
    result: dict[str, Any] = {
        "config": {"warmup_s": warmup, "measure_s": window, "budget_s": budget,
                   "loops_per_record": loops, "loops_calibrated": calibrated,
                   "batch_ms": point.batch_ms,
                   "stream_ms": point.stream_ms, "rate_per_s": point.rate,
                   "batch_records_per_task": point.batch_records,
                   "stream_records_per_task": records_for(point.stream_ms),
                   "image": IMAGE, "namespace": NAMESPACE,
                   "driver_resources": DRIVER_RESOURCES,
                   "executor_resources": executor_resources(),
                   "executor_resources_shared": EXECUTOR_RESOURCES,
                   "local_cpus": dict(zip(("driver", "executor"), _cpus(), strict=True))},
        "uptime_start": _uptime(), "loadavg_start": list(os.getloadavg()),
        "runs": {}, "skipped": [],
    }
    log(f"cluster bench: {len(scenarios)} runs, {loops} loops per ~10 us record; "
        f"load at start: {result['uptime_start']}")
    kubectl = Kubectl() if any(s.where in CLUSTER_PLACES for s in scenarios) else None
    try:
        if kubectl is not None:
            others = other_operators(kubectl)
            if others:
                raise SystemExit("cluster bench: another Neptune operator runs ("
                                 f"{', '.join(others)}) and would reconcile the benchmark's "
                                 "apps too; run when it is gone (helm uninstall), e.g. after "
                                 "the e2e tests")
            log(f"  operator: helm release {RELEASE} in {OPERATOR_NS}, watching {NAMESPACE}")
            install_operator(kubectl, [NAMESPACE])
        for index, scenario in enumerate(scenarios):
            elapsed = time.monotonic() - started
            if elapsed > budget:
                result["skipped"].append(scenario.key)
                continue
            eta = elapsed / index * (len(scenarios) - index) if index else float("nan")
            log(f"[{index + 1}/{len(scenarios)}, {_clock(elapsed)} elapsed"
                + (f", ~{_clock(eta)} to go" if index else "") + f"] {scenario.key}"
                + ("" if scenario.watch else " (bell watcher off)")
                + ("" if scenario.executor_cpu == "dedicated"
                   else f" (executor CPU: {scenario.executor_cpu})")
                + (f" (image {scenario.image})" if scenario.image else "")
                + f", load {os.getloadavg()[0]:.2f}")
            if scenario.where in CLUSTER_PLACES and kubectl is not None \
                    and other_operators(kubectl):
                # another release came up meanwhile (an e2e run): it would reconcile our apps
                log(f"    skipped: another Neptune operator runs now ({other_operators(kubectl)})")
                result["skipped"].append(scenario.key + " (another operator ran)")
                continue
            result.setdefault("pytest_seen", {})[scenario.key] = _pytests()
            source = app_source(settings(scenario, loops))
            begun = time.monotonic()
            try:
                if scenario.where in CLUSTER_PLACES:
                    assert kubectl is not None
                    with pod_app(kubectl, scenario, source) as target:
                        row = measure(target, scenario, warmup, window, point.rate)
                        row["image_id"] = target.image_id
                        row["executor_cpus"] = target.executor_cpus
                else:
                    with local_app(scenario, source) as local:
                        row = measure(local, scenario, warmup, window, point.rate)
            except (AssertionError, OSError, subprocess.SubprocessError) as exc:
                log(f"    FAILED: {type(exc).__name__}: {exc}")
                row = {"where": scenario.where, "mode": scenario.mode,
                       "error": f"{type(exc).__name__}: {exc}"}
            row["elapsed_s"] = round(time.monotonic() - begun, 1)
            row["loadavg"] = list(os.getloadavg())
            result["runs"][scenario.key] = row
            if not row.get("error"):
                log("    " + _brief(row))
    finally:
        if kubectl is not None:
            log("  cleaning up: the benchmark's namespace and operator release")
            uninstall(kubectl, [NAMESPACE])
            kubectl.close()
    result.update(summarize(result["runs"]))
    result["uptime_end"] = _uptime()
    result["machine"] = machine()
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    log(f"cluster bench: done in {_clock(result['elapsed_s'])}; load at end: "
        f"{result['uptime_end']}")
    return result


def _brief(row: dict[str, Any]) -> str:
    parts = []
    if row.get("stream_p99_ms") is not None:
        parts.append(f"stream p50 {row['stream_p50_ms']:.2f} ms p99 {row['stream_p99_ms']:.2f} ms")
    if row.get("batch_records_per_s"):
        parts.append(f"batch {row['batch_records_per_s']:.0f} records/s")
    s2s = row.get("send_to_start_us") or {}
    if s2s.get("count"):
        parts.append(f"suspension p50 {s2s['p50']:.0f} us p99 {s2s['p99']:.0f} us "
                     f"({s2s['count']:.0f})")
    events = row.get("events") or {}
    if events.get("posted"):
        parts.append(f"events {events['accepted']}/{events['posted']} accepted, "
                     f"{events['results']} answered")
    return "; ".join(parts) or "done"


# ---------------------------------------------------------------------------------------------
# The report (pure)


def _f(value: Any, digits: int = 2) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:.{digits}f}"


POD_PATH = """\
## What the pod path does (item 2)

In local mode the executor makes a doorbell (doorbell.py: a page in /dev/shm named, with a
token, in its `ready` message); the driver, on the same host, opens it, sets its byte after
every message and copies a preempting `run` into its express slot, so a yield point sees a
preemption with one load and takes the task without reading the socket. In pods the driver
cannot open the executor pod's /dev/shm (/status `executors.list[].doorbell` is false in every
pods run here): the preemption travels over the TCP connection between the pods (veth, the
node's bridge). There the executor's own watcher thread (_bellwatch.c: epoll on the socket,
edge-triggered, no GIL) sets the doorbell's byte when the bytes arrive, so the next yield point
notices; the socket is also polled every NEPTUNE_POLL_US of task time (default 100 us), which
was the only way before (the `nowatch` runs, NEPTUNE_BELL_WATCH=0). The executor then reads the
frame over the socket (read, AES-GCM open, msgpack decode, the hub's handling); the driver's
forewarning, a message in pods, runs that path once while the policy decides, so that it is
warm for the `run`. The executor's share (`arrival_to_start`, from the kernel's receive
timestamp, SO_TIMESTAMPNS, to the stream task's start) is where all this shows; the
driver-to-executor hop is the rest of `send_to_start`. Both clocks are the node's: on one node
the comparison holds, across nodes it would not.
"""

TWO_APPS = """\
## Two applications on one node (item 3)

A high-priority app with a 10 ms stream SLO and a low-priority batch app on two executors,
competing for the node's CPU, with the operator's CPU weight by rank on and off in interleaved
rounds: [contention.md](contention.md) (`make bench-contention`), asserted in
e2e/tests/test_contention.py.
"""

IDEAS = """\
Ideas of item 2, and what was done with each:
- a receiver in the executor pod that rings the executor's doorbell: built as a thread of the
  executor process rather than a process beside it (no shared emptyDir needed: the page is the
  executor's own), _bellwatch.c; A/B above (watch against nowatch, interleaved).
- the forewarning moved into the executor's pod: built as a `forewarn` message, sent by the
  driver where it cannot ring the doorbell's byte 1; on in both sides of the A/B (its own share
  was not measured apart).
- a shorter poll interval (NEPTUNE_POLL_US): measured in the 6 December run (cluster.run3.md:
  20 us against 100 us, p99 753 against 1189 us, ranges overlapping); not changed.
- busy-poll socket options (SO_BUSY_POLL): not tried. Raising a socket's busy-poll time above
  the host's net.core.busy_read needs CAP_NET_ADMIN, which the pods drop (restricted Pod
  Security Standard), and busy polling acts on a NIC queue's NAPI context, which a veth between
  pods on a bridge does not give a socket.
- the socket's `run` taken in the running task's greenlet, as the express path does (no
  switch to the hub, the stream task started below the batch task's stack): built
  (executor/express.py `_from_socket`); `--ab image` against the runtime before it
  (ab/socket-path-pods.md, 7 December): p50 56 [53-67] against 92 [84-93] us, p99 unchanged.
- no CPU limit on the executor pod (CFS quota throttling suspected): `--ab cpulimit`
  (ab/cpulimit-pods.md): ranges overlap, and every pod's and container's cgroup counted
  `nr_throttled 0` during the runs: not the cause.
- the executor pod on a CPU of its own, as local mode pins its executor (Guaranteed, one
  whole CPU, the kubelet's static CPU manager; now the pods' default here): `--ab shared`
  (cluster.run6.md, and this run's A/B), 7 runs a side over two interleaved runs on 7
  December. Stream p99 3.4 [3.0-4.1] ms against 4.8 [4.4-4.9]: lower in all 7 pairs. The
  suspension was not helped: send to start p50 83 [77-101] us against 69 [66-76] (the bell
  watcher thread now wakes on the executor's own CPU, a context switch each message), p99
  414 [218-1070] against 366 [313-673]. A `perf sched` trace of the executor's CPU through
  one such run's window (8 s) found it running anything else for about 20 ms in all (the
  executor's own threads 10 ms, the API server 1.3 ms, CoreDNS 0.8 ms, containerd 0.6 ms):
  the host's other processes are not what the suspension tail waits for there.
- what is left of the tail: arrival to start is most of the p99 in every run; the wire's
  share is ~20 us. On a CPU of its own the trace above rules out the host's other processes.
  The slowest preemptions, each split where a yield point noticed it and with the span of
  that yield point's stride (cluster.run8.md, 8 December), are of two kinds, in pods and in
  local mode without the driver's ring alike (so the pod is not the cause, the missing ring
  is): 150-250 us from the arrival to the notice inside a stride of 300-450 us (the task ran
  no yield point for that long: the socket path's read of the forewarning and the rehearsal
  after it, cold); or noticed at once and 230-370 us from there to the start (the forewarning
  and the `run` read together: the preemption's path ran cold, unrehearsed).
- the forewarning off in pods (`--ab image`, ab/forewarn-off-pods.md): suspension p50 280
  against 122 us, p99 518 against 314: the forewarning stays.
- the rehearsal looking at the socket for the `run` at its checks, and the next yield point
  signalling at once when it is there (ab/rehearsal-socket-check-pods.md): p99 314 against
  323 us, p50 148 against 127, the late notices unchanged: not kept. The next step is the
  socket path's own cost when cold (the read, decode and start of a `run` ran 230-370 us
  unrehearsed in pods against ~60 us rehearsed locally): a trace of one such read.
- across nodes (the multi-node cluster): cluster_nodes.md.
"""


def markdown(result: dict[str, Any]) -> str:
    config = result["config"]
    places = result.get("places", {})
    lines = [
        "# The quick benchmark's workload in pods and in local mode (issue 14)",
        "",
        f"Poisson {config['rate_per_s']:g} events/s POSTed one a request to /ingest/stream; "
        f"~{config['batch_ms']:g} ms batch tasks of {config['batch_records_per_task']} ~10 us "
        f"records, {config['stream_ms']:g} ms stream tasks ({config['stream_records_per_task']} "
        f"records), one executor of one slot; warm-up {config['warmup_s']:g} s, window "
        f"{config['measure_s']:g} s per run; {config['loops_per_record']} loops per record ("
        f"{'calibrated at the start' if config.get('loops_calibrated', True) else 'given'}). "
        "Pods: a ContinuousApplication each (driver pod, one "
        f"executor pod; requests {config['executor_resources']['requests']['cpu']} CPU, limit "
        f"{config['executor_resources']['limits']['cpu']} CPU for the executor"
        + (", requests equal to limits: Guaranteed, and the node's static CPU manager gives it "
           "a CPU of its own, as local mode pins its executor; in runs named shared, requests "
           f"{shared['requests']['cpu']}, limit {shared['limits']['cpu']} CPU: it shares the "
           "node's CPUs" if (shared := config.get("executor_resources_shared")) else "")
        + "), image "
        f"`{config['image']}`; events POSTed from the host straight to the driver pod's IP (as a "
        "client in the cluster would: no API server on their path), /status and the reset over "
        "`kubectl proxy`. Local: the same app file as processes, driver on CPU "
        f"{config['local_cpus']['driver']}, executor on CPU {config['local_cpus']['executor']} "
        "(as `neptunectl bench`), state in a temporary directory."
        + (" Nodes: the multi-node cluster of e2e/multinode.sh (each node a network namespace "
           "with its own containerd and kubelet, joined by veth pairs to a host bridge; "
           "kube-router enforcing the app's NetworkPolicy): the driver pod on node1 and the "
           "executor pod on node2 (across), or both on node2 (samenode); it has no "
           "Prometheus, so no histograms there." if "nodes" in places else ""),
        "",
        f"Load: at start `{result.get('uptime_start', '?')}`; at end "
        f"`{result.get('uptime_end', '?')}`. The machine has "
        f"{result.get('machine', {}).get('cpus', '?')} shared cores and runs the whole cluster "
        "(API server, etcd, kubelet, containerd, Prometheus) beside the runs: the figures are "
        f"noisy: one run each of {config['measure_s']:g} s (at 20 events/s ~200 "
        "preemptions, whose p99 is their third largest).",
        "",
        "| where | run | stream p50 ms | stream p99 ms | stream max ms | batch records/s | "
        "batch rel. | susp. p50 us | susp. p99 us | susp. max us |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = list(dict.fromkeys(k.split("/", 1)[1] for k in result.get("runs", {})))
    for name, where in ((n, w) for n in names for w in places if n in places[w]):
        row = places[where][name]
        s = row.get("suspension") or {}
        lines.append(
            f"| {where} | {name} | {_f(row['stream_p50_ms'])} | {_f(row['stream_p99_ms'])} "
            f"| {_f(row['stream_max_ms'])} | {_f(row['batch_records_per_s'], 0)} | "
            f"{_f(row['batch_throughput_rel'], 3)} | {_f(s.get('send_to_start_p50_us'), 0)} "
            f"| {_f(s.get('send_to_start_p99_us'), 0)} | "
            f"{_f(s.get('send_to_start_max_us'), 0)} |")
    failed = {k: r["error"] for k, r in result.get("runs", {}).items() if r.get("error")}
    lines += [f"- {k} FAILED: {v}" for k, v in failed.items()]
    if result.get("skipped"):
        lines.append(f"- skipped: {', '.join(result['skipped'])} (after the budget, or "
                     "another operator ran)")
    lines += ["", "## Suspension by hop", "",
              "Driver send to stream task start (/status `preemption.send_to_start_us`), of which "
              "on the executor, kernel arrival to start (`arrival_to_start_us`); the "
              "driver-to-executor hop estimated as the difference of the percentiles.", "",
              "| where | run | preemptions | send→start p50/p99/max us | arrival→start "
              "p50/p99/max us | send→arrival p50/p99 us (est.) | doorbell |",
              "|---|---|---:|---|---|---|---|"]
    for key, row in result.get("runs", {}).items():
        if row.get("error") or row.get("mode") != "both" or not row["send_to_start_us"].get(
                "count"):
            continue  # fair never preempts
        h = hop_split(row)
        where, name = key.split("/", 1)
        lines.append(
            f"| {where} | {name} | {h['count']:.0f} | {_f(h['send_to_start_p50_us'], 0)} / "
            f"{_f(h['send_to_start_p99_us'], 0)} / {_f(h['send_to_start_max_us'], 0)} | "
            f"{_f(h['arrival_to_start_p50_us'], 0)} / {_f(h['arrival_to_start_p99_us'], 0)} / "
            f"{_f(h['arrival_to_start_max_us'], 0)} | {_f(h['send_to_arrival_p50_us_est'], 0)} "
            f"/ {_f(h['send_to_arrival_p99_us_est'], 0)} | "
            f"{'yes' if all(row.get('doorbell') or [False]) else 'no'} |")
    lines += slowest_lines(result.get("runs", {}))
    lines += ["", "## The Prometheus histograms", "",
              "What a user's Prometheus shows for each run's window (pods: the local Prometheus, "
              "buckets `sum by (le) (NAME_bucket{namespace=..., neptune_dev_app=...} @ T)` before "
              "and after the window; local: the processes' /metrics): observations, and p50/p99 "
              "by histogram_quantile's rule (linear within a bucket, so at most as exact as the "
              "buckets: 10, 25, 50, 100, 250, 500 us, 1, 2.5, 5, 10 ms ...).", "",
              "| where | run | stream latency n, p50/p99 us | stream queue delay n, p50/p99 us "
              "| executor suspension latency n, p50/p99 us |", "|---|---|---|---|---|"]
    for key, row in result.get("runs", {}).items():
        hist = row.get("histograms") or {}
        if not hist:
            continue
        where, name = key.split("/", 1)
        cells = [f"{g['count']:.0f}, {_f(g.get('p50_us'), 0)} / {_f(g.get('p99_us'), 0)}"
                 if (g := hist.get(k)) else "-" for k in HISTOGRAMS]
        lines.append(f"| {where} | {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Events in and results out", "",
              "| where | run | posted | accepted (202) | failed | driver events | results | "
              "unanswered | client late max ms |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, row in result.get("runs", {}).items():
        e: dict[str, Any] = row.get("events") or {}
        if row.get("error") or not e.get("posted"):
            continue
        where, name = key.split("/", 1)
        lines.append(f"| {where} | {name} | {e['posted']} | {e['accepted']} | {e['failed']} | "
                     f"{e['driver_events']} | {e['results']} | {e['unanswered']} | "
                     f"{_f(e['client_late_ms_max'], 1)} |")
    lines += ["", "## Item 2's targets, measured", "",
              "| target | value | bound | met |", "|---|---:|---:|---|"]
    for name, check in result.get("targets", {}).items():
        lines.append(f"| {name} | {_f(check['value'], 3)} | {_f(check['bound'], 3)} | "
                     f"{'yes' if check['ok'] else 'NO'} |")
    local_p99 = (((places.get("local") or {}).get("neptune") or {}).get("suspension")
                 or {}).get("send_to_start_p99_us")
    if isinstance(local_p99, (int, float)) and local_p99 > LOCAL_P99_SANE_US:
        lines += ["", f"Local mode's own suspension p99 in this run was {local_p99:.0f} us, far "
                  "above what it is on a quiet machine (bench/results/full.md, quick_runs.md): "
                  "the first bound is this run's load, not local mode's, and a `yes` there says "
                  "little. Pinned processes (local) cannot move away from a busy core; pods "
                  "float."]
    lines += ab_lines("pods", result.get("ab", {}))
    lines += ab_lines("the multi-node cluster", result.get("nodes_ab", {}))
    lines += ["", POD_PATH, IDEAS, TWO_APPS]
    return "\n".join(lines)


def slowest_lines(runs: dict[str, dict[str, Any]], shown: int = 3) -> list[str]:
    """Each run's slowest preemptions (/status `preemption.slowest`), split: arrival to the
    yield point that noticed the `run`, then from there to the start (reading, decoding and
    starting it); "hub" where no yield point noticed it; and in brackets the time since the
    tune before the noticing yield point (a stall of the task, where it is well above the
    poll interval)."""
    rows = [(key, row["slowest"][:shown]) for key, row in runs.items() if row.get("slowest")]
    if not rows:
        return []
    out = ["", "## The slowest preemptions", "",
           f"Each run's {shown} slowest (what its p99 is made of): send to start, of which on "
           "the executor arrival to start, and of that, arrival to the yield point that "
           "noticed the `run` + from there to the start (hub: no yield point noticed it, the "
           "hub took it); in brackets, how long the task had gone since the tune before that "
           "yield point: well above the 100 us poll interval, the task ran no yield point for "
           "that long (a collection, another thread holding the GIL, its CPU given to others) "
           "and the notice was late for it, not for a missed poll.", "",
           "| where | run | send→start us: arrival→notice + notice→start |", "|---|---|---|"]
    for key, slowest in rows:
        where, name = key.split("/", 1)
        cells = []
        for p in slowest:
            notice = p.get("arrival_to_notice_us")
            span = p.get("notice_span_us")
            split = ("hub" if notice is None else
                     f"{notice:.0f} + {p['arrival_to_start_us'] - notice:.0f}"
                     + ("" if span is None else f" [{span:.0f}]"))
            cells.append(f"{p['send_to_start_us']:.0f}: {split}")
        out.append(f"| {where} | {name} | {'; '.join(cells)} |")
    return out


def ab_lines(where: str, ab: dict[str, Any]) -> list[str]:
    """An A/B summary (ab_summary's) as a Markdown section: median (min-max) per side."""
    if not ab:
        return []
    keys = [k for k in next(iter(ab.values())) if k != "runs"]
    lines = ["", f"## A/B, {where}, neptune: " + ", ".join(AB_SIDES[side] for side in ab), "",
             "Median (min-max) over the side's runs, interleaved in this run.", "",
             "| side | runs | " + " | ".join(keys) + " |", "|---|---:|" + "---:|" * len(keys)]
    for side, figures in ab.items():
        digits = [3 if k == "batch_rel" else 1 for k in keys]
        cells = [f"{_f(figures[k]['median'], d)} ({_f(figures[k]['min'], d)}-"
                 f"{_f(figures[k]['max'], d)})" for k, d in zip(keys, digits, strict=True)]
        lines.append(f"| {side} | {len(figures['runs'])} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neptune_bench.cluster_bench",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None,
                        help="default bench/results/cluster.json (cluster_nodes.json)")
    parser.add_argument("--markdown", default=None,
                        help="default bench/results/cluster.md (cluster_nodes.md)")
    parser.add_argument("--warmup", type=float, default=WARMUP_S)
    parser.add_argument("--measure", type=float, default=MEASURE_S)
    parser.add_argument("--budget", type=float, default=BUDGET_S,
                        help="seconds after which no further run starts (default 13 min)")
    parser.add_argument("--ab-rounds", type=int, default=3,
                        help="rounds of the A/B in pods (default 3)")
    parser.add_argument("--ab", choices=AB_AXES, default="watch",
                        help="what the A/B varies: the executor's bell watcher (default), "
                        "its pod on a CPU of its own against sharing the node's (shared), "
                        "against sharing them with no CPU limit, or the app's image (with "
                        "--image-b)")
    parser.add_argument("--image-b", default=None,
                        help="the image A/B's other image (another build of the runtime, "
                        "imported into the cluster's containerd)")
    parser.add_argument("--loops", type=int, default=None,
                        help="iterations per ~10 us record (default: calibrated now; a busy "
                        "machine calibrates short records)")
    parser.add_argument("--across-nodes", action="store_true",
                        help="on the multi-node cluster (KUBECONFIG of e2e/multinode.sh): "
                        "neptune with driver and executor on two nodes against one, "
                        "--ab-rounds rounds (writes cluster_nodes.{json,md} by default)")
    parser.add_argument("--only", default=None,
                        help="comma-separated run keys to keep (e.g. local/neptune,pods/neptune)")
    args = parser.parse_args(argv)
    planned = (plan_nodes(args.ab_rounds) if args.across_nodes
               else plan(args.ab_rounds, args.ab, args.image_b))
    stem = "bench/results/cluster_nodes" if args.across_nodes else "bench/results/cluster"
    args.json, args.markdown = args.json or stem + ".json", args.markdown or stem + ".md"
    scenarios = planned
    if args.only:
        wanted = set(args.only.split(","))
        scenarios = [s for s in planned if s.key in wanted]
        if not scenarios:
            raise SystemExit(f"--only: no run is named {args.only}; runs: "
                             + ", ".join(s.key for s in planned))
    # a kill ends the run through its clean-up (the namespace and the operator release)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run(scenarios, args.warmup, args.measure, args.budget,
                 lambda line: print(line, file=sys.stderr, flush=True), loops=args.loops)
    report = markdown(result)
    with open(args.json, "w") as handle:
        json.dump({**result, "plan": [dataclasses.asdict(s) for s in scenarios]}, handle,
                  indent=1)
    with open(args.markdown, "w") as handle:
        handle.write(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
