"""``gostore bench --db postgresql://...``: gostore on PostgreSQL against raw psycopg.

The raw side runs the engine's own SQL (``gostore.engine.postgres_sql``) on one connection with
server-side prepared statements and binary results, and turns rows into ``str`` as gostore
must, so a ratio is the cost of the facade and the connection handling, not of a different
query. Rows are written under groups starting with ``gostore-bench:`` in the URL's ``entries``
table, and removed at the end.

Rows: Get and Set (one key a call), SetMany (10,000 keys in one call, compared per key with
10,000 single sets), GetAll (a group of 10,000 keys) and Get from 8 threads against 1 thread
(throughput). Each figure is the median of ``--rounds`` timed rounds.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import threading
import time
from collections.abc import Callable

import gostore

__all__ = ("run",)

PREFIX = "gostore-bench:"
GROUP = PREFIX + "g"
BULK = 10_000
THREADS = 8


def _pair(
    ours: Callable[[int], None], theirs: Callable[[int], None], n: int, rounds: int
) -> tuple[float, float]:
    """Median ns per op of ``ours(n)`` and ``theirs(n)`` over ``rounds`` rounds each, after a
    warm-up round; their rounds alternate, so a server busy for a moment (autovacuum after a
    bulk write, a checkpoint) costs both sides alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for loop in (ours, theirs):
        loop(max(1, n // 5))
    for _ in range(rounds):
        for side, loop in enumerate((ours, theirs)):
            started = time.perf_counter_ns()
            loop(n)
            times[side].append((time.perf_counter_ns() - started) / n)
    return statistics.median(times[0]), statistics.median(times[1])


def _threads_ns(
    get: Callable[[int], None], counts: tuple[int, int], n: int, rounds: int
) -> tuple[float, float]:
    """Median wall-clock ns per op with ``counts[0]`` threads and with ``counts[1]`` threads
    each running ``get(n)`` at once; rounds alternate, as in :func:`_pair`."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for side, threads in enumerate(counts):
            barrier = threading.Barrier(threads + 1)

            def work(barrier: threading.Barrier) -> None:
                barrier.wait()
                get(n)

            pool = [threading.Thread(target=work, args=(barrier,)) for _ in range(threads)]
            for thread in pool:
                thread.start()
            barrier.wait()
            started = time.perf_counter_ns()
            for thread in pool:
                thread.join()
            times[side].append((time.perf_counter_ns() - started) / (n * threads))
    return statistics.median(times[0]), statistics.median(times[1])


def run(url: str, *, rounds: int = 5, quick: bool = False, log: Callable[[str], None]) -> int:
    """Measure, print the Markdown table on stdout; 0 when every target was met, else 1."""
    import psycopg

    from ..engine import postgres_sql as sql

    n = 200 if quick else 2_000
    bulk_rounds = 1 if quick else rounds
    keys = [f"k{i:05d}" for i in range(BULK)]
    small = keys[:1000]
    value = "v" * 64
    store = gostore.Store(url, purge_interval=0)
    raw = psycopg.connect(url, autocommit=True, prepare_threshold=0)
    cur = raw.cursor()
    rows: list[tuple[str, float, float, str, bool | None]] = []
    try:
        store.delete_prefix(PREFIX)
        g = GROUP.encode()
        mapping = dict.fromkeys(keys, value)
        store.set_many(GROUP, mapping)
        encoded = [k.encode() for k in small]

        def store_get(count: int) -> None:
            get = store.get
            for i in range(count):
                get(GROUP, small[i % 1000])

        def raw_get(count: int) -> None:
            for i in range(count):
                cur.execute(sql.GET, (g, encoded[i % 1000]), binary=True)
                row = cur.fetchone()
                assert row is not None
                row[0].decode()

        log("PostgreSQL: Get")
        ours, theirs = _pair(store_get, raw_get, n, rounds)
        rows.append(("Get", ours, theirs, "<= 1.2x raw", ours <= 1.2 * theirs))

        # Writes create new keys (inserts) on both sides, single or many, so SetMany and Set
        # compare the same work.
        fresh = itertools.count()
        payload = value.encode()

        def store_set(count: int) -> None:
            put = store.set
            for _ in range(count):
                put(GROUP, f"s{next(fresh)}", value)

        def raw_set(count: int) -> None:
            for _ in range(count):
                cur.execute(sql.SET, (g, f"s{next(fresh)}".encode(), payload, None), binary=True)

        log("PostgreSQL: Set")
        single_set, raw_single = _pair(store_set, raw_set, n, rounds)
        rows.append(("Set", single_set, raw_single, "<= 1.2x raw", single_set <= 1.2 * raw_single))

        def store_set_many(count: int) -> None:
            for _ in range(count):
                batch = next(fresh)
                store.set_many(GROUP, {f"m{batch}-{k}": value for k in keys})

        def raw_set_many(count: int) -> None:
            groups = [g] * BULK
            values = [payload] * BULK
            expiries: list[int | None] = [None] * BULK
            for _ in range(count):
                batch = next(fresh)
                names = [f"m{batch}-{k}".encode() for k in keys]
                with raw.transaction():
                    cur.execute(sql.SET_MANY, (groups, names, values, expiries))

        log("PostgreSQL: SetMany (10,000 keys)")
        many, raw_many = _pair(store_set_many, raw_set_many, 1, bulk_rounds)
        many, raw_many = many / BULK, raw_many / BULK
        rows.append(("SetMany, per key", many, raw_many, "", None))
        rows.append(
            ("SetMany vs Set, per key", many, single_set, ">= 20x faster", single_set >= 20 * many)
        )
        store.delete_group(GROUP)
        store.set_many(GROUP, mapping)

        def store_get_all(count: int) -> None:
            for _ in range(count):
                store.get_all(GROUP)

        def raw_get_all(count: int) -> None:
            for _ in range(count):
                cur.execute(sql.ENTRIES, (g, 0), binary=True)
                found = {k.decode(): v.decode() for k, v in cur.fetchall()}
                assert len(found) == BULK

        log("PostgreSQL: GetAll (10,000 keys)")
        ours, theirs = _pair(store_get_all, raw_get_all, 3 if quick else 10, rounds)
        rows.append(("GetAll (10,000 keys)", ours, theirs, "<= 1.3x raw", ours <= 1.3 * theirs))

        log(f"PostgreSQL: Get, {THREADS} threads vs 1")
        eight, one = _threads_ns(store_get, (THREADS, 1), n, rounds)
        speedup = one / eight
        rows.append(
            (f"Get, {THREADS} threads vs 1 (per op)", eight, one, ">= 3x throughput", speedup >= 3)
        )
    finally:
        try:
            store.delete_prefix(PREFIX)
        finally:
            store.close()
            raw.close()
    print(_table(url, rows))
    return 0 if all(met is not False for *_, met in rows) else 1


def _table(url: str, rows: list[tuple[str, float, float, str, bool | None]]) -> str:
    lines = [
        f"gostore {gostore.__version__} on PostgreSQL ({'compiled' if gostore.SPEEDUPS else 'pure'}"
        f" mode), Python {sys.version.split()[0]}",
        "",
        "| workload | gostore ns/op | compared with ns/op | ratio | target | met |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for name, ours, theirs, goal, met in rows:
        # the threads row compares throughput: how many times more gets per second
        ratio = theirs / ours if "threads" in name else ours / theirs
        shown = "" if met is None else ("yes" if met else "NO")
        lines.append(f"| {name} | {ours:,.0f} | {theirs:,.0f} | {ratio:.2f}x | {goal} | {shown} |")
    lines.append("")
    lines.append(
        "compared with: raw psycopg running the same SQL on one connection, except "
        "'SetMany vs Set' (gostore's single Set, ratio < 1 is faster) and 'threads' (gostore "
        "with 1 thread; the ratio is the throughput gained)."
    )
    return "\n".join(lines)
