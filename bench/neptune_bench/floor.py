"""The machine's floor for a preemption signal: the one-way delay of a message from a process on
the driver's CPU to a process on the executor's CPU that does nothing but poll for it.

No yield point can notice a preemption request sooner than this, whatever the runtime does on
either side. Two carriers: a TCP loopback connection (what driver and executor use) polled with
a non-blocking recv, and a shared-memory word (the least a same-host signal can cost). Both ends
stamp `time.perf_counter_ns()`, CLOCK_MONOTONIC, which is one clock for every CPU of a machine.
"""

from __future__ import annotations

import itertools
import mmap
import os
import random
import select
import signal
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from neptune_runtime.stats import percentile

from .work import work

STAMP = struct.Struct("=qq")  # sequence number, send time (ns)
ACK = struct.Struct("=q")
RECEIVER_TIMEOUT_S = 30.0


def _summary(delays_ns: list[int]) -> dict[str, float]:
    us = sorted(d / 1e3 for d in delays_ns)
    return {"p50": percentile(us, 50), "p99": percentile(us, 99),
            "max": us[-1] if us else 0.0, "samples": float(len(us))}


def _receive_tcp(sock: socket.socket, count: int) -> list[int]:
    delays: list[int] = []
    buffer = b""
    while len(delays) < count:
        try:
            data = sock.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        if not data:
            break
        now = time.perf_counter_ns()
        buffer += data
        while len(buffer) >= STAMP.size:
            _, sent = STAMP.unpack_from(buffer)
            buffer = buffer[STAMP.size:]
            delays.append(now - sent)
    return delays


def _receive_shm(word: mmap.mmap, count: int) -> list[int]:
    """Acknowledge each stamp (after it, in the page) so the sender never overwrites one."""
    delays: list[int] = []
    while len(delays) < count:
        seq, sent = STAMP.unpack_from(word)
        if seq == len(delays) + 1:
            delays.append(time.perf_counter_ns() - sent)
            ACK.pack_into(word, STAMP.size, seq)
    return delays


def _pair(carrier: str, count: int, gap_s: tuple[float, float], cpus: tuple[int, int],
          seed: int) -> list[int]:
    """Fork a receiver on cpus[1]; send `count` stamps from cpus[0] at random gaps."""
    word = mmap.mmap(-1, STAMP.size + ACK.size)
    listener = socket.create_server(("127.0.0.1", 0))
    results_r, results_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the receiver: poll, then hand the delays back through the pipe
        try:
            os.sched_setaffinity(0, {cpus[1]})
            if carrier == "tcp":
                conn, _ = listener.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                delays = _receive_tcp(conn, count)
            else:
                os.write(results_w, b"R")
                delays = _receive_shm(word, count)
            payload = struct.pack(f"={len(delays)}q", *delays)
            os.write(results_w, struct.pack("=q", len(delays)) + payload)
        finally:
            os._exit(0)
    try:
        os.sched_setaffinity(0, {cpus[0]})
        rng = random.Random(seed)
        sender: socket.socket | None = None
        if carrier == "tcp":
            sender = socket.create_connection(listener.getsockname())
            sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            os.read(results_r, 1)  # the receiver is polling
        time.sleep(0.05)
        for seq in range(1, count + 1):
            time.sleep(rng.uniform(*gap_s))
            stamp = STAMP.pack(seq, time.perf_counter_ns())
            if sender is not None:
                sender.sendall(stamp)
            else:
                word[:STAMP.size] = stamp
                while ACK.unpack_from(word, STAMP.size)[0] != seq:
                    pass
        if not select.select([results_r], [], [], RECEIVER_TIMEOUT_S)[0]:
            os.kill(pid, signal.SIGKILL)
            raise RuntimeError(f"signal floor ({carrier}): the receiver did not answer")
        with os.fdopen(results_r, "rb") as results:
            (n,) = struct.unpack("=q", results.read(8))
            delays = list(struct.unpack(f"={n}q", results.read(8 * n)))
        if sender is not None:
            sender.close()
        return delays
    finally:
        os.waitpid(pid, 0)
        os.close(results_w)
        listener.close()
        word.close()
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))


def signal_floor(cpus: tuple[int, int], count: int = 500,
                 gap_s: tuple[float, float] = (0.5e-3, 2e-3)) -> dict[str, Any]:
    """One-way delay percentiles (us) per carrier, the receiver busy-polling."""
    return {carrier: _summary(_pair(carrier, count, gap_s, cpus, seed))
            for seed, carrier in enumerate(("tcp", "shm"))}


def record_times(cpu: int | None, loops: int, count: int = 50_000) -> dict[str, float]:
    """How long the benchmark's batch records take on `cpu` with no runtime at all: a yield
    point is reached once per record, so a record the machine stretches (an interrupt, the host
    running something else) delays a preemption by as much, whatever the runtime does."""
    affinity = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        stamps = [0] * (count + 1)
        clock = time.perf_counter_ns
        stamps[0] = clock()
        for i in range(1, count + 1):
            work(i, loops)
            stamps[i] = clock()
    finally:
        os.sched_setaffinity(0, affinity)
    us = sorted((b - a) / 1e3 for a, b in itertools.pairwise(stamps))
    total_s = sum(us) / 1e6
    return {"p50": percentile(us, 50), "p99": percentile(us, 99), "p999": percentile(us, 99.9),
            "max": us[-1], "over_30us_per_s": sum(1 for u in us if u > 30) / total_s,
            "samples": float(count)}


def coarse_record_times(cpu: int | None, record: Callable[[int], int],
                        count: int = 20) -> dict[str, float]:
    """How long a coarse batch record (`record`, one C call) takes on `cpu` with no runtime, in
    ms: a preemption of a task in one waits for it to end. The first call, which makes the
    buffer and faults its pages in, is left out."""
    affinity = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        record(0)
        ms = []
        for i in range(count):
            start = time.perf_counter_ns()
            record(i)
            ms.append((time.perf_counter_ns() - start) / 1e6)
    finally:
        os.sched_setaffinity(0, affinity)
    ms.sort()
    return {"p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": ms[-1],
            "samples": float(count)}
