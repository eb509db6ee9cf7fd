"""os_priority: stream and batch in two processes on the executor's core, the batch one at
SCHED_IDLE (or nice 19 where that is refused). The kernel preempts the batch process the moment
the stream process wakes, even in the middle of a C call (the coarse records' sha256): the
floor a cooperative runtime can approach but not beat.

The stream process blocks on a pipe; the submitting process (on the driver's core) sends it the
event and reads the answer back, as our driver does with an executor over a socket.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from .common import Done, PeerConfig, batch_task, main_for, pin_process, stream_task

_CTX = multiprocessing.get_context("fork")


def _lower_priority() -> str:
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "SCHED_IDLE"
    except (OSError, AttributeError):
        os.nice(19)
        return "nice 19"


def _try_idle() -> None:
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # raises (exit code 1) if refused


def _batch_loop(cfg: PeerConfig, log_path: str) -> None:
    pin_process(cfg.executor_cpu)
    _lower_priority()
    seed = 0
    while True:  # until the parent terminates us
        batch_task(seed, cfg.batch_records, cfg.loops, log_path, None, cfg.batch_record)
        seed += 1


def _stream_server(cfg: PeerConfig, conn: Connection) -> None:
    pin_process(cfg.executor_cpu)
    while True:
        seed = conn.recv()
        if seed is None:
            return
        conn.send(stream_task(seed, cfg.stream_records, cfg.loops, None))


class OsPriority:
    def __init__(self, cfg: PeerConfig) -> None:
        self.cfg = cfg
        self.batch: BaseProcess | None = None
        self.conn, child = _CTX.Pipe()
        self.server = _CTX.Process(target=_stream_server, args=(cfg, child), daemon=True)
        self.server.start()
        self.waiting: list[Done] = []  # the server answers in order, one at a time
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        while True:
            try:
                counted = self.conn.recv()
            except (EOFError, OSError):
                return
            with self.lock:
                done = self.waiting.pop(0)
            done(counted)

    def prime(self) -> None:
        self.conn.send(0)
        self.conn.recv()  # one round trip before the reader thread takes the pipe over
        self.reader.start()

    def start_batch(self, log_path: str, tasks_hint: int) -> None:
        self.batch = _CTX.Process(target=_batch_loop, args=(self.cfg, log_path), daemon=True)
        self.batch.start()

    def stop_batch(self) -> None:
        if self.batch is not None:
            self.batch.terminate()
            self.batch.join(5)
            self.batch = None

    def submit_stream(self, seed: int, done: Done) -> None:
        with self.lock:
            self.waiting.append(done)
            self.conn.send(seed)

    def close(self) -> None:
        self.stop_batch()
        self.conn.send(None)
        self.server.join(5)
        if self.server.is_alive():
            self.server.terminate()


def _make(cfg: PeerConfig) -> tuple[OsPriority, dict[str, Any]]:
    probe = _CTX.Process(target=_try_idle)  # which one the kernel grants us
    probe.start()
    probe.join()
    granted = "SCHED_IDLE" if probe.exitcode == 0 else "nice 19"
    return OsPriority(cfg), {"batch_priority": granted}


def _close(system: OsPriority) -> None:
    system.close()


if __name__ == "__main__":
    main_for(_make, _close)
