"""Memory and quota figures, each memory figure from a fresh process (ratios, MB and ns):

* ``get_all`` of a 1M-key group against ``dict(cursor)`` over APSW rows: tracemalloc peak and
  the growth of the process's peak RSS, and the time of each;
* ``set_many`` of 1M keys against ``executemany`` over a generator: tracemalloc peak;
* a scoped ``set`` with a quota that replaces an existing key against a plain ``set``
  (in memory, best of many rounds, alternating).

    python benchmarks/bench_memory.py [--keys 1000000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import timeit

_CHILD = r"""
import gc, resource, sys, time, tracemalloc
import gostore
from gostore._core import core_of
from gostore._types import now_ms
from gostore.engine import sqlite_schema as sql
mode, n = sys.argv[1], int(sys.argv[2])
store = gostore.Store(":memory:", purge_interval=0)
data = {f"key{i:07d}": f"value-{i:07d}" for i in range(n)}
if mode in ("get_all", "dict_cursor"):
    store.set_many("g", data)
    del data
cur = core_of(store).engine._conn.cursor()
gc.collect()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
start = time.perf_counter()
if mode == "get_all":
    result = store.get_all("g")
elif mode == "dict_cursor":
    result = dict(cur.execute(sql.GROUP_ROWS, ("g", now_ms())))
elif mode == "set_many":
    store.set_many("g", data)
else:
    cur.execute(sql.BEGIN)
    cur.executemany(sql.SET, (("g", k, v, None) for k, v in data.items()))
    cur.execute(sql.COMMIT)
elapsed = time.perf_counter() - start
_, peak = tracemalloc.get_traced_memory()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
print(peak, rss * 1024, elapsed)
"""


def _child(mode: str, keys: int) -> tuple[float, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(keys)], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def _scoped_set() -> tuple[float, float]:
    import gostore
    from gostore import QuotaConfig

    store = gostore.Store(":memory:", purge_interval=0)
    scoped = store.scoped("ns", quota=QuotaConfig(max_keys=1_000_000, max_bytes=10**9))
    for i in range(1000):
        scoped.set("g", f"k{i}", "value")
        store.set("h", f"k{i}", "value")
    plain, checked = store.set, scoped.set
    best = [1e9, 1e9]
    for _ in range(30):
        best[0] = min(best[0], timeit.timeit(lambda: plain("h", "k5", "value"), number=5000))
        best[1] = min(best[1], timeit.timeit(lambda: checked("g", "k5", "value"), number=5000))
    store.close()
    return best[0] / 5000 * 1e9, best[1] / 5000 * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    n = parser.parse_args().keys
    ours, theirs = _child("get_all", n), _child("dict_cursor", n)
    print(
        f"get_all {n:,} keys: tracemalloc peak {ours[0] / 1e6:.1f} MB vs dict(cursor) "
        f"{theirs[0] / 1e6:.1f} MB ({ours[0] / theirs[0]:.2f}x); peak RSS growth "
        f"{ours[1] / 1e6:.1f} vs {theirs[1] / 1e6:.1f} MB ({ours[1] / theirs[1]:.2f}x); "
        f"time {ours[2] * 1e3:.0f} vs {theirs[2] * 1e3:.0f} ms ({ours[2] / theirs[2]:.2f}x)"
    )
    ours, theirs = _child("set_many", n), _child("executemany", n)
    print(
        f"set_many {n:,} keys: tracemalloc peak +{ours[0] / 1e6:.1f} MB vs executemany "
        f"+{theirs[0] / 1e6:.1f} MB; time {ours[2] / theirs[2]:.2f}x"
    )
    plain, checked = _scoped_set()
    print(
        f"scoped set with quota, replacing a key: {checked:.0f} ns vs set {plain:.0f} ns "
        f"({checked / plain:.2f}x)"
    )


if __name__ == "__main__":
    main()
