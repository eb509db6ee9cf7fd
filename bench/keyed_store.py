"""Keyed state: rocksdict (RocksDB) against SQLite, measured the way a stream task uses a store.

    .venv/bin/python bench/keyed_store.py --out bench/results [--reps 3] [--quick]

Issue 11, item 4: back `ctx.keyed_state(name)` with a well-kept embedded store, rocksdict (as
Quix Streams does) or SQLite; measure both and choose. Values are msgpack-encoded running
aggregates ({"n", "sum", "max"}) under keys like b"card-0000042".

The model of a task's state, the same for both stores (Quix Streams' design): a task reads a key
from its dirty cache or else from the store, updates it and puts the encoded value back into the
dirty cache; a checkpoint writes the dirty keys and the source offsets in ONE atomic commit
(RocksDB: one WriteBatch holding the offsets row; SQLite: one transaction holding the offsets
row), so that a restored store never holds an event beyond its offsets. SQLite can also keep the
transaction open and run SQL per event (mode "sql"), committing it at the checkpoint.

Variants (each in its own fresh process, interleaved, `--reps` times):
  rocksdb        WriteBatch with the WAL, not fsynced (WriteOptions.sync=False): survives a
                 process crash; a machine crash can lose the last checkpoints, never half of one
  rocksdb-sync   the same batch, fsynced (sync=True)
  sqlite-normal  WAL mode, synchronous=NORMAL: the same guarantee as `rocksdb`
  sqlite-full    WAL mode, synchronous=FULL: the same guarantee as `rocksdb-sync`

Measured per run: (a) per-event read-modify-write over 100k keys (throughput with a checkpoint
every 10k events, p50/p99 per event, and those checkpoints); (b) checkpoints over a 1M-key store:
all 1M keys dirty, and 10k dirty keys; a full snapshot (RocksDB: a Checkpoint, hard-linked SST
files, then copied and fsynced elsewhere; SQLite: the backup API into a file, fsynced) and the
snapshot after 10k more dirty keys (RocksDB ships only its new files; SQLite copies the file
again); (c) restore of 1M keys into a fresh store from the shipped snapshot (file copy and open),
and a logical restore (every key read back and written in 100k-key batches, as a replay of a
changelog would do); (d) disk bytes; and the memory of a process that opens the 1M-key store and
reads 100k keys.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgpack

VARIANTS = ["rocksdb", "rocksdb-sync", "sqlite-normal", "sqlite-full"]
OFFSETS_KEY = b"\x00offsets"  # the offsets row lives in the keyed store itself (RocksDB)
CACHE_BYTES = 64 << 20  # block cache (RocksDB) and page cache (SQLite), the same for both


def key_of(i: int) -> bytes:
    return b"card-%07d" % i


def fresh_value(i: int) -> bytes:
    """A first aggregate whose floats look like real amounts (not trivially compressible)."""
    x = (i * 2654435761 % 2**32) / 42949.67295
    return msgpack.packb({"n": 1, "sum": x, "max": x})


# ---- files ------------------------------------------------------------------------------------

def fsync_path(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_fsync(src: Path, dst: Path) -> int:
    """Copy a file or a directory's files to dst, fsync them and dst; bytes copied."""
    n = 0
    if src.is_file():
        shutil.copyfile(src, dst)
        fsync_path(dst)
        fsync_path(dst.parent)
        return dst.stat().st_size
    dst.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        shutil.copyfile(f, dst / f.name)
        fsync_path(dst / f.name)
        n += f.stat().st_size
    fsync_path(dst)
    return n


def disk_bytes(p: Path) -> int:
    """Allocated bytes under p (hard links counted once)."""
    seen: set[int] = set()
    total = 0
    files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
    for f in files:
        st = f.stat()
        if st.st_ino not in seen:
            seen.add(st.st_ino)
            total += st.st_blocks * 512
    return total


def rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# ---- the two stores ---------------------------------------------------------------------------

