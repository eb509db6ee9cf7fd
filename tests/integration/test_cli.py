"""`neptunectl run` as a user runs it: real processes, exit codes, no orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from neptune_runtime.processes import LocalCluster

from .conftest import APPS, ROOT, processes_marked, read_jsonl, wait_for

NEPTUNECTL = [sys.executable, "-m", "neptune_runtime.cli"]


def run_cli(args: list[str], marker: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEPTUNE_TEST_MARK": marker}
    return subprocess.run(NEPTUNECTL + args, capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=env)


def test_broken_app_module_is_reported_plainly(marker: str) -> None:
    result = run_cli(["run", str(APPS / "broken.py"), "--duration", "5s"], marker)
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert ("neptunectl driver: cannot load app" in result.stderr
            and "ModuleNotFoundError: No module named 'neptune_runtime_no_such_dependency'"
            in result.stderr)
    assert "neptunectl run: the driver exited with code 3" in result.stderr
    assert processes_marked(marker) == []


def test_run_for_a_duration_prints_a_summary_and_leaves_no_process(
        marker: str, tmp_path: Path) -> None:
    scores = tmp_path / "scores.jsonl"
    env_args = ["run", "examples/online_learning.py", "--executors", "2", "--duration", "4s",
                "--no-live", "--print-every", "1"]
    os.environ["EXAMPLE_SCORES"] = str(scores)
    try:
        result = run_cli(env_args, marker)
    finally:
        del os.environ["EXAMPLE_SCORES"]
    assert result.returncode == 0, result.stderr
    assert "summary after" in result.stdout
    assert "score:" in result.stdout and "train:" in result.stdout
    assert "SLO met" in result.stdout  # the live view was printed
    assert len(read_jsonl(scores)) > 50
    assert processes_marked(marker) == []


def test_ctrl_c_stops_every_process_and_exits_zero(marker: str) -> None:
    env = {**os.environ, "NEPTUNE_TEST_MARK": marker, "EXAMPLE_SCORES": os.devnull}
    proc = subprocess.Popen([*NEPTUNECTL, "run", "examples/online_learning.py", "--no-live"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_for(lambda: len(processes_marked(marker)) >= 4, 30,
             "the CLI, the driver and two executors")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "summary after" in out
    wait_for(lambda: processes_marked(marker) == [], 5, "no process left")


def test_driver_restart_resumes_from_committed_offsets(tmp_path: Path) -> None:
    data, sink = tmp_path / "in", tmp_path / "out.jsonl"
    data.mkdir()
    (data / "a.jsonl").write_text("".join(json.dumps({"n": i}) + "\n" for i in range(50)))
    env = {"TAIL_DIR": str(data), "TAIL_SINK": str(sink)}
    with LocalCluster(str(APPS / "tail_app.py"), executors=1, env=env) as cluster:
        wait_for(lambda: len(read_jsonl(sink)) == 50, 30, "the first 50 lines")
        wait_for(lambda: cluster.status()["jobs"]["lines"]["uncommitted"] == 0, 10, "commit")
    with (data / "a.jsonl").open("a") as handle:
        handle.write("".join(json.dumps({"n": i}) + "\n" for i in range(50, 70)))
    with LocalCluster(str(APPS / "tail_app.py"), executors=1, env=env) as cluster:
        wait_for(lambda: len(read_jsonl(sink)) >= 70, 30, "the 20 new lines")
        time.sleep(0.5)
        assert cluster.status()["jobs"]["lines"]["events"] == 20, "old lines were replayed"
    assert sorted(r["n"] for r in read_jsonl(sink)) == list(range(70))


def test_run_exits_non_zero_naming_the_failed_job_and_its_error(
        marker: str, tmp_path: Path) -> None:
    env = {**os.environ, "NEPTUNE_TEST_MARK": marker, "FAULTS_BAD_JOB": "1",
           "FAULTS_SINK": str(tmp_path / "sink.jsonl")}
    result = subprocess.run([*NEPTUNECTL, "run", str(APPS / "faults.py"), "--executors", "1",
                             "--duration", "6s", "--no-live"], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, env=env)
    assert result.returncode == 1, result.stderr
    assert "neptunectl run: job(s) failed: bad" in result.stderr
    assert "failed: RuntimeError: bad partition 0" in result.stdout  # in the summary
    assert processes_marked(marker) == []


def test_run_prints_its_ingest_token_and_restarts_an_executor_that_died(
        marker: str, tmp_path: Path) -> None:
    env = {**os.environ, "NEPTUNE_TEST_MARK": marker, "FAULTS_EPOCHS": "1",
           "FAULTS_SINK": str(tmp_path / "sink.jsonl")}
    tokens = tmp_path / "tokens"
    proc = subprocess.Popen([*NEPTUNECTL, "run", str(APPS / "faults.py"), "--executors", "2",
                             "--duration", "12s", "--no-live", "--print-every", "1",
                             "--tokens-dir", str(tokens)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)

    errors: list[str] = []  # its stderr as it comes: it says when its start is over
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: errors.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("status at" in line for line in errors), 30, "the run to start")
        victim = next(pid for pid in processes_marked(marker)
                      if b"exec-1" in Path(f"/proc/{pid}/cmdline").read_bytes())
        os.kill(victim, signal.SIGKILL)
        proc.wait(timeout=60)  # its output fits in the pipe: a 12 s run's few views
        out = proc.stdout.read() if proc.stdout is not None else ""
        reader.join(10)
        err = "".join(errors)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    token = (tokens / "ingest").read_text().strip()
    assert f"HTTP ingest token {token}" in err
    assert (tokens / "ingest").stat().st_mode & 0o777 == 0o600
    assert (tokens / "read").stat().st_mode & 0o777 == 0o600
    assert "executor exec-1 exited with code -9; restarted it (restart 1)" in err
    views = [line for line in out.splitlines() if line.startswith("app faults")]
    assert "executors 2 " in views[-1], "the restarted executor did not register again"
    assert processes_marked(marker) == []
