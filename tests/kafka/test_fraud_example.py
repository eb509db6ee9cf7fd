"""examples/fraud_monitoring.py as a user runs it: its own producer, then `neptunectl run`, on
the real broker; an executor is killed mid-run. Read with read_committed, the alerts topic holds
exactly one alert per flagged transaction (exactly_once), each with the card's true running
figures, and the keyed state's per-card totals (the driver's checkpoint) are the true totals."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from neptune_runtime.checkpoints import CheckpointStore
from neptune_runtime.processes import free_port
from tests.runtime.changes import load

from .kafka_helpers import ROOT, consume_to_end, unique, wait_until

EXAMPLE = ROOT / "examples" / "fraud_monitoring.py"
NEPTUNECTL = Path(sys.executable).with_name("neptunectl")


def example() -> ModuleType:
    """The example module itself (its generator and rules: the test's ground truth)."""
    spec = importlib.util.spec_from_file_location("fraud_monitoring_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def truth(fm: ModuleType, count: int) -> tuple[dict[int, tuple[int, int]], dict[str, Any]]:
    """For transactions 0..count-1: the flagged ones (id -> the card's count and total after
    it), and each card's final {n, total}. Written out here rather than taken from the
    example's own helpers: the card rule is "at least CARD_HISTORY earlier transactions and an
    amount above CARD_FACTOR x their mean"."""
    cards: dict[str, dict[str, int]] = {}
    flagged: dict[int, tuple[int, int]] = {}
    for i in range(count):
        tx = fm.transaction(i)
        c = cards.setdefault(tx["card"], {"n": 0, "total": 0})
        hit = c["n"] >= fm.CARD_HISTORY and tx["amount"] * c["n"] > fm.CARD_FACTOR * c["total"]
        c["n"] += 1
        c["total"] += tx["amount"]
        if hit:
            flagged[i] = (c["n"], c["total"])
    return flagged, cards


def check_alerts(alerts: list[dict[str, Any]], flagged: dict[int, tuple[int, int]]) -> None:
    counts = Counter(a["id"] for a in alerts)
    duplicates = sorted(i for i, n in counts.items() if n > 1)
    assert not duplicates, f"{len(duplicates)} transactions alerted twice: {duplicates[:20]}"
    missing = sorted(set(flagged) - set(counts))
    extra = sorted(set(counts) - set(flagged))
    assert not missing, f"{len(missing)} flagged transactions without an alert: {missing[:20]}"
    assert not extra, f"{len(extra)} alerts for transactions the card rule does not flag " \
                      f"(the merchant rule alone must not fire on this data): {extra[:20]}"
    wrong = [(a["id"], (a["card_n"], a["card_total"]), flagged[a["id"]]) for a in alerts
             if (a["card_n"], a["card_total"]) != flagged[a["id"]]]
    assert not wrong, f"alerts whose card figures are not the true running ones (a " \
                      f"transaction counted twice or not at all in state): {wrong[:10]}"


class Run:
    """`neptunectl run examples/fraud_monitoring.py`, its figures over HTTP."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.state = tmp / "state"
        self.tokens = tmp / "tokens"
        self.log = (tmp / "neptunectl.log").open("wb")
        self.proc = subprocess.Popen(
            [str(NEPTUNECTL), "run", str(EXAMPLE), "--executors", "2", "--no-live",
             "--http-port", str(self.port), "--state-dir", str(self.state),
             "--tokens-dir", str(self.tokens), "--print-every", "5"],
            env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT, cwd=tmp)

    def status(self) -> dict[str, Any]:
        token = (self.tokens / "read").read_text().strip()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/status",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            doc: dict[str, Any] = json.load(resp)
        return doc

    def score(self) -> dict[str, Any]:
        try:
            figures: dict[str, Any] = self.status()["jobs"]["score"]
        except (OSError, KeyError):
            return {}
        return figures

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def tail(self) -> str:
        self.log.flush()
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-40:])


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Run]]:
    runs: list[Run] = []

    def start(env: dict[str, str]) -> Run:
        runs.append(Run(tmp_path, env))
        return runs[-1]

    yield start
    for r in runs:
        r.stop()


def produce(env: dict[str, str], first: int, count: int) -> None:
    """The example's own producer, as the README runs it."""
    proc = subprocess.run([sys.executable, str(EXAMPLE), "produce", "--first", str(first),
                           "--count", str(count)], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"the example's producer failed:\n{proc.stderr}"


def test_fraud_example_kill_an_executor_alerts_once_and_totals_exact(
        bootstrap: str, new_topic: Callable[..., str], tmp_path: Path,
        run: Callable[[dict[str, str]], Run]) -> None:
    fm = example()
    env = {"FRAUD_BOOTSTRAP": bootstrap, "FRAUD_TRANSACTIONS": new_topic("tx", partitions=3),
           "FRAUD_ALERTS": new_topic("alerts", partitions=3), "FRAUD_GROUP": unique("fraud"),
           "FRAUD_EXACTLY_ONCE": "1", "FRAUD_EVENT_MS": "2", "FRAUD_BASELINE_EVERY": "2s"}
    first, second = 3000, 2000
    produce(env, 0, first)
    r = run(env)
    wait_until(lambda: r.score().get("records", 0) >= 600 or r.proc.poll() is not None, 90,
               "600 transactions scored")
    assert r.proc.poll() is None, f"neptunectl run exited:\n{r.tail()}"
    executors = r.status()["executors"]["list"]
    victim = next((e for e in executors if e["running"]), executors[0])
    os.kill(int(victim["pid"]), signal.SIGKILL)  # neptunectl run starts a new one
    produce(env, first, second)
    flagged, cards = truth(fm, first + second)

    def done() -> bool:
        figures = r.score()
        return figures.get("records", 0) >= first + second and figures.get("uncommitted") == 0

    wait_until(done, 240, f"all {first + second} transactions scored and committed "
                          f"(last: {r.score()})")
    alerts = [json.loads(rec.value or b"null")
              for rec in consume_to_end(bootstrap, env["FRAUD_ALERTS"])]  # read_committed
    status = r.status()
    assert status["executors"]["lost"] >= 1, "the driver never saw the executor go"
    assert status["jobs"]["baselines"]["epoch"] >= 1, "the baselines job never finished an epoch"
    assert r.stop() == 0, f"neptunectl run failed:\n{r.tail()}"

    check_alerts(alerts, flagged)
    assert any("merchant" in a["reasons"] for a in alerts), \
        "no alert cites a merchant baseline: the published baselines never reached the task"

    store = CheckpointStore(r.state)
    try:
        assert store.pending() is None, "a checkpoint is still pending after a clean stop"
        maps, _tokens = load(store)
    finally:
        store.close()
    state: dict[str, Any] = {}
    for (job, _partition), names in maps.items():
        if job == "score":
            state.update(names.get("cards", {}))
    got = {card: {"n": s["n"], "total": s["total"]} for card, s in state.items()}
    assert got == cards, "the keyed state's per-card totals are not the true totals"


def test_the_manifest_names_the_app_and_its_jobs_as_declared() -> None:
    import yaml

    from neptune_runtime.jobconfig import apply_job_settings

    fm = example()
    manifest = yaml.safe_load((ROOT / "examples" / "fraud-monitoring.yaml").read_text())
    assert manifest["kind"] == "ContinuousApplication"
    assert manifest["metadata"]["name"] == fm.app.name
    spec = manifest["spec"]
    jobs = {j["name"]: {k: v for k, v in j.items() if k != "name"} for j in spec["jobs"]}
    assert set(jobs) == set(fm.app.jobs)
    assert apply_job_settings(fm.app, {"jobs": jobs}) == []
    assert spec["upgradeMode"] == "last-state" and "storage" in spec["driver"], \
        "last-state keyed state wants the driver's volume"
    kafka = jobs["score"]["source"]["kafka"]
    assert (kafka["topic"], kafka["group"]) == (fm.TRANSACTIONS, fm.GROUP)