class Store:
    """What keyed state needs from an embedded store."""

    def get(self, key: bytes) -> bytes | None:
        raise NotImplementedError

    def commit(self, dirty: dict[bytes, bytes], offsets: dict[int, int]) -> None:
        """Dirty keys and the offsets they reflect, atomically and durably (per the variant)."""
        raise NotImplementedError

    def offsets(self) -> dict[int, int]:
        raise NotImplementedError

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class RocksStore(Store):
    def __init__(self, path: Path, sync: bool) -> None:
        from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteOptions

        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_write_buffer_size(64 << 20)
        table = BlockBasedOptions()
        table.set_block_cache(Cache(CACHE_BYTES))
        table.set_bloom_filter(10, False)
        opts.set_block_based_table_factory(table)
        self.path = path
        self.db = Rdict(str(path), opts)
        self.wo = WriteOptions()
        self.wo.sync = sync

    def get(self, key: bytes) -> bytes | None:
        v = self.db.get(key)
        return v if isinstance(v, bytes) else None

    def commit(self, dirty: dict[bytes, bytes], offsets: dict[int, int]) -> None:
        from rocksdict import WriteBatch

        t = time.perf_counter()
        wb = WriteBatch(raw_mode=True)
        for k, v in dirty.items():
            wb.put(k, v)
        wb.put(OFFSETS_KEY, msgpack.packb(offsets))
        t1 = time.perf_counter()
        self.db.write(wb, self.wo)
        self.last_split = (t1 - t, time.perf_counter() - t1)

    def offsets(self) -> dict[int, int]:
        raw = self.db.get(OFFSETS_KEY)
        return dict(msgpack.unpackb(raw, strict_map_key=False)) if isinstance(raw, bytes) else {}

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for k, v in self.db.items():
            if k != OFFSETS_KEY:
                yield k, v

    def snapshot(self, dst: Path) -> None:
        """A RocksDB Checkpoint: the memtable flushed, SST files hard-linked into dst."""
        from rocksdict import Checkpoint

        Checkpoint(self.db).create_checkpoint(str(dst))

    def close(self) -> None:
        self.db.close()


class SqliteStore(Store):
    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.execute(f"PRAGMA cache_size=-{CACHE_BYTES >> 10}")
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL)"
                        " WITHOUT ROWID")
        self.db.execute("CREATE TABLE IF NOT EXISTS offsets"
                        " (partition INTEGER PRIMARY KEY, next INTEGER NOT NULL)")
        self.in_txn = False

    def get(self, key: bytes) -> bytes | None:
        row = self.db.execute("SELECT v FROM kv WHERE k=?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def _write_offsets(self, offsets: dict[int, int]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO offsets VALUES (?, ?)", offsets.items())

    def commit(self, dirty: dict[bytes, bytes], offsets: dict[int, int]) -> None:
        if not self.in_txn:
            self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", dirty.items())
        self._write_offsets(offsets)
        self.db.execute("COMMIT")
        self.in_txn = False

    # mode "sql": the open transaction is the dirty cache
    def put_in_txn(self, key: bytes, value: bytes) -> None:
        if not self.in_txn:
            self.db.execute("BEGIN")
            self.in_txn = True
        self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))

    def offsets(self) -> dict[int, int]:
        return dict(self.db.execute("SELECT partition, next FROM offsets").fetchall())

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for k, v in self.db.execute("SELECT k, v FROM kv"):
            yield bytes(k), bytes(v)

    def snapshot(self, dst: Path) -> None:
        """The online backup API: a consistent copy of every page into dst, then fsynced."""
        out = sqlite3.connect(dst)
        out.execute("PRAGMA synchronous=OFF")  # the copy is fsynced once at the end
        with out:
            self.db.backup(out, pages=-1)
        out.close()
        fsync_path(dst)
        fsync_path(dst.parent)

    def files(self) -> list[Path]:
        return [p for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
                if p.exists()]

    def close(self) -> None:
        self.db.close()


def open_store(variant: str, where: Path, name: str) -> Store:
    if variant.startswith("rocksdb"):
        return RocksStore(where / name, sync=variant == "rocksdb-sync")
    return SqliteStore(where / f"{name}.sqlite", "FULL" if variant == "sqlite-full" else "NORMAL")


def store_disk_bytes(store: Store) -> int:
    if isinstance(store, SqliteStore):
        return sum(disk_bytes(p) for p in store.files())
    assert isinstance(store, RocksStore)
    return disk_bytes(store.path)


def load(store: Store, n: int, batch: int = 100_000, offset: int = 0) -> None:
    for lo in range(0, n, batch):
        store.commit({key_of(i): fresh_value(i) for i in range(lo, min(n, lo + batch))},
                     {0: offset})


# ---- (a) per-event read-modify-write ------------------------------------------------------------

