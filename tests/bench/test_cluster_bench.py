"""The pure parts of `neptune_bench.cluster_bench`: the app module shipped to the pods, the
resources it renders, the histogram and suspension summaries, the report; and its Poisson
client against a local HTTP server."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import sysconfig
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from neptune_bench import cluster_bench as cb
from neptune_operator.render import RenderContext, jobs_document, render

ROOT = Path(__file__).resolve().parents[2]
INF = math.inf

LOAD = """
import json, os, sys
sys.path[:0] = sys.argv[2:]
from neptune_runtime.loader import load_app
app = load_app(sys.argv[1])
work = sys.modules["neptune_bench.work"]
print(json.dumps({"jobs": {n: j.kind for n, j in app.jobs.items()},
                  "source": {j.name: type(j.source).__name__ for j in app.stream_jobs()},
                  "env": {k: os.environ.get(k) for k in
                          ("BENCH_LOOPS", "BENCH_APP_MODE", "BENCH_MODE", "NEPTUNE_BELL_WATCH")},
                  "work_file": work.__file__, "app_name": app.name}))
"""


def _run(script: str, module: Path) -> str:
    """`script` with `module` as argv[1], in a fresh interpreter whose path has the runtime
    but not neptune_bench (-I -S: no site, so no editable install): its stdout."""
    paths = [str(ROOT / "executor_image"), sysconfig.get_paths()["purelib"],
             sysconfig.get_paths()["platlib"]]
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", script, str(module), *paths],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _load(tmp_path: Path, scenario: cb.Scenario, loops: int = 77) -> dict[str, Any]:
    """The generated module, loaded by the runtime's loader (_run)."""
    path = tmp_path / "app.py"
    path.write_text(cb.app_source(cb.settings(scenario, loops)))
    result: dict[str, Any] = json.loads(_run(LOAD, path))
    return result


@pytest.mark.parametrize(("mode", "jobs"), [("both", {"batch": "batch", "stream": "stream"}),
                                            ("stream", {"stream": "stream"}),
                                            ("batch", {"batch": "batch"})])
def test_the_shipped_module_loads_without_neptune_bench(tmp_path: Path, mode: str,
                                                        jobs: dict[str, str]) -> None:
    out = _load(tmp_path, cb.Scenario("x", mode, "neptune", "pods"))
    assert out["jobs"] == jobs
    assert out["app_name"] == "bench"
    if "stream" in jobs:
        assert out["source"] == {"stream": "HttpIngest"}
    assert out["env"] == {"BENCH_LOOPS": "77", "BENCH_APP_MODE": mode, "BENCH_MODE": "none",
                          "NEPTUNE_BELL_WATCH": None}
    assert "shipped by cluster_bench" in out["work_file"]


def test_the_watcher_switch_reaches_the_environment(tmp_path: Path) -> None:
    out = _load(tmp_path, cb.Scenario("x", "both", "neptune", "pods", watch=False))
    assert out["env"]["NEPTUNE_BELL_WATCH"] == "0"


NO_BELL = """
import sys
sys.path[:0] = sys.argv[2:]
from neptune_runtime.doorbell import Bell, Ringer
from neptune_runtime.loader import load_app
bell = Bell()  # the executor still makes one
load_app(sys.argv[1])
print("attached:", Ringer.attach(bell.path, bell.token) is not None)
bell.close()
"""


def test_without_doorbell_the_driver_cannot_ring_it(tmp_path: Path) -> None:
    scenario = cb.Scenario("neptune_nobell", "both", "neptune", "local", doorbell=False)
    assert cb.settings(scenario, 5)["BENCH_NO_DOORBELL"] == "1"
    assert "BENCH_NO_DOORBELL" not in cb.settings(cb.Scenario("n", "both", "neptune", "pods"), 5)
    path = tmp_path / "app.py"
    path.write_text(cb.app_source(cb.settings(scenario, 5)))
    out = _run(NO_BELL, path)
    assert out.strip() == "attached: False", out
    plain = tmp_path / "plain.py"
    plain.write_text(cb.app_source(cb.settings(cb.Scenario("n", "both", "neptune", "local"), 5)))
    assert _run(NO_BELL, plain).strip() == "attached: True"


