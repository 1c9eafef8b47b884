"""Threads: gostore against raw APSW with the same threads doing the same work.

1. set+get pairs from 4 threads on one in-memory store, against raw APSW on one shared
   connection with a cursor per thread (the SetGet_Parallel workload of ``gostore bench``).
2. A file store, 4 threads doing 90% get / 10% set, against raw APSW with one connection per
   thread (WAL, synchronous=NORMAL on both sides, the same pragmas and busy handler).
3. Single thread: ``store.get`` against a raw cursor execute of the same statement, in memory
   and on a file (min of many runs).

gostore and raw APSW run interleaved, round after round, so that a busy machine slows both
alike; each figure is the median of the rounds with its spread (min-max).

    python benchmarks/bench_threads.py [--rounds 7] [--ops 20000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import timeit
from collections.abc import Callable

import apsw

import gostore
from gostore.engine import sqlite_schema as sql

THREADS = 4
KEYS = 10_000
GROUP = "bench"
VALUE = "v" * 100
NAMES = [f"key{i:05d}" for i in range(KEYS)]


def _threads(work: Callable[[int, int], None], ops: int) -> float:
    """Wall seconds for THREADS threads sharing ``ops`` operations."""
    threads = [
        threading.Thread(target=work, args=(ops * w // THREADS, ops * (w + 1) // THREADS))
        for w in range(THREADS)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def _raw(path: str) -> apsw.Connection:
    conn = apsw.Connection(path)
    conn.set_busy_handler(sql.BusyWaiter(5.0))
    if path == sql.MEMORY:
        sql.migrate(conn)
    else:
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.execute("PRAGMA synchronous=NORMAL")
        sql.set_cache(conn, 2, 256)
    return conn


# -- 1. set+get pairs in memory --------------------------------------------------------------
def setget_gostore(ops: int) -> float:
    with gostore.Store(":memory:", purge_interval=0) as store:
        put, get = store.set, store.get

        def work(lo: int, hi: int) -> None:
            for j in range(lo, hi):
                k = NAMES[j % KEYS]
                put(GROUP, k, VALUE)
                get(GROUP, k)

        return _threads(work, ops) / ops


def setget_raw(ops: int) -> float:
    conn = _raw(sql.MEMORY)

    def work(lo: int, hi: int) -> None:
        ex = conn.cursor().execute
        for j in range(lo, hi):
            k = NAMES[j % KEYS]
            ex(sql.SET, (GROUP, k, VALUE, None))
            ex(sql.GET, (GROUP, k)).fetchall()

    try:
        return _threads(work, ops) / ops
    finally:
        conn.close()


# -- 2. 90% get / 10% set on a file ------------------------------------------------------------
def _fill(path: str) -> None:
    with gostore.Store(path, purge_interval=0) as store:
        store.set_many(GROUP, dict.fromkeys(NAMES, VALUE))


def mixed_gostore(path: str, ops: int) -> float:
    # synchronous="normal", as the raw connections: the same durability on both sides.
    with gostore.Store(path, purge_interval=0, synchronous="normal") as store:
        put, get = store.set, store.get

        def work(lo: int, hi: int) -> None:
            for j in range(lo, hi):
                k = NAMES[(j * 7919) % KEYS]
                if j % 10 == 0:
                    put(GROUP, k, VALUE)
                else:
                    get(GROUP, k)

        return ops / _threads(work, ops)


def mixed_raw(path: str, ops: int) -> float:
    def work(lo: int, hi: int) -> None:
        conn = _raw(path)  # one connection per thread
        ex = conn.cursor().execute
        try:
            for j in range(lo, hi):
                k = NAMES[(j * 7919) % KEYS]
                if j % 10 == 0:
                    ex(sql.SET, (GROUP, k, VALUE, None))
                else:
                    ex(sql.GET, (GROUP, k)).fetchall()
        finally:
            conn.close()

    return ops / _threads(work, ops)


# -- 3. single-thread get ------------------------------------------------------------------------
def single_get(path: str) -> tuple[float, float]:
    """(store.get, raw cursor execute) in seconds per call, min of many runs."""
    with gostore.Store(path, purge_interval=0) as store:
        store.set(GROUP, "k", VALUE)
        get = store.get
        raw = _raw(path)
        if path == sql.MEMORY:  # its own database: give it the same row
            raw.execute(sql.SET, (GROUP, "k", VALUE, None))
        cur = raw.cursor()
        ex = cur.execute
        stmt = sql.GET
        try:
            n = 20_000
            ours = min(timeit.repeat(lambda: get(GROUP, "k"), number=n, repeat=15)) / n
            theirs = min(
                timeit.repeat(lambda: ex(stmt, (GROUP, "k")).fetchall(), number=n, repeat=15)
            ) / n
        finally:
            raw.close()
    return ours, theirs


def _summary(name: str, ratios: list[float], unit: str = "") -> str:
    med = statistics.median(ratios)
    return f"{name}: median {med:.2f}{unit} (min {min(ratios):.2f}, max {max(ratios):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", type=int, default=20_000)
    args = parser.parse_args()
    print(f"gostore {gostore.__version__}  SPEEDUPS={gostore.SPEEDUPS}  cores={os.cpu_count()}")

    ratios = []
    for _ in range(args.rounds):
        ours, theirs = setget_gostore(args.ops), setget_raw(args.ops)
        ratios.append(ours / theirs)
        print(f"  set+get 4 threads memory: gostore {ours * 1e6:.2f} µs/pair, "
              f"raw {theirs * 1e6:.2f} µs/pair, ratio {ours / theirs:.2f}")
    print(_summary("SetGet_Parallel gostore/raw time (target <= 1.5)", ratios))

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "threads.db")
        _fill(path)
        ratios = []
        for _ in range(args.rounds):
            ours, theirs = mixed_gostore(path, args.ops), mixed_raw(path, args.ops)
            ratios.append(ours / theirs)
            print(f"  90/10 get/set 4 threads file: gostore {ours:,.0f} ops/s, "
                  f"raw (connection per thread) {theirs:,.0f} ops/s, ratio {ours / theirs:.2f}")
        print(_summary("file 90/10 gostore/raw throughput (target >= 0.9)", ratios))

        for where in (sql.MEMORY, path):
            ours, theirs = single_get(where)
            label = "memory" if where == sql.MEMORY else "file"
            print(f"single-thread get, {label}: store.get {ours * 1e9:.0f} ns, raw execute "
                  f"{theirs * 1e9:.0f} ns, get/raw {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
