"""The checkpoint store's writes, in a process of its own beside the driver.

rocksdict holds the GIL for the whole of a write: committing 1M changed keys from a worker
thread stopped the driver's event loop for ~390 ms, every stream event meanwhile waiting
(docs/architecture.md, "Keyed state"). So while the driver runs, a child process owns the
store (checkpoints.CheckpointStore, unchanged) and makes each write there: the driver passes
the changes on as the executors packed them (keyed.py), and waits for the answer on a pipe
with the GIL released; the child unpacks them into its write batch. Writes stay what they
were: one atomic, synced batch per commit. The driver opens the store itself at start
(settle, load) and hands it over after.

Frames, both ways on the child's stdin and stdout: a 4-byte big-endian length, then msgpack.
Requests: ["changes", op, job, partition, [change, ...]] (no answer: a commit's go into its
write batch as they arrive; CHUNK packed changes a frame), then one of ["commit", tokens],
["prepare", tokens], ["settle", committed], with tokens as [[job, partition, token], ...];
each is answered ["ok"] or ["error", message] (changes that do not unpack fail the request
they came for). The child answers ["ok"] once it holds the store. It ends at EOF (the driver
closed it), and is killed when the driver dies, so that a new driver finds the store
unlocked.

    python -m neptune_runtime.checkpoint_writer DIRECTORY PARENT_PID
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from .checkpoints import Batch, CheckpointStore, Lane, _pack, _unpack
from .keyed import Change, unpacked

CHUNK = 64  # packed changes a frame (keyed.CHUNK keys each): a few MB, copied, not packed
PR_SET_PDEATHSIG = 1
HEADER = struct.Struct(">I")


def _frame(value: Any) -> bytes:
    data = _pack(value)
    return HEADER.pack(len(data)) + data


def _read(stream: IO[bytes]) -> Any:
    """The next frame's value; None at EOF (also in the middle of a frame: the writer died)."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return _unpack(body)


def _lanes(tokens: dict[Lane, Any]) -> list[list[Any]]:
    return [[job, part, token] for (job, part), token in tokens.items()]


class CheckpointWriter:
    """The driver's side: `commit`, `prepare`, `settle` and `changes` as CheckpointStore's, made
    by the writer process. A call that fails (the writer died, or its write raised) raises OSError,
    so the committer commits nothing and tries again; a dead writer is started again then."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one call at a time, from the committer's threads

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the writer now, from the driver's main thread: the child is killed when the
        thread that started it ends, and the main thread lives as long as the driver."""
        with self._lock:
            self._process()

    def _process(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        proc = subprocess.Popen(
            [sys.executable, "-m", __name__, str(self.directory), str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._proc = proc
        self._answer(proc, "start")
        return proc

    def _answer(self, proc: subprocess.Popen[bytes], what: str) -> list[Any]:
        assert proc.stdout is not None
        reply = _read(proc.stdout)
        if reply is None:
            code = proc.wait()
            self._proc = None
            raise OSError(f"the checkpoint writer of {self.directory} exited (code {code}) "
                          f"during {what}")
        if reply[0] != "ok":
            if what == "start":
                proc.wait()
                self._proc = None
            raise OSError(f"the checkpoint writer of {self.directory}: {reply[1]}")
        return list(reply)

    def _call(self, changes: dict[Lane, list[Change]], request: list[Any]) -> list[Any]:
        with self._lock:
            proc = self._process()
            assert proc.stdin is not None
            try:
                for (job, part), lane in changes.items():
                    for at in range(0, len(lane), CHUNK):
                        proc.stdin.write(_frame(["changes", request[0], job, part,
                                                 lane[at:at + CHUNK]]))
                proc.stdin.write(_frame(request))
                proc.stdin.flush()
            except BrokenPipeError:
                pass  # the writer is gone: the answer's EOF says how it ended
            except BaseException:
                # Half a checkpoint's changes sent: they must not go into the next write.
                self._kill(proc)
                raise
            return self._answer(proc, str(request[0]))

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.kill()
        proc.wait()
        self._proc = None

    def commit(self, changes: dict[Lane, list[Change]], tokens: dict[Lane, Any]) -> None:
        self._call(changes, ["commit", _lanes(tokens)])

    def prepare(self, changes: dict[Lane, list[Change]], tokens: dict[Lane, Any]) -> None:
        self._call(changes, ["prepare", _lanes(tokens)])

    def settle(self, committed: bool) -> None:
        self._call({}, ["settle", committed])

    def changes(self, lane: Lane) -> list[Change]:
        """The lane's committed state, packed (CheckpointStore.changes): after any commit in
        progress, which holds the lock."""
        changes: list[Change] = self._call({}, ["state", lane[0], lane[1]])[1]
        return changes

    def close(self) -> None:
        """EOF to the writer, which closes the store and ends."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _die_with(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the driver died before the line above
        os._exit(1)


def serve(directory: Path, requests: IO[bytes], answers: IO[bytes]) -> None:
    def answer(value: list[Any]) -> None:
        answers.write(_frame(value))
        answers.flush()

    try:
        store = CheckpointStore(directory)
    except Exception as exc:
        answer(["error", f"cannot open the store: {exc}"])
        return
    answer(["ok"])
    batch = Batch()  # a commit's, built as its changes arrive
    changes: dict[Lane, list[Change]] = {}  # a prepare's: it writes them as one document
    problem: str | None = None  # why the changes that came cannot be written
    try:
        while (request := _read(requests)) is not None:
            op = request[0]
            if op == "changes":
                lane = (request[2], request[3])
                if problem is None:  # else this checkpoint fails: the rest of it is not read
                    try:
                        if request[1] == "commit":
                            batch.add(lane, request[4])
                        else:  # checked now, written as they came
                            for change in request[4]:
                                unpacked(change)
                            changes.setdefault(lane, []).extend(request[4])
                    except ValueError as exc:
                        problem = str(exc)
                continue
            reply: list[Any] = ["ok"]
            try:
                if problem is not None:
                    raise ValueError(problem)
                tokens = {(job, part): token for job, part, token in request[1]} \
                    if op in ("commit", "prepare") else {}
                if op == "commit":
                    store.write(batch.finish(tokens))
                elif op == "prepare":
                    store.prepare(changes, tokens)
                elif op == "settle":
                    store.settle(bool(request[1]))
                elif op == "state":
                    reply.append(store.changes((request[1], request[2])))
                else:
                    raise ValueError(f"unknown request {op!r}")
            except Exception as exc:
                reply = ["error", f"{type(exc).__name__}: {exc}"]
            batch, changes, problem = Batch(), {}, None
            answer(reply)
    finally:
        store.close()


def main(argv: list[str]) -> int:
    directory, parent = Path(argv[0]), int(argv[1])
    _die_with(parent)
    # Below the driver, whose CPU it shares: the driver's loop is the stream's latency, a
    # checkpoint may take a little longer (on one core, unniced, the driver's loop turns took
    # 20-45 ms while a 1M-key checkpoint was written).
    os.nice(10)
    gc.disable()  # what it builds holds no cycle; see collector.py for what collections cost
    # The answers get stdout's pipe of their own; anything else printed goes to stderr.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(directory, sys.stdin.buffer, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