def update(raw: bytes | None, amount: float) -> bytes:
    agg = msgpack.unpackb(raw) if raw is not None else {"n": 0, "sum": 0.0, "max": 0.0}
    agg["n"] += 1
    agg["sum"] += amount
    if amount > agg["max"]:
        agg["max"] = amount
    return msgpack.packb(agg)


def per_event(store: Store, mode: str, hot_keys: int, events: int, every: int,
              seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    keys = [key_of(rng.randrange(hot_keys)) for _ in range(events)]
    amounts = [rng.random() * 100 for _ in range(events)]
    lat = array("q", bytes(8 * events))
    checkpoints: list[float] = []
    dirty_sizes: list[int] = []
    dirty: dict[bytes, bytes] = {}
    clock = time.perf_counter_ns
    sql = mode == "sql"
    assert not sql or isinstance(store, SqliteStore)
    gc.collect()
    gc.disable()
    t0 = time.perf_counter()
    try:
        for i in range(events):
            k = keys[i]
            s = clock()
            if sql:
                store.put_in_txn(k, update(store.get(k), amounts[i]))  # type: ignore[attr-defined]
            else:
                raw = dirty.get(k)
                dirty[k] = update(raw if raw is not None else store.get(k), amounts[i])
            lat[i] = clock() - s
            if (i + 1) % every == 0:
                c = time.perf_counter()
                dirty_sizes.append(len(dirty))
                store.commit(dirty, {0: i + 1})
                dirty = {}
                checkpoints.append(time.perf_counter() - c)
        total = time.perf_counter() - t0
    finally:
        gc.enable()
    ordered = sorted(lat)
    return {
        "events": events,
        "events_per_s": events / total,
        "p50_us": ordered[len(ordered) // 2] / 1000,
        "p99_us": ordered[int(len(ordered) * 0.99)] / 1000,
        "max_us": ordered[-1] / 1000,
        "checkpoint_s_median": statistics.median(checkpoints),
        "checkpoint_s_max": max(checkpoints),
        "checkpoint_dirty_keys": round(statistics.mean(dirty_sizes)) if dirty_sizes else 0,
    }


# ---- (b) checkpoints and snapshots, (c) restore, (d) disk ------------------------------------

def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    r = fn(*args)
    return time.perf_counter() - t, r


def dirty_over(rng: random.Random, n_keys: int, n_dirty: int, tag: int) -> dict[bytes, bytes]:
    return {key_of(rng.randrange(n_keys)): msgpack.packb({"n": tag, "sum": 1.0, "max": 1.0})
            for _ in range(n_dirty)}


def commit_beside_a_thread(store: Store, dirty: dict[bytes, bytes],
                           offsets: dict[int, int]) -> dict[str, float]:
    """A checkpoint while another Python thread computes: does the store let go of the GIL?

    share: the other thread's progress during the commit over its progress alone (1.0: the
    commit holds no GIL; near 0: the process stands still while it commits).
    """
    stop = threading.Event()
    count = [0]

    def spin() -> None:
        while not stop.is_set():
            count[0] += 1

    th = threading.Thread(target=spin, daemon=True)
    th.start()
    time.sleep(0.1)
    c0, t0 = count[0], time.perf_counter()
    time.sleep(0.3)
    alone = (count[0] - c0) / (time.perf_counter() - t0)
    c0, t0 = count[0], time.perf_counter()
    store.commit(dirty, offsets)
    took = time.perf_counter() - t0
    during = (count[0] - c0) / took
    stop.set()
    th.join()
    return {"commit_s": took, "share": during / alone if alone else 0.0}


def snapshot_and_ship(store: Store, work: Path, name: str,
                      previous: Path | None) -> tuple[float, float, int, Path]:
    """(seconds to make the snapshot, seconds to ship it, bytes shipped, the shipped copy)."""
    shipped = work / "shipped" / name
    shipped.parent.mkdir(exist_ok=True)
    if isinstance(store, RocksStore):
        local = work / f"ckpt-{name}"
        make_s, _ = timed(store.snapshot, local)
        # ship: only the files the previous shipped snapshot lacks (SST files never change);
        # the rest are hard links to the previous copy
        t = time.perf_counter()
        shipped.mkdir()
        sent = 0
        for f in sorted(local.iterdir()):
            old = previous / f.name if previous is not None else None
            if (old is not None and old.exists() and f.suffix == ".sst"
                    and old.stat().st_size == f.stat().st_size):
                os.link(old, shipped / f.name)
            else:
                shutil.copyfile(f, shipped / f.name)
                fsync_path(shipped / f.name)
                sent += f.stat().st_size
        fsync_path(shipped)
        ship_s = time.perf_counter() - t
        shutil.rmtree(local)
        return make_s, ship_s, sent, shipped
    assert isinstance(store, SqliteStore)
    local = work / f"backup-{name}.sqlite"
    make_s, _ = timed(store.snapshot, local)
    shipped = shipped.with_suffix(".sqlite")
    ship_s, sent = timed(copy_fsync, local, shipped)
    local.unlink()
    return make_s, ship_s, sent, shipped


def restore(variant: str, snapshot: Path, work: Path, name: str,
            n_keys: int, rng: random.Random) -> float:
    """Copy the shipped snapshot into a fresh place, open it, read the offsets and 1k keys."""
    t = time.perf_counter()
    if variant.startswith("rocksdb"):
        copy_fsync(snapshot, work / name)
    else:
        copy_fsync(snapshot, work / f"{name}.sqlite")
    store = open_store(variant, work, name)
    assert store.offsets(), "no offsets in the restored store"
    for _ in range(1000):
        assert store.get(key_of(rng.randrange(n_keys))) is not None
    took = time.perf_counter() - t
    store.close()
    return took


def logical_restore(variant: str, snapshot: Path, work: Path, n_keys: int) -> float:
    """Every key of the snapshot read back and written into an empty store, 100k per commit."""
    src_name = "logical-src"
    if variant.startswith("rocksdb"):
        shutil.copytree(snapshot, work / src_name)
    else:
        shutil.copyfile(snapshot, work / f"{src_name}.sqlite")
    src = open_store(variant, work, src_name)
    t = time.perf_counter()
    dst = open_store(variant, work, "logical-dst")
    offsets = src.offsets()
    batch: dict[bytes, bytes] = {}
    n = 0
    for k, v in src.items():
        batch[k] = v
        if len(batch) == 100_000:
            dst.commit(batch, offsets)
            n += len(batch)
            batch = {}
    dst.commit(batch, offsets)
    n += len(batch)
    took = time.perf_counter() - t
    assert n == n_keys, (n, n_keys)
    src.close()
    dst.close()
    return took


def run_variant(variant: str, rep: int, args: argparse.Namespace) -> dict[str, Any]:
    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{variant}-{rep}-", dir=base))
    rng = random.Random(1000 + rep)
    out: dict[str, Any] = {"variant": variant, "rep": rep}
    try:
        rss0 = rss_kib()
        # (a) per-event read-modify-write over hot_keys keys
        modes = ["cache", "sql"] if variant.startswith("sqlite") else ["cache"]
        for mode in modes:
            s = open_store(variant, work, f"hot-{mode}")
            load(s, args.hot_keys)
            out[f"rmw_{mode}"] = per_event(s, mode, args.hot_keys, args.events, args.every,
                                           seed=rep)
            s.close()
        # (b) a store of n_keys keys: all of them dirty in one checkpoint
        s = open_store(variant, work, "big")
        dirty = {key_of(i): fresh_value(i) for i in range(args.keys)}
        gc.collect()
        out["checkpoint_all_dirty_s"], _ = timed(s.commit, dirty, {0: args.keys})
        if isinstance(s, RocksStore):
            out["checkpoint_all_dirty_build_s"], out["checkpoint_all_dirty_write_s"] = s.last_split
        del dirty
        gc.collect()
        # incremental checkpoints: 10k dirty keys each
        incr = []
        for j in range(args.incremental):
            d = dirty_over(rng, args.keys, args.dirty, tag=j)
            took, _ = timed(s.commit, d, {0: args.keys + (j + 1) * args.dirty})
            incr.append(took)
        out["checkpoint_incremental_s"] = incr
        out["checkpoint_incremental_dirty_keys"] = args.dirty
        # small commits, as one task's changes would be: args.small dirty keys each
        small = []
        for j in range(20):
            d = dirty_over(rng, args.keys, args.small, tag=j)
            took, _ = timed(s.commit, d, {0: 2 * args.keys + (j + 1) * args.small})
            small.append(took)
        out["checkpoint_small_s"] = small
        out["checkpoint_beside_a_thread"] = commit_beside_a_thread(
            s, dirty_over(rng, args.keys, args.dirty, tag=98), {0: 3 * args.keys})
        # full snapshot, then the next one after 10k more dirty keys
        make_s, ship_s, sent, shipped = snapshot_and_ship(s, work, "full", None)
        out["snapshot_full"] = {"make_s": make_s, "ship_s": ship_s, "bytes_shipped": sent}
        s.commit(dirty_over(rng, args.keys, args.dirty, tag=99), {0: 2 * args.keys})
        make_s, ship_s, sent, shipped2 = snapshot_and_ship(s, work, "next", shipped)
        out["snapshot_after_10k"] = {"make_s": make_s, "ship_s": ship_s, "bytes_shipped": sent}
        # (d) disk bytes, with the WAL as the store leaves it after its last checkpoint
        out["disk_store_bytes"] = store_disk_bytes(s)
        out["disk_snapshot_bytes"] = disk_bytes(shipped2)
        out["rss_after_big_mib"] = (rss_kib() - rss0) / 1024
        s.close()
        # (c) restore 1M keys into a fresh store, from the shipped snapshot
        out["restore_s"] = restore(variant, shipped2, work, "restored", args.keys, rng)
        out["restore_logical_s"] = logical_restore(variant, shipped2, work, args.keys)
        # memory of a process that opens the 1M-key store and reads 100k keys
        probe = subprocess.run(
            [sys.executable, __file__, "--probe-mem", variant, "--probe-dir", str(work),
             "--keys", str(args.keys)], capture_output=True, text=True, check=True)
        out["memory"] = json.loads(probe.stdout)
        out["peak_rss_mib"] = rss_kib("VmHWM") / 1024
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def probe_memory(variant: str, work: Path, n_keys: int) -> dict[str, float]:
    gc.collect()
    before = rss_kib()
    s = open_store(variant, work, "restored")
    opened = rss_kib()
    rng = random.Random(7)
    t = time.perf_counter()
    for _ in range(100_000):
        s.get(key_of(rng.randrange(n_keys)))
    read_s = time.perf_counter() - t
    after = rss_kib()
    s.close()
    return {"open_mib": (opened - before) / 1024, "after_100k_reads_mib": (after - before) / 1024,
            "random_get_us": read_s / 100_000 * 1e6}


# ---- the driver: interleaved runs, spread, report -------------------------------------------

def spread(values: Iterable[float]) -> dict[str, float]:
    v = sorted(values)
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "n": len(v)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    def pick(r: dict[str, Any], path: str) -> float:
        cur: Any = r
        for part in path.split("."):
            cur = cur[part]
        return float(statistics.median(cur)) if isinstance(cur, list) else float(cur)

    metrics = [
        "rmw_cache.events_per_s", "rmw_cache.p50_us", "rmw_cache.p99_us",
        "rmw_cache.checkpoint_s_median", "rmw_cache.checkpoint_s_max",
        "rmw_cache.checkpoint_dirty_keys",
        "rmw_sql.events_per_s", "rmw_sql.p50_us", "rmw_sql.p99_us",
        "rmw_sql.checkpoint_s_median",
        "checkpoint_all_dirty_s", "checkpoint_all_dirty_build_s", "checkpoint_all_dirty_write_s",
        "checkpoint_incremental_s", "checkpoint_small_s", "checkpoint_beside_a_thread.commit_s",
        "checkpoint_beside_a_thread.share",
        "snapshot_full.make_s", "snapshot_full.ship_s", "snapshot_full.bytes_shipped",
        "snapshot_after_10k.make_s", "snapshot_after_10k.ship_s",
        "snapshot_after_10k.bytes_shipped",
        "restore_s", "restore_logical_s", "disk_store_bytes", "disk_snapshot_bytes",
        "memory.open_mib", "memory.after_100k_reads_mib", "memory.random_get_us",
        "rss_after_big_mib", "peak_rss_mib",
    ]
    out: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r["variant"] == variant]
        if not mine:
            continue
        out[variant] = {}
        for m in metrics:
            try:
                out[variant][m] = spread(pick(r, m) for r in mine)
            except KeyError:
                continue
    return out


def fmt(s: dict[str, float] | None, unit: str) -> str:
    if s is None:
        return "-"
    scale = {"s": (1000, "ms"), "us": (1, "us"), "ops": (1, "/s"), "mib": (1, "MiB"),
             "bytes": (1 / 2**20, "MiB"), "ratio": (1, "")}[unit]
    f, u = scale

    def one(x: float) -> str:
        y = x * f
        if unit == "ops":
            return f"{y / 1000:.0f}k"
        if unit == "ratio":
            return f"{y:.2f}"
        return f"{y:.0f}" if y >= 100 else f"{y:.1f}" if y >= 10 else f"{y:.2f}"

    return f"{one(s['median'])} ({one(s['min'])}-{one(s['max'])}) {u}"


ROWS = [
    ("(a) RMW per event, dirty cache: events/s incl. a checkpoint every {every}",
     "rmw_cache.events_per_s", "ops"),
    ("(a) RMW per event, dirty cache: p50", "rmw_cache.p50_us", "us"),
    ("(a) RMW per event, dirty cache: p99", "rmw_cache.p99_us", "us"),
    ("(a) its checkpoints ({ckpt_dirty} dirty of {hot} keys): median",
     "rmw_cache.checkpoint_s_median", "s"),
    ("(a) RMW per event, SQL in an open transaction: events/s", "rmw_sql.events_per_s", "ops"),
    ("(a) RMW per event, SQL in an open transaction: p50", "rmw_sql.p50_us", "us"),
    ("(a) RMW per event, SQL in an open transaction: p99", "rmw_sql.p99_us", "us"),
    ("(b) checkpoint, all {keys} keys dirty + offsets, one commit", "checkpoint_all_dirty_s", "s"),
    ("(b) of which building the WriteBatch in Python", "checkpoint_all_dirty_build_s", "s"),
    ("(b) of which db.write", "checkpoint_all_dirty_write_s", "s"),
    ("(b) checkpoint, {dirty} dirty keys of {keys} + offsets", "checkpoint_incremental_s", "s"),
    ("(b) small commit, {small} dirty keys of {keys} + offsets (one task's changes)",
     "checkpoint_small_s", "s"),
    ("(b) a {dirty}-key checkpoint beside a busy Python thread",
     "checkpoint_beside_a_thread.commit_s", "s"),
    ("(b) that thread's progress meanwhile (1 = GIL released)",
     "checkpoint_beside_a_thread.share", "ratio"),
    ("(b) full snapshot of {keys} keys: make", "snapshot_full.make_s", "s"),
    ("(b) full snapshot of {keys} keys: ship (copy + fsync)", "snapshot_full.ship_s", "s"),
    ("(b) full snapshot: bytes shipped", "snapshot_full.bytes_shipped", "bytes"),
    ("(b) next snapshot after {dirty} dirty keys: make", "snapshot_after_10k.make_s", "s"),
    ("(b) next snapshot after {dirty} dirty keys: ship", "snapshot_after_10k.ship_s", "s"),
    ("(b) next snapshot: bytes shipped", "snapshot_after_10k.bytes_shipped", "bytes"),
    ("(c) restore {keys} keys from the snapshot (copy, open, read)", "restore_s", "s"),
    ("(c) logical restore {keys} keys (read all, write in 100k commits)", "restore_logical_s", "s"),
    ("(d) disk: the {keys}-key store", "disk_store_bytes", "bytes"),
    ("(d) disk: its snapshot", "disk_snapshot_bytes", "bytes"),
    ("memory: open the {keys}-key store", "memory.open_mib", "mib"),
    ("memory: after 100k random reads", "memory.after_100k_reads_mib", "mib"),
    ("random get on the {keys}-key store", "memory.random_get_us", "us"),
    ("peak RSS of a run (with the {keys}-key dirty dict, the same for all)", "peak_rss_mib",
     "mib"),
]


def markdown(summary: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    variants = [v for v in VARIANTS if v in summary]
    lines = [
        "# Keyed state store: rocksdict against SQLite",
        "",
        f"`{meta['command']}` on {meta['machine']}, {meta['date']}; {meta['reps']} runs of each "
        "variant, interleaved, each in a fresh process. Figures: median (min-max) over the runs.",
        f"rocksdict {meta['rocksdict']} (RocksDB inside the wheel), SQLite {meta['sqlite']} "
        f"(Python {meta['python']}'s sqlite3), msgpack {meta['msgpack']}. "
        f"{meta['hot_keys']:,} hot keys, {meta['events']:,} events per run; "
        f"a {meta['keys']:,}-key store.",
        "",
        "| | " + " | ".join(variants) + " |",
        "| --- | " + " | ".join("---" for _ in variants) + " |",
    ]
    ckpt = summary[variants[0]].get("rmw_cache.checkpoint_dirty_keys") if variants else None
    names = {"keys": _short(meta["keys"]), "hot": _short(meta["hot_keys"]),
             "dirty": _short(meta["dirty"]), "every": _short(meta["every"]),
             "small": _short(meta.get("small", 100)),
             "ckpt_dirty": "~" + _short(ckpt["median"]) if ckpt else "?"}
    for label, metric, unit in ROWS:
        label = label.format(**names)
        cells = [fmt(summary[v].get(metric), unit) for v in variants]
        if all(c == "-" for c in cells):
            continue
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", meta.get("notes", "")]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench/results", help="writes keyed_store.json and .md")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--hot-keys", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--every", type=int, default=10_000, help="events between checkpoints")
    ap.add_argument("--dirty", type=int, default=10_000)
    ap.add_argument("--incremental", type=int, default=5)
    ap.add_argument("--small", type=int, default=100,
                    help="dirty keys of the small commits (one task's changes)")
    ap.add_argument("--dir", default="/var/tmp/neptune-keyed-store",
                    help="work directory (a real disk: fsync must cost what it costs)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke test")
    ap.add_argument("--notes", default="", help="a file whose text ends the Markdown report")
    ap.add_argument("--report-from", metavar="JSON",
                    help="no runs: rewrite the Markdown from a results JSON (with --notes)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--rep", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--probe-mem", help=argparse.SUPPRESS)
    ap.add_argument("--probe-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.probe_mem:
        print(json.dumps(probe_memory(args.probe_mem, Path(args.probe_dir), args.keys)))
        return
    if args.report_from:
        data = json.loads(Path(args.report_from).read_text())
        if args.notes:
            data["meta"]["notes"] = Path(args.notes).read_text()
        Path(args.report_from).write_text(json.dumps(data, indent=1) + "\n")
        md = markdown(data["summary"], data["meta"])
        Path(args.report_from).with_suffix(".md").write_text(md)
        print(md)
        return
    if args.quick:
        args.reps, args.keys, args.hot_keys, args.events = 1, 50_000, 10_000, 20_000
        args.every, args.dirty, args.incremental, args.small = 2_000, 1_000, 2, 50
    if args.worker:
        print(json.dumps(run_variant(args.worker, args.rep, args)))
        return

    variants = args.variants.split(",")
    runs: list[dict[str, Any]] = []
    t0 = time.time()
    for rep in range(args.reps):
        order = variants[rep % len(variants):] + variants[:rep % len(variants)]
        for v in order:
            t = time.time()
            cmd = [sys.executable, __file__, "--worker", v, "--rep", str(rep),
                   "--keys", str(args.keys), "--hot-keys", str(args.hot_keys),
                   "--events", str(args.events), "--every", str(args.every),
                   "--dirty", str(args.dirty), "--incremental", str(args.incremental),
                   "--small", str(args.small),
                   "--dir", args.dir]
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if r.returncode != 0:
                sys.exit(f"{v} run {rep + 1} failed:\n{r.stderr[-3000:]}")
            runs.append(json.loads(r.stdout))
            print(f"[{time.time() - t0:6.0f}s] run {rep + 1}/{args.reps} {v}: "
                  f"{time.time() - t:.0f}s", file=sys.stderr, flush=True)

    import rocksdict

    meta = {
        "command": "python bench/keyed_store.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "reps": args.reps, "keys": args.keys, "hot_keys": args.hot_keys,
        "events": args.events, "every": args.every, "dirty": args.dirty, "small": args.small,
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
        "rocksdict": getattr(rocksdict, "__version__", _dist_version("rocksdict")),
        "msgpack": _dist_version("msgpack"),
        "notes": Path(args.notes).read_text() if args.notes else "",
    }
    summary = summarize(runs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "keyed_store_quick" if args.quick else "keyed_store"
    (out / f"{name}.json").write_text(json.dumps(
        {"meta": meta, "summary": summary, "runs": runs}, indent=1) + "\n")
    (out / f"{name}.md").write_text(markdown(summary, meta))
    print(markdown(summary, meta))


def _short(n: float) -> str:
    n = round(n)
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000:
        return f"{n / 1000:.1f}k".replace(".0k", "k")
    return str(n)


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