def test_app_source_starts_with_the_future_import_once() -> None:
    source = cb.app_source(cb.settings(cb.Scenario("x", "both", "fair", "local"), 5))
    assert source.startswith(cb.FUTURE)
    assert source.count(cb.FUTURE) == 1  # bench_app.py's own is moved to the top
    compile(source, "app.py", "exec")


def test_manifest_renders_through_the_operator() -> None:
    scenario = cb.Scenario("stream_alone", "stream", "fifo", "pods")
    obj = cb.app_manifest(scenario, "ns1", image="img:1")
    assert obj["metadata"] == {"name": "bench-stream-alone", "namespace": "ns1"}
    assert obj["spec"]["policy"] == "fifo"
    assert obj["spec"]["executors"]["replicas"] == 1
    doc = jobs_document(obj["spec"])
    assert doc["jobs"] == {"stream": {"kind": "stream", "slo": "10ms", "trigger": "event",
                                      "source": {"http": {}}}}
    created = {**obj, "metadata": {**obj["metadata"], "uid": "u-1"}}  # as the API server has it
    manifests = render(created, RenderContext(secret_hex="00" * 16))
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "StatefulSet", "Service"} <= kinds
    sts = next(m for m in manifests if m["kind"] == "StatefulSet")
    volumes = sts["spec"]["template"]["spec"]["volumes"]
    assert {"name": "bench-stream-alone-source", "items": [{"key": "app.py", "path": "app.py"}]} \
        in [v.get("configMap") for v in volumes]
    cm = cb.source_configmap(scenario, "ns1", "print(1)")
    assert cm["metadata"]["name"] == "bench-stream-alone-source"
    assert cm["data"] == {"app.py": "print(1)"}


def test_both_jobs_for_the_policies_and_batch_alone() -> None:
    assert [j["name"] for j in cb.jobs("both")] == ["batch", "stream"]
    assert [j["kind"] for j in cb.jobs("batch")] == ["batch"]
    assert cb.jobs("batch")[0]["partitions"] == 4


def test_operator_values_share_nothing_with_the_default_release() -> None:
    values = cb.operator_values(["a", "b"], image="localhost/neptune-k8s:dev")
    assert values["image"] == {"repository": "localhost/neptune-k8s", "tag": "dev",
                               "pullPolicy": "IfNotPresent"}
    assert values["operator"]["watchNamespaces"] == ["a", "b"]
    names = [c["name"] for c in values["priorityClasses"]["classes"]]
    assert names == [cb.PRIORITY_CLASS] and not set(names) & {"neptune-low", "neptune-normal"}


def test_plan_pairs_local_and_pods_then_alternates_the_ab() -> None:
    scenarios = cb.plan(ab_rounds=2)
    keys = [s.key for s in scenarios]
    assert len(keys) == len(set(keys))
    assert keys[:4] == ["local/stream_alone", "pods/stream_alone", "local/batch_alone",
                        "pods/batch_alone"]
    ab = [s for s in scenarios[10:] if s.where == "pods"]
    assert [s.watch for s in ab] == [False, True, True, False]
    assert [s.key for s in scenarios[-3:]] == ["local/neptune_nobell",
                                               "local/neptune_nobell_nowatch",
                                               "local-unpinned/neptune"]
    assert not scenarios[-3].doorbell and not scenarios[-2].doorbell
    assert scenarios[-3].watch and not scenarios[-2].watch
    assert all(len(s.app_name) <= 40 and s.app_name.islower() for s in scenarios)


def test_the_cpu_limit_ab_shares_the_node_s_cpus_without_a_cpu_limit() -> None:
    ab = [s for s in cb.plan(ab_rounds=2, ab="cpulimit")[10:] if s.where == "pods"]
    assert [s.key for s in ab] == ["pods/neptune_nolimit_r1", "pods/neptune_r2",
                                   "pods/neptune_r3", "pods/neptune_nolimit_r2"]
    assert [s.executor_cpu for s in ab] == ["nolimit", "dedicated", "dedicated", "nolimit"]
    assert all(s.watch for s in ab)
    free = cb.app_manifest(ab[0], "ns1")["spec"]["executors"]["resources"]
    assert free["requests"] == cb.EXECUTOR_RESOURCES["requests"]
    assert free["limits"] == {"memory": cb.EXECUTOR_RESOURCES["limits"]["memory"]}
    with pytest.raises(ValueError, match="ab must be one of"):
        cb.plan(ab="poll")


