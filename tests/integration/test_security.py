"""No one unauthenticated gets in: HTTP tokens, a relayed handshake, invalid driver messages.

Real driver and executor processes over real sockets; the attackers are plain sockets."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from neptune_runtime import protocol
from neptune_runtime.processes import LocalCluster, free_port

from .conftest import APPS, wait_for


def http(cluster: LocalCluster, method: str, path: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(cluster.http + path, data=body, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        text: str = response.read().decode()
        return text


@pytest.mark.parametrize("faults_cluster", [{"executors": 1, "env": {"FAULTS_EPOCHS": "1"}}],
                         indirect=True)
def test_http_needs_the_right_token_and_counts_refusals(faults_cluster: LocalCluster) -> None:
    cluster = faults_cluster
    ingest, read = cluster.tokens["ingest"], cluster.tokens["read"]
    events = json.dumps([{"id": 1}]).encode()
    for method, path, body in [("POST", "/ingest/events", events), ("GET", "/status", None),
                               ("GET", "/state/sums", None), ("POST", "/admin/reset-stats", b"")]:
        code, answer = http(cluster, method, path, body=body)
        assert code == 401 and "missing token" in answer["error"], (path, answer)
        code, answer = http(cluster, method, path, {"Authorization": "Bearer nope"}, body)
        assert code == 401 and "wrong token" in answer["error"], (path, answer)
    # the read token reads, and only reads
    assert http(cluster, "GET", "/status", {"Authorization": f"Bearer {read}"})[0] == 200
    assert http(cluster, "GET", "/state/sums", {"X-Neptune-Token": read})[0] == 200
    assert http(cluster, "POST", "/ingest/events", {"X-Neptune-Token": read}, events)[0] == 401
    assert http(cluster, "POST", "/admin/reset-stats", {"X-Neptune-Token": read}, b"")[0] == 401
    # the ingest token does everything; X-Neptune-Token passes proxies that eat Authorization
    assert http(cluster, "POST", "/ingest/events", {"X-Neptune-Token": ingest}, events) == (
        202, {"accepted": 1})
    assert http(cluster, "GET", "/status", {"Authorization": f"Bearer {ingest}"})[0] == 200
    # /metrics and /healthz stay open
    metrics = scrape(cluster.http + "/metrics")
    assert http(cluster, "GET", "/healthz")[0] == 200
    assert 'neptune_http_auth_failures_total{endpoint="ingest"} 3.0' in metrics
    assert 'neptune_http_auth_failures_total{endpoint="status"} 2.0' in metrics
    assert 'neptune_http_auth_failures_total{endpoint="admin"} 3.0' in metrics
    assert cluster.status()["jobs"]["events"]["events"] == 1, "a refused ingest was taken"


def test_a_rotated_token_takes_effect_without_a_restart(tmp_path: Path) -> None:
    env = {"FAULTS_SINK": str(tmp_path / "sink.jsonl"), "FAULTS_EPOCHS": "1"}
    with LocalCluster(str(APPS / "faults.py"), executors=1, env=env,
                      tokens_dir=str(tmp_path / "tokens")) as cluster:
        old = cluster.tokens["read"]
        (tmp_path / "tokens" / "read").write_text("a-new-read-token\n")
        wait_for(lambda: http(cluster, "GET", "/status",
                              {"X-Neptune-Token": "a-new-read-token"})[0] == 200, 10,
                 "the new token to be taken")
        assert http(cluster, "GET", "/status", {"X-Neptune-Token": old})[0] == 401


def _frames(sock: socket.socket) -> Iterator[bytes]:
    """Whole frames (header and body) as they come, undecoded."""
    buffer = b""
    while True:
        while len(buffer) >= 4 and len(buffer) >= 4 + protocol.HEADER.unpack(buffer[:4])[0]:
            end = 4 + protocol.HEADER.unpack(buffer[:4])[0]
            frame, buffer = buffer[:end], buffer[end:]
            yield frame
        data = sock.recv(1 << 16)
        if not data:
            return
        buffer += data


class Relay:
    """A fake driver without the secret: it relays an executor's handshake to the real driver,
    then tries to read the session and to inject messages into both sides."""

    def __init__(self, driver_port: int) -> None:
        self.driver_port = driver_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.welcome_readable: bool | None = None
        self.executor_dropped = threading.Event()
        self.driver_dropped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        victim, _ = self.listener.accept()
        driver = socket.create_connection(("127.0.0.1", self.driver_port))
        from_victim, from_driver = _frames(victim), _frames(driver)
        driver.sendall(next(from_victim))  # hello
        victim.sendall(next(from_driver))  # challenge: its MAC is the real driver's
        driver.sendall(next(from_victim))  # auth: the driver now trusts this connection
        welcome = next(from_driver)
        try:
            msgpack.unpackb(welcome[4:])
            self.welcome_readable = True
        except Exception:
            self.welcome_readable = False
        victim.sendall(welcome)
        # what the real attack did: publish a model to the executor, and speak for it
        victim.sendall(protocol.encode({"t": "state", "name": "sums", "version": 99,
                                        "value": [100] * 8}))
        driver.sendall(protocol.encode({"t": "ready", "memory_limit": 0, "pid": 1}))
        for sock, dropped in ((victim, self.executor_dropped), (driver, self.driver_dropped)):
            sock.settimeout(10)
            try:
                while sock.recv(1 << 16):
                    pass
                dropped.set()
            except OSError:
                dropped.set()


@pytest.mark.parametrize("faults_cluster", [{"executors": 1, "env": {"FAULTS_EPOCHS": "1"}}],
                         indirect=True)
def test_a_relayed_handshake_gives_the_relay_nothing(faults_cluster: LocalCluster) -> None:
    relay = Relay(faults_cluster.port)
    metrics_port = free_port()
    env = {**os.environ, "NEPTUNE_SECRET": faults_cluster.secret, "NEPTUNE_CONNECT_TIMEOUT": "2s"}
    victim = subprocess.Popen(
        [sys.executable, "-m", "neptune_runtime.cli", "executor", "--app",
         str(APPS / "faults.py"), "--driver", f"127.0.0.1:{relay.port}", "--name", "victim",
         "--metrics-port", str(metrics_port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert relay.executor_dropped.wait(20), "the executor took the relay's injected frame"
        assert relay.driver_dropped.wait(20), "the driver took the relay's injected frame"
        assert relay.welcome_readable is False, "the relay could read the session"
        wait_for(lambda: "neptune_executor_wire_errors_total 1.0" in scrape(
            f"http://127.0.0.1:{metrics_port}/metrics"), 10, "the executor to count it")
        status = faults_cluster.status()
        assert status["wire_errors"] == 1
        assert [e["id"] for e in status["executors"]["list"]] == ["exec-0"]
    finally:
        victim.terminate()
        _, err = victim.communicate(timeout=20)
    assert "a frame failed authentication" in err
    assert "Traceback" not in err


def fake_driver(script: Any, connections: int = 3) -> int:
    """A fake driver that runs `script(sock, hello)` for each of its first `connections`
    connections, then stops listening (so the executor's retries end)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        for _ in range(connections):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                frames = protocol.FrameBuffer()
                hello = None
                while hello is None:
                    data = conn.recv(4096)
                    if not data:
                        break
                    hello = next(frames.feed(data), None)
                if hello is not None:
                    script(conn, hello)
        listener.close()

    port: int = listener.getsockname()[1]
    threading.Thread(target=serve, daemon=True).start()
    return port


SECRET = "s" * 64


def run_executor(port: int, timeout: str = "1s") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEPTUNE_SECRET": SECRET, "NEPTUNE_CONNECT_TIMEOUT": timeout}
    return subprocess.run([sys.executable, "-m", "neptune_runtime.cli", "executor", "--app",
                           str(APPS / "faults.py"), "--driver", f"127.0.0.1:{port}",
                           "--name", "e"], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("challenge", [
    {"t": "challenge", "v": protocol.VERSION},  # no nonce: this crashed the executor
    {"t": "challenge", "v": protocol.VERSION, "nonce": "text", "mac": b""},
    {"t": "challenge", "v": protocol.VERSION, "nonce": b"short", "mac": b""},
    {"t": "nonsense"},
])
def test_a_bad_challenge_is_retried_then_a_clean_exit(challenge: dict[str, Any]) -> None:
    attempts: list[int] = []

    def script(conn: socket.socket, hello: dict[str, Any]) -> None:
        attempts.append(1)
        conn.sendall(protocol.encode(challenge))
        time.sleep(0.1)

    port = fake_driver(script)
    result = run_executor(port)
    assert result.returncode == 2, result.stderr
    assert "neptunectl executor: cannot reach driver" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(attempts) >= 2, "a handshake error was not retried"


@pytest.mark.parametrize("message", [
    {"t": "run", "id": "x"},  # fields missing
    {"t": "run", "id": "x", "job": "events", "kind": "stream", "priority": "high",
     "partition": 0, "epoch": 0, "attempt": 0},
    {"t": "run", "id": "x", "job": "events", "kind": "sideways", "priority": 1,
     "partition": 0, "epoch": 0, "attempt": 0},
    {"t": "resume"},
    {"t": "state", "name": 7, "version": 1, "value": 1},
    {"t": "hello-again"},
])
def test_an_invalid_message_from_an_authenticated_driver_is_a_counted_disconnect(
        message: dict[str, Any]) -> None:
    """A driver that knows the secret but sends garbage: the executor drops the connection,
    counts it, and connects again; it never crashes."""
    sessions: list[int] = []

    def script(conn: socket.socket, hello: dict[str, Any]) -> None:
        ours = protocol.new_nonce()
        conn.sendall(protocol.encode({"t": "challenge", "v": protocol.VERSION, "nonce": ours,
                                      "mac": protocol.driver_mac(SECRET, hello["nonce"], ours)}))
        conn.recv(4096)  # auth
        to_executor, _ = protocol.session_keys(SECRET, hello["nonce"], ours, hello["executor"])
        sealer = protocol.Sealer(to_executor)
        conn.sendall(protocol.encode({"t": "welcome", "executor_id": "e", "preempts": "suspend",
                                      "states": {}}, sealer))
        conn.sendall(protocol.encode(message, sealer))
        sessions.append(1)
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            while conn.recv(4096):
                pass

    port = fake_driver(script)
    result = run_executor(port, timeout="3s")
    assert len(sessions) >= 2, f"the executor did not connect again: {result.stderr}"
    assert "dropping the driver connection" in result.stderr
    assert "Traceback" not in result.stderr
