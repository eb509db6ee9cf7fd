"""Starting and stopping the systems of the Kafka benchmarks, each in its own process(es):
ours (a LocalCluster: a driver on one core, one executor on the other), Quix Streams, Spark
Structured Streaming, and the peers' batch process. Each gives the pids whose CPU is counted.

Quix Streams and PySpark run from virtualenvs of their own under the cache directory (Quix pins
confluent-kafka < 2.13 while the project needs >= 2.16; the spark-sql-kafka jars on Maven
Central must match the PySpark version): `ensure_venv` makes them on first use with pip.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

CACHE = Path(os.environ.get("NEPTUNE_CACHE", "/var/cache/neptune-k8s"))
BENCH_DIR = str(Path(__file__).resolve().parents[2])  # bench/, holding neptune_bench
QUIX_VERSION = "3.28.1"
# PySpark whose spark-sql-kafka-0-10 is on Maven Central (4.3.0's is not there)
SPARK_VERSION = "4.2.0"
SPARK_JARS = ("spark-sql-kafka", "spark-token-provider-kafka", "kafka-clients", "commons-pool2")
SPARK_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>neptune.bench</groupId><artifactId>spark-kafka-jars</artifactId><version>1</version>
  <dependencies><dependency>
    <groupId>org.apache.spark</groupId><artifactId>spark-sql-kafka-0-10_2.13</artifactId>
    <version>{version}</version>
  </dependency></dependencies>
</project>
"""


def ensure_venv(name: str, packages: list[str]) -> str:
    """The Python of CACHE/NAME, a virtualenv made with `packages` if it is not there yet."""
    venv = CACHE / name
    python = venv / "bin" / "python"
    stamp = venv / ".complete"
    if not stamp.exists():
        print(f"making {venv} with {' '.join(packages)} ...", file=sys.stderr, flush=True)
        subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
        stamp.write_text(" ".join(packages) + "\n")
    return str(python)


def quix_python() -> str:
    return ensure_venv("quix-venv", [f"quixstreams=={QUIX_VERSION}"])


def spark_python() -> str:
    return ensure_venv("spark-venv", [f"pyspark=={SPARK_VERSION}", "pandas<3", "pyarrow"])


def spark_jars(version: str = SPARK_VERSION) -> list[str]:
    """spark-sql-kafka-0-10 and what it needs beyond PySpark's own jars, from Maven Central
    (`mvn dependency:copy-dependencies`, once, into CACHE/spark-kafka-VERSION/jars)."""
    where = CACHE / f"spark-kafka-{version}"
    jars = where / "jars"
    if not (where / ".complete").exists():
        where.mkdir(parents=True, exist_ok=True)
        (where / "pom.xml").write_text(SPARK_POM.format(version=version))
        with open(where / "mvn.log", "w") as log:
            done = subprocess.run(["mvn", "-q", "-B", "dependency:copy-dependencies",
                                   f"-DoutputDirectory={jars}", "-DincludeScope=runtime"],
                                  cwd=where, stdout=log, stderr=log, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"mvn could not resolve spark-sql-kafka-0-10_2.13:{version}; "
                               f"see {where / 'mvn.log'}")
        (where / ".complete").write_text("ok\n")
    return sorted(str(j) for j in jars.iterdir() if j.name.startswith(SPARK_JARS))


@dataclass
class Running:
    """A started system: its pids (CPU counted over their trees) and how to stop it."""

    name: str
    pids: list[int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    cluster: Any = None  # neptune: the LocalCluster
    tmp: tempfile.TemporaryDirectory[str] | None = None
    log: IO[str] | None = None

    def status(self) -> dict[str, Any]:
        figures: dict[str, Any] = self.cluster.status() if self.cluster is not None else {}
        return figures

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):  # a JVM's stragglers
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if self.log is not None:
            self.log.close()
        if self.tmp is not None:
            self.tmp.cleanup()