def test_pods_executors_are_guaranteed_on_a_whole_cpu_unless_the_ab_shares_them() -> None:
    ab = [s for s in cb.plan(ab_rounds=2, ab="shared")[10:] if s.where == "pods"]
    assert [s.key for s in ab] == ["pods/neptune_shared_r1", "pods/neptune_r2",
                                   "pods/neptune_r3", "pods/neptune_shared_r2"]
    shared = cb.app_manifest(ab[0], "ns1")["spec"]["executors"]["resources"]
    own = cb.app_manifest(ab[1], "ns1")["spec"]["executors"]["resources"]
    assert shared == cb.EXECUTOR_RESOURCES and shared["requests"] != shared["limits"]
    # Guaranteed: every request equals its limit, and the CPU is a whole one
    assert own["requests"] == own["limits"] == {"cpu": "1",
                                                "memory": shared["limits"]["memory"]}
    assert all(s.executor_cpu == "dedicated" for s in cb.plan()[:10])
    # the multi-node cluster's kubelets give no pod a CPU of its own
    assert all(s.executor_cpu == "shared" for s in cb.plan_nodes())
    with pytest.raises(ValueError, match="executor cpu must be one of"):
        cb.executor_resources("half")


def test_the_image_ab_runs_the_other_side_on_image_b() -> None:
    ab = [s for s in cb.plan(ab_rounds=2, ab="image", image_b="img:before")[10:]
          if s.where == "pods"]
    assert [s.key for s in ab] == ["pods/neptune_imageb_r1", "pods/neptune_r2",
                                   "pods/neptune_r3", "pods/neptune_imageb_r2"]
    images = [cb.app_manifest(s, "ns1", image="img:now")["spec"]["image"] for s in ab]
    assert images == ["img:before", "img:now", "img:now", "img:before"]
    with pytest.raises(ValueError, match="needs image_b"):
        cb.plan(ab="image")
    with pytest.raises(ValueError, match="needs image_b"):
        cb.plan(image_b="img:before")


def test_across_nodes_pins_the_driver_and_the_executor_apart_or_together() -> None:
    scenarios = cb.plan_nodes(rounds=2)
    assert [s.key for s in scenarios] == [
        "nodes/stream_alone", "nodes/batch_alone", "nodes/neptune_samenode_r1",
        "nodes/neptune_r1", "nodes/neptune_r2", "nodes/neptune_samenode_r2"]
    spec = cb.app_manifest(scenarios[3], "ns1")["spec"]
    assert spec["driver"]["nodeSelector"] == {"neptune.dev/node": "node1"}
    assert spec["executors"]["nodeSelector"] == {"neptune.dev/node": "node2"}
    same = cb.app_manifest(scenarios[2], "ns1")["spec"]
    assert same["driver"]["nodeSelector"] == same["executors"]["nodeSelector"]
    plain = cb.app_manifest(cb.plan()[0], "ns1")["spec"]
    assert "nodeSelector" not in plain["driver"] and "nodeSelector" not in plain["executors"]
    runs = {"nodes/batch_alone": _row("nodes", "batch", 1000.0, 0, 0, 0),
            "nodes/neptune_r1": _row("nodes", "both", 900.0, 2.0, 400.0, 100.0),
            "nodes/neptune_samenode_r1": _row("nodes", "both", 950.0, 1.5, 300.0, 90.0)}
    out = cb.summarize(runs)
    assert out["targets"] == {}  # item 2's targets are the pods' and local mode's
    assert out["nodes_ab"]["across"]["s2s_p99_us"]["median"] == 400.0
    assert out["nodes_ab"]["samenode"]["batch_rel"]["median"] == pytest.approx(0.95)
    assert "A/B, the multi-node cluster, neptune" in cb.markdown(
        {**out, "config": _runs_config(), "runs": runs})


# buckets as (upper bound s, cumulative count)
BEFORE = [(0.0001, 10.0), (0.00025, 10.0), (0.0005, 10.0), (INF, 10.0)]
AFTER = [(0.0001, 60.0), (0.00025, 100.0), (0.0005, 109.0), (INF, 110.0)]


