"""Get on a large file versus a small one, under page-cache and mmap settings; stats() timing.

SQLite's default page cache is 2 MB: on a file of a million keys (~100 MB) nearly every get of
a random key reads B-tree pages from the OS again, and costs about twice a get on a file of a
thousand keys. This script builds both files once (set_many), then times random gets through
``Store.get`` on each, for each ``(cache_size_mb, mmap_size_mb)`` setting, in interleaved
rounds (best round kept, so other load on the machine counts as little as possible), and
prints the 1M/1K ratio per setting. It also times ``stats()`` on the large file.

    python benchmarks/large_db.py                       # 1M keys, in a temporary directory
    python benchmarks/large_db.py --dir /tmp/big --keep # reuse the files between runs
    python benchmarks/large_db.py --settings 2:0,64:256

Run it on an idle machine: it takes about a minute (building the 1M-key file: a few seconds).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import apsw

import gostore
from gostore.engine import sqlite_schema as sql

GROUP = "bench"
SMALL = 1_000
_CHUNK = 50_000


def key(i: int) -> str:
    return f"key-{i:08d}"


def build(path: Path, count: int) -> None:
    """A file of ``count`` keys (values ~40 bytes), unless it already holds them."""
    if path.exists():
        with gostore.Store(path, purge_interval=0) as store:
            if store.count(GROUP) == count:
                return
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
    with gostore.Store(path, purge_interval=0, synchronous="off") as store:
        for start in range(0, count, _CHUNK):
            stop = min(count, start + _CHUNK)
            store.set_many(GROUP, {key(i): f"value-{i:08d}-{'x' * 24}" for i in range(start, stop)})
        store.checkpoint("truncate")


def time_gets(store: gostore.Store | RawGet, keys: list[str]) -> float:
    """Mean seconds per get over ``keys``."""
    get = store.get
    began = time.perf_counter()
    for k in keys:
        get(GROUP, k)
    return (time.perf_counter() - began) / len(keys)


class RawGet:
    """Raw APSW running the store's own GET statement: the floor a facade can reach."""

    def __init__(self, path: Path, cache_size_mb: float, mmap_size_mb: float) -> None:
        self.conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        sql.set_cache(self.conn, cache_size_mb, mmap_size_mb)
        self.cursor = self.conn.cursor()

    def get(self, group: str, k: str) -> object:
        for row in self.cursor.execute(sql.GET, (group, k)):  # noqa: B007
            pass
        return row

    def close(self) -> None:
        self.conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys in the large file")
    parser.add_argument("--dir", type=Path, default=None, help="where the files go")
    parser.add_argument("--keep", action="store_true", help="keep the files afterwards")
    parser.add_argument("--gets", type=int, default=50_000, help="gets per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument(
        "--settings",
        default="2:0,64:0,2:256,64:256",
        help="comma-separated cache_size_mb:mmap_size_mb pairs (2:0 is SQLite's default)",
    )
    args = parser.parse_args(argv)
    settings = [tuple(float(x) for x in pair.split(":")) for pair in args.settings.split(",")]
    own_dir = args.dir is None
    where = Path(tempfile.mkdtemp(prefix="gostore-large-")) if own_dir else args.dir
    where.mkdir(parents=True, exist_ok=True)
    small, large = where / f"keys-{SMALL}.db", where / f"keys-{args.keys}.db"
    began = time.perf_counter()
    build(small, SMALL)
    build(large, args.keys)
    print(f"files ready in {time.perf_counter() - began:.1f} s "
          f"(large: {os.path.getsize(large) / 1e6:.0f} MB); gostore.SPEEDUPS={gostore.SPEEDUPS}")

    rng = random.Random(42)
    picks = {
        small: [key(rng.randrange(SMALL)) for _ in range(args.gets)],
        large: [key(rng.randrange(args.keys)) for _ in range(args.gets)],
    }
    stores: dict[tuple[str, tuple[float, ...], Path], gostore.Store | RawGet] = {}
    for setting in settings:
        for path in (small, large):
            stores[("gostore", setting, path)] = gostore.Store(
                path, purge_interval=0, readonly=True,
                cache_size_mb=setting[0], mmap_size_mb=setting[1],
            )
            stores[("apsw", setting, path)] = RawGet(path, setting[0], setting[1])
    try:
        for (_, _, path), store in stores.items():  # warm: every page read once
            time_gets(store, picks[path])
        best: dict[tuple[str, tuple[float, ...], Path], float] = {}
        for _ in range(args.rounds):
            for name, store in stores.items():
                took = time_gets(store, picks[name[2]])
                best[name] = min(took, best.get(name, took))
        print(f"{'impl':>8} {'cache_size_mb':>13} {'mmap_size_mb':>12} {'get 1K':>9} "
              f"{'get ' + format(args.keys, ','):>11} {'ratio':>6}")
        for impl in ("gostore", "apsw"):
            for setting in settings:
                one, many = best[(impl, setting, small)], best[(impl, setting, large)]
                print(f"{impl:>8} {setting[0]:>13g} {setting[1]:>12g} {one * 1e6:>7.2f}us "
                      f"{many * 1e6:>9.2f}us {many / one:>6.2f}")
        with gostore.Store(large, purge_interval=0, readonly=True) as store:
            times = []
            for _ in range(3):
                began = time.perf_counter()
                stats = store.stats()
                times.append(time.perf_counter() - began)
        print(f"stats() on {args.keys:,} keys: {min(times) * 1000:.0f} ms (best of 3): {stats}")
    finally:
        for store in stores.values():
            store.close()
        if own_dir and not args.keep:
            for path in where.iterdir():
                path.unlink()
            where.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