def _popen(args: list[str], env: dict[str, str], log: IO[str],
           cpu: int | None) -> subprocess.Popen[bytes]:
    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, preexec_fn=pin)


def _pythonpath(env: dict[str, str]) -> dict[str, str]:
    return {**env, "PYTHONPATH": BENCH_DIR + os.pathsep + env.get("PYTHONPATH", "")}


def start_neptune(mode: str, topics: tuple[str, str], group: str, bootstrap: str,
                  cpus: tuple[int | None, int | None], batch: bool, loops: int,
                  log_path: str, exactly_once: bool = False) -> Running:
    from neptune_runtime.processes import LocalCluster

    driver_cpu, executor_cpu = cpus
    tmp = tempfile.TemporaryDirectory(prefix="kafka-bench-")
    log = open(log_path, "a")  # noqa: SIM115 - closed by Running.stop
    cluster = LocalCluster(
        "neptune_bench.kafka_peers.neptune_app", executors=1, state_dir=tmp.name, log=log,
        executor_cpus=None if executor_cpu is None else [executor_cpu], driver_cpu=driver_cpu,
        env={"KB_MODE": mode, "KB_BATCH": "1" if batch else "0", "KB_IN": topics[0],
             "KB_OUT": topics[1], "KB_GROUP": group, "KB_BOOTSTRAP": bootstrap,
             "BENCH_LOOPS": str(loops), "KB_EXACTLY_ONCE": "1" if exactly_once else "0"})
    cluster.start()
    return Running("neptune", [p.pid for p in cluster.procs.values()], cluster=cluster,
                   tmp=tmp, log=log)


def start_quix(mode: str, topics: tuple[str, str], group: str, bootstrap: str,
               cpus: tuple[int | None, int | None], log_path: str,
               exactly_once: bool = False) -> Running:
    driver_cpu, executor_cpu = cpus
    tmp = tempfile.TemporaryDirectory(prefix="kafka-bench-quix-")
    cfg = {"mode": mode, "bootstrap": bootstrap, "in": topics[0], "out": topics[1],
           "group": group, "state_dir": tmp.name, "executor_cpu": executor_cpu,
           "driver_cpu": driver_cpu,
           "guarantee": "exactly-once" if exactly_once else "at-least-once"}
    log = open(log_path, "a")  # noqa: SIM115 - closed by Running.stop
    proc = _popen([quix_python(), "-m", "neptune_bench.kafka_peers.quix_app", json.dumps(cfg)],
                  _pythonpath(dict(os.environ)), log, driver_cpu)
    return Running("quix", [proc.pid], procs=[proc], tmp=tmp, log=log)


def start_spark(topics: tuple[str, str], bootstrap: str, cpus: tuple[int | None, int | None],
                log_path: str) -> Running:
    driver_cpu, executor_cpu = cpus
    python = spark_python()
    tmp = tempfile.TemporaryDirectory(prefix="kafka-bench-spark-")
    cfg = {"bootstrap": bootstrap, "in": topics[0], "out": topics[1],
           "checkpoint": os.path.join(tmp.name, "checkpoint"), "jars": spark_jars(),
           "executor_cpu": executor_cpu}
    env = _pythonpath({**os.environ, "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python})
    log = open(log_path, "a")  # noqa: SIM115 - closed by Running.stop
    proc = _popen([python, "-m", "neptune_bench.kafka_peers.spark_app", json.dumps(cfg)],
                  env, log, driver_cpu)
    return Running("spark", [proc.pid], procs=[proc], tmp=tmp, log=log)


def start_batch_process(batch_log: str, records: int, loops: int, cpu: int | None,
                        log_path: str) -> Running:
    log = open(log_path, "a")  # noqa: SIM115 - closed by Running.stop
    proc = _popen([sys.executable, "-m", "neptune_bench.kafka_peers.batch", batch_log,
                   str(records), str(loops), "-" if cpu is None else str(cpu)],
                  _pythonpath(dict(os.environ)), log, cpu)
    return Running("batch", [proc.pid], procs=[proc], log=log)