def test_histogram_diff_follows_histogram_quantile() -> None:
    out = cb.histogram_diff(BEFORE, AFTER)
    assert out["count"] == 100
    # rank 50 of 100: the 50th of the first bucket's 50, [0, 100 us]: 100 us
    assert out["p50_us"] == pytest.approx(100.0)
    # rank 99: the 9th of the 9 in (250, 500] us: 500 us... after 90 below: 250 + 250 * 9/9
    assert out["p99_us"] == pytest.approx(500.0)
    assert cb.quantile_from_cdf(out["cdf"], 0.25) == pytest.approx(50.0)
    assert cb.quantile_from_cdf(out["cdf"], 0.70) == pytest.approx(100 + 150 * 20 / 40)


def test_a_rank_in_the_inf_bucket_gives_the_highest_finite_bound() -> None:
    after = [(0.0001, 11.0), (0.00025, 11.0), (0.0005, 11.0), (INF, 20.0)]
    out = cb.histogram_diff(BEFORE, after)
    assert out["count"] == 10
    assert out["p99_us"] == pytest.approx(500.0)
    assert cb.histogram_diff(BEFORE, BEFORE)["p50_us"] is None  # nothing observed


def _row(where: str, mode: str, rate: float | None, p99: float, s2s99: float,
         a2s99: float) -> dict[str, Any]:
    return {"where": where, "mode": mode, "stream_p50_ms": p99 / 2, "stream_p99_ms": p99,
            "stream_max_ms": p99 * 2, "batch_records_per_s": rate,
            "send_to_start_us": {"p50": s2s99 / 2, "p99": s2s99, "max": s2s99 * 2,
                                 "count": 200.0},
            "arrival_to_start_us": {"p50": a2s99 / 2, "p99": a2s99, "max": a2s99 * 2,
                                    "count": 200.0}}


def _runs() -> dict[str, dict[str, Any]]:
    return {
        "local/stream_alone": _row("local", "stream", None, 1.2, 0, 0),
        "local/batch_alone": _row("local", "batch", 1000.0, 0, 0, 0),
        "local/neptune": _row("local", "both", 950.0, 1.5, 100.0, 40.0),
        "pods/stream_alone": _row("pods", "stream", None, 1.5, 0, 0),
        "pods/batch_alone": _row("pods", "batch", 800.0, 0, 0, 0),
        "pods/neptune": _row("pods", "both", 760.0, 2.0, 300.0, 140.0),
        "pods/neptune_r2": _row("pods", "both", 700.0, 4.0, 500.0, 160.0),
        "pods/neptune_nowatch_r1": _row("pods", "both", 720.0, 1.8, 140.0, 30.0),
        "pods/neptune_nolimit_r1": _row("pods", "both", 740.0, 1.9, 200.0, 50.0),
        "pods/fair": {"where": "pods", "mode": "both", "error": "AssertionError: boom"},
    }


def test_hop_split_estimates_the_wire_hop_from_percentiles() -> None:
    h = cb.hop_split(_runs()["pods/neptune"])
    assert h["send_to_start_p99_us"] == 300.0 and h["arrival_to_start_p99_us"] == 140.0
    assert h["send_to_arrival_p99_us_est"] == pytest.approx(160.0)
    assert h["send_to_arrival_p50_us_est"] == pytest.approx(80.0)
    assert cb.hop_split({})["send_to_arrival_p50_us_est"] is None


def test_summarize_checks_item_2_per_place() -> None:
    out = cb.summarize(_runs())
    pods = out["places"]["pods"]
    assert "fair" not in pods  # a failed run is reported, not summarized
    assert pods["neptune"]["batch_throughput_rel"] == pytest.approx(0.95)
    assert out["places"]["local"]["neptune"]["batch_throughput_rel"] == pytest.approx(0.95)
    assert pods["stream_alone"]["batch_throughput_rel"] is None
    targets = out["targets"]
    suspension = targets["pods: neptune suspension p99 <= 1.5x local mode's"]
    assert suspension == {"value": 300.0, "bound": 150.0, "ok": False}
    stream = targets["pods: neptune stream p99 <= 2x stream alone's in pods"]
    assert stream == {"value": 2.0, "bound": 3.0, "ok": True}
    assert targets["pods: neptune batch_throughput_rel >= 0.90"]["ok"] is True


