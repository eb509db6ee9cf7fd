"""The metrics of DESIGN.md section 3, as served by real driver and executor processes."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from neptune_runtime.processes import LocalCluster

from .conftest import APPS, wait_for


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        text: str = response.read().decode()
        return text


def sample(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name} not found"
    return float(match.group(1))


def test_driver_and_executor_metrics_with_sub_millisecond_buckets(tmp_path: Path) -> None:
    env = {"FAULTS_SINK": str(tmp_path / "sink.jsonl"), "FAULTS_PARTITION_RECORDS": "200000"}
    with LocalCluster(str(APPS / "faults.py"), executors=1, env=env,
                      executor_metrics=True) as cluster:
        # before any event: a stream job's counters are there at 0, so rate() has data
        before = scrape(cluster.http + "/metrics")
        for name in ("neptune_slo_violations_total", "neptune_events_ingested_total",
                     "neptune_source_bad_records_total", "neptune_sink_failures_total"):
            assert sample(before, f'{name}{{job="events"}}') == 0, name

        def preempted() -> bool:
            cluster.post("/ingest/events", json.dumps([{"id": 1}]).encode())
            return bool(cluster.status()["jobs"]["sums"]["suspensions"] >= 3)

        wait_for(preempted, 60, "three suspensions")
        driver = scrape(cluster.http + "/metrics")
        executor_url = f"http://127.0.0.1:{cluster.metrics_ports['exec-0']}/metrics"
        # the executor flushes its observations when a task ends: wait for one
        executor = wait_for(lambda: (t := scrape(executor_url)) and sample(
            t, "neptune_task_suspension_latency_seconds_count") >= 1 and t, 30,
            "the executor's suspension observations")
    for name in ("neptune_stream_latency_seconds", "neptune_task_queue_delay_seconds"):
        assert f'{name}_bucket{{' in driver
    assert 'le="5e-05"' in executor and 'le="0.0001"' in executor
    for name in ("neptune_task_suspensions_total", "neptune_task_preemptions_total",
                 "neptune_tasks", "neptune_batch_records_total", "neptune_slo_violations_total",
                 "neptune_wasted_task_seconds_total", "neptune_events_ingested_total"):
        assert f"# TYPE {name.removesuffix('_total')}" in driver, name
    assert sample(driver, 'neptune_task_preemptions_total{action="suspend",policy="neptune"}') >= 3
    assert sample(driver, 'neptune_batch_records_total{job="sums"}') > 0
    assert "neptune_task_duration_seconds_bucket" in executor
    # each process shows only its own series: none that is always 0 there
    for name in ("neptune_task_suspension_latency_seconds", "neptune_executor_memory_bytes",
                 "neptune_executor_suspended_tasks", "neptune_task_duration_seconds"):
        assert f"# TYPE {name} " not in driver, f"the driver shows the executors' {name}"
    for name in ("neptune_executors", "neptune_wasted_task_seconds", "neptune_tasks"):
        assert f"# TYPE {name} " not in executor, f"an executor shows the driver's {name}"


def test_per_stage_task_counts_durations_and_records_of_a_dataset_job() -> None:
    """The driver's neptune_stage_* series, labelled {job, stage}: a two-stage word count (4
    map tasks, 3 reduce tasks) and a join (4 + 4 map tasks over two inputs, 2 reduce tasks)."""
    words = 2000
    with LocalCluster(str(APPS / "dataset_app.py"), executors=2,
                      env={"DS_WORDS": str(words)}) as cluster:
        def done() -> bool:
            published = cluster.status()["shared_state"]
            return bool(published.get("counts", 0) >= 1 and published.get("pairs", 0) >= 1)

        wait_for(done, 60, "both dataset jobs")
        text = scrape(cluster.http + "/metrics")

    def series(name: str, job: str, stage: int) -> float:
        return sample(text, f'{name}{{job="{job}",stage="{stage}"}}')

    assert "# TYPE neptune_stage_tasks" in text
    assert "# TYPE neptune_stage_task_seconds histogram" in text
    assert series("neptune_stage_tasks_total", "wordcount", 0) == 4
    assert series("neptune_stage_tasks_total", "wordcount", 1) == 3
    assert series("neptune_stage_task_seconds_count", "wordcount", 1) == 3
    assert series("neptune_stage_task_seconds_sum", "wordcount", 0) > 0
    assert series("neptune_stage_records_total", "wordcount", 0) == 4 * words
    # the reducers see one record per distinct word of each map output
    assert 0 < series("neptune_stage_records_total", "wordcount", 1) < 4 * words
    stages = {int(m) for m in re.findall(r'neptune_stage_tasks_total\{job="joined",'
                                         r'stage="(\d+)"\}', text)}
    assert len(stages) >= 2, stages
    assert re.search(r'neptune_stage_task_seconds_bucket\{job="wordcount",le="60.0",'
                     r'stage="0"\} 4.0', text)