def test_ab_groups_the_watcher_on_and_off_runs() -> None:
    ab = cb.summarize(_runs())["ab"]
    default, short = ab["watch"], ab["nowatch"]
    assert [r["run"] for r in default["runs"]] == ["neptune", "neptune_r2"]
    assert default["s2s_p99_us"] == {"median": 400.0, "min": 300.0, "max": 500.0}
    assert [r["run"] for r in short["runs"]] == ["neptune_nowatch_r1"]
    assert short["a2s_p99_us"]["median"] == 30.0
    assert [r["run"] for r in ab["nolimit"]["runs"]] == ["neptune_nolimit_r1"]


def _runs_config() -> dict[str, Any]:
    return {"rate_per_s": 20.0, "batch_ms": 100.0, "batch_records_per_task": 10000,
            "stream_ms": 1.0, "stream_records_per_task": 100, "warmup_s": 3.0,
            "measure_s": 10.0, "image": "img:1", "loops_per_record": 78,
            "loops_calibrated": False, "executor_resources": cb.EXECUTOR_RESOURCES,
            "local_cpus": {"driver": 0, "executor": 1}}


def test_markdown_has_the_load_the_hops_and_the_failures() -> None:
    runs = _runs()
    runs["pods/neptune"]["histograms"] = {"suspension_latency": cb.histogram_diff(BEFORE,
                                                                                  AFTER)}
    runs["pods/neptune"]["doorbell"] = [False]
    result = {"config": _runs_config(),
              "uptime_start": "load average: 0.50", "uptime_end": "load average: 1.50",
              "machine": {"cpus": 2}, "runs": runs, "skipped": ["pods/kill"],
              **cb.summarize(runs)}
    text = cb.markdown(result)
    assert "load average: 0.50" in text and "load average: 1.50" in text
    assert "78 loops per record (given)" in text
    assert "| pods | neptune | 200 | 150 / 300 / 600 | 70 / 140 / 280 | 80 / 160 | no |" in text
    assert "pods/fair FAILED: AssertionError: boom" in text
    assert "skipped: pods/kill (after the budget" in text
    assert "| pods: neptune suspension p99 <= 1.5x local mode's | 300.000 | 150.000 | NO |" in text
    assert "| pods | neptune | - | - | 100, 100 / 500 |" in text
    assert "Local mode's own suspension p99" not in text  # 100 us: a sane figure
    runs["local/neptune"]["send_to_start_us"]["p99"] = 5000.0
    text = cb.markdown({**result, **cb.summarize(runs)})
    assert "Local mode's own suspension p99 in this run was 5000 us" in text


class _Ingest(BaseHTTPRequestHandler):
    bodies: list[Any] = []
    tokens: list[str | None] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Ingest.bodies.append(json.loads(self.rfile.read(length)))
        _Ingest.tokens.append(self.headers.get("X-Neptune-Token"))
        self.send_response(202 if len(_Ingest.bodies) % 5 else 503)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def test_poisson_poster_posts_numbered_events_and_counts_refusals() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Ingest)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/ingest/stream"
        with cb.PoissonPoster(url, "tok", rate=200.0, first=40) as poster:
            threading.Event().wait(0.5)
    finally:
        server.shutdown()
    sent = poster.next_index - poster.first
    assert sent >= 20  # ~100 expected at 200/s
    assert _Ingest.bodies == [[40 + i] for i in range(len(_Ingest.bodies))]
    assert set(_Ingest.tokens) == {"tok"}
    assert poster.accepted + poster.failed == len(_Ingest.bodies)
    assert poster.failed == len(_Ingest.bodies) // 5 and poster.errors[-1] == "HTTP 503"


def test_the_slowest_preemptions_table_splits_each_at_its_notice() -> None:
    runs: dict[str, dict[str, Any]] = {"pods/neptune": {"slowest": [
        {"send_to_start_us": 900.0, "arrival_to_start_us": 800.0,
         "arrival_to_notice_us": 700.0, "notice_span_us": 1500.0, "executor": "e"},
        {"send_to_start_us": 400.0, "arrival_to_start_us": 380.0,
         "arrival_to_notice_us": None, "executor": "e"}]},
        "pods/fair": {"slowest": []}}
    lines = cb.slowest_lines(runs)
    assert lines[-1] == "| pods | neptune | 900: 700 + 100 [1500]; 400: hub |"
    assert not any("fair" in line for line in lines)
    assert cb.slowest_lines({"pods/fair": {}}) == []
