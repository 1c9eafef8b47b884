"""The comparison benchmark's workloads: what is measured.

The workloads here are shared by ``benchmarks/`` (pytest-benchmark) and the runner
``gostore.bench`` (``gostore bench`` / ``python -m gostore.bench``), so both measure the same
thing. They mirror the Go harness in ``benchmarks/go/main.go`` exactly: the same names, the key
set ``"key-%d"``, group ``"bench"``, value ``"value"``, loops that restart at key 0 on every
timed run, Delete timed in batches of 1,000 after an untimed fill, SetMany_FileBacked as one
10,000-key batch, Get_1M probing ``(i*7919) % 1_000_000``, and the file-backed writes' changing
values (below). A workload is built for one implementation:

* ``gostore``: a gostore Store in whichever mode this process runs (compiled or pure);
* ``apsw``: raw APSW running the very SQL constants gostore runs (``fixtures.sql``) through one
  reused cursor, no facade; single-row reads use ``.fetchall()`` as gostore does, because a
  ``fetchone()`` leaves the statement un-reset and so holds a read snapshot open on a file;
* ``dict_cursor``: for the GetAll rows, ``dict(cursor.execute(GROUP_ROWS, ...))``, the
  simplest way to build the dict straight from APSW rows.

The rows only gostore runs (watchers, quotas, the accelerated paths) are in ``gostore_only.py``;
this module's registry (``WORKLOADS``, ``cases``) lists both.

NOTE: every file-backed op really writes. Rewriting a value a key already holds dirties no
page, so the commit would need no fsync and Set_FileBacked would measure statement overhead
instead of durability (go-store's own BenchmarkSet_FileBacked is "dominated by fsync"). So
Set_FileBacked's op number ``seq`` (one counter per instance, continuing across rounds) writes
``keys[seq % 10000]`` with ``FILE_VALUES[(seq // 10000) % 2]``, and SetMany_FileBacked's batch
number ``b`` writes every key with ``FILE_VALUES[b % 2]``; both values have the same length, so
a row is overwritten in place but its bytes change (see benchmarks/go/README.md). The in-memory
Set still cycles ``"value"``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence

from . import gostore_only
from .fixtures import (
    APSW,
    DICT_CURSOR,
    FILE_VALUES,
    GOSTORE,
    GROUP,
    IMPLS,
    LEVELS,
    TEMPLATE,
    VALUE,
    Config,
    Fixture,
    Instance,
    Workload,
    cycle,
    decode_blobs,
    keys,
    now_ms,
    sql,
)

# The vocabulary of fixtures.py is re-exported: benchmarks/ and the runner import it from here.
__all__ = (
    "APSW",
    "DICT_CURSOR",
    "DURABILITY",
    "GOSTORE",
    "IMPLS",
    "LEVELS",
    "WORKLOADS",
    "Config",
    "Instance",
    "Workload",
    "cases",
)


# -- the go-store workloads -----------------------------------------------------------------
def _set_workload(file: bool) -> Callable[[str, Config], Instance]:
    def make(impl: str, cfg: Config) -> Instance:
        fx = Fixture(impl, cfg, file=file)
        names = keys(10_000)
        if file:
            return Instance(_set_file_loop(fx, names), fx.close)
        if fx.store is not None:
            put = fx.store.set

            def loop(n: int) -> None:
                for k in cycle(names, n):
                    put(GROUP, k, VALUE)
        else:
            ex, q = fx.cur.execute, sql.SET

            def loop(n: int) -> None:
                for k in cycle(names, n):
                    ex(q, (GROUP, k, VALUE, None))

        return Instance(loop, fx.close)

    return make


def _set_file_loop(fx: Fixture, names: Sequence[str]) -> Callable[[int], None]:
    # Op number seq writes names[seq % 10000] with FILE_VALUES[(seq // 10000) % 2], seq
    # counting on across calls (rounds), so every op changes the row and its commit writes.
    seq = 0
    size, vals = len(names), FILE_VALUES
    if fx.store is not None:
        put = fx.store.set

        def loop(n: int) -> None:
            nonlocal seq
            for i in range(seq, seq + n):
                put(GROUP, names[i % size], vals[(i // size) % 2])
            seq += n
    else:
        ex, q = fx.cur.execute, sql.SET

        def loop(n: int) -> None:
            nonlocal seq
            for i in range(seq, seq + n):
                ex(q, (GROUP, names[i % size], vals[(i // size) % 2], None))
            seq += n

    return loop


def _get(impl: str, cfg: Config) -> Instance:
    fx = Fixture(impl, cfg)
    names = keys(1_000)
    fx.fill(names)
    return Instance(_get_loop(fx, names), fx.close)


def _get_loop(fx: Fixture, probes: Sequence[str]) -> Callable[[int], None]:
    if fx.store is not None:
        get = fx.store.get

        def loop(n: int) -> None:
            for k in cycle(probes, n):
                get(GROUP, k)
    else:
        ex, q = fx.cur.execute, sql.GET

        # The fastest correct raw read: fetchone() on an in-memory database (nothing else can
        # be held back by the unfinished statement), as gostore does there.
        def loop(n: int) -> None:
            for k in cycle(probes, n):
                ex(q, (GROUP, k)).fetchone()

    return loop


_PROBES_1M: list[str] = []


def _get_1m(impl: str, cfg: Config) -> Instance:
    fx = Fixture(impl, cfg)
    names = keys(1_000_000)
    fx.fill(names)
    if not _PROBES_1M:
        # Go probes keys[(i*7919) % 1_000_000]; the sequence repeats every 1,000,000 ops.
        _PROBES_1M.extend(names[(i * 7919) % 1_000_000] for i in range(1_000_000))
    return Instance(_get_loop(fx, _PROBES_1M), fx.close)


def _get_all_workload(size: int) -> Callable[[str, Config], Instance]:
    def make(impl: str, cfg: Config) -> Instance:
        fx = Fixture(impl, cfg)
        fx.fill(keys(size))
        read: Callable[[], dict[str, str]]
        if fx.store is not None:
            store = fx.store

            def read() -> dict[str, str]:
                return store.get_all(GROUP)
        elif impl == APSW:
            ex, q = fx.cur.execute, sql.GROUP_BLOB

            def read() -> dict[str, str]:
                return decode_blobs(*ex(q, (GROUP, now_ms())).fetchall()[0])
        else:
            ex, q = fx.cur.execute, sql.GROUP_ROWS

            def read() -> dict[str, str]:
                return dict(ex(q, (GROUP, now_ms())))

        if len(read()) != size:
            raise AssertionError(f"GetAll check failed for {impl}")

        def loop(n: int) -> None:
            for _ in range(n):
                read()

        return Instance(loop, fx.close)

    return make


def _set_get_parallel(impl: str, cfg: Config) -> Instance:
    fx = Fixture(impl, cfg)
    names = keys(10_000)
    workers = 4

    def work(lo: int, hi: int) -> None:
        if fx.store is not None:
            put, get = fx.store.set, fx.store.get
            for j in range(lo, hi):
                k = names[j % 10_000]
                put(GROUP, k, VALUE)
                get(GROUP, k)
        else:
            # One shared connection (as go-store's single pooled one), a cursor per thread.
            ex = fx.conn.cursor().execute  # type: ignore[union-attr]
            for j in range(lo, hi):
                k = names[j % 10_000]
                ex(sql.SET, (GROUP, k, VALUE, None))
                ex(sql.GET, (GROUP, k)).fetchall()

    def loop(n: int) -> None:
        threads = [
            threading.Thread(target=work, args=(n * w // workers, n * (w + 1) // workers))
            for w in range(workers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return Instance(loop, fx.close)


def _count_10k(impl: str, cfg: Config) -> Instance:
    fx = Fixture(impl, cfg)
    fx.fill(keys(10_000))
    if fx.store is not None:
        count = fx.store.count

        def loop(n: int) -> None:
            for _ in range(n):
                count(GROUP)

        if count(GROUP) != 10_000:
            raise AssertionError("Count check failed")
    else:
        ex, q = fx.cur.execute, sql.COUNT

        def loop(n: int) -> None:
            for _ in range(n):
                ex(q, (GROUP, now_ms())).fetchall()[0][0]

    return Instance(loop, fx.close)


def _delete(impl: str, cfg: Config) -> Instance:
    fx = Fixture(impl, cfg)
    names = keys(1_000)

    def prepare(n: int) -> None:
        fx.fill(names[:n])

    if fx.store is not None:
        delete = fx.store.delete

        def loop(n: int) -> None:
            for k in names[:n]:
                delete(GROUP, k)
    else:
        ex, q = fx.cur.execute, sql.DELETE

        def loop(n: int) -> None:
            for k in names[:n]:
                ex(q, (GROUP, k))

    return Instance(loop, fx.close, prepare, batch=1_000)


def _set_with_ttl(impl: str, cfg: Config) -> Instance:
    fx = Fixture(impl, cfg)
    names = keys(10_000)
    if fx.store is not None:
        put = fx.store.set_with_ttl

        def loop(n: int) -> None:
            for k in cycle(names, n):
                put(GROUP, k, VALUE, 3600.0)  # time.Hour
    else:
        ex, q = fx.cur.execute, sql.SET

        def loop(n: int) -> None:
            for k in cycle(names, n):
                ex(q, (GROUP, k, VALUE, now_ms() + 3_600_000))

    return Instance(loop, fx.close)


def _render(impl: str, cfg: Config) -> Instance:
    fx = Fixture(impl, cfg)
    for i in range(50):
        fx.fill([f"k{i}"], value=f"v{i}")
    render: Callable[[], str]
    if fx.store is not None:
        store = fx.store

        def render() -> str:
            return store.render(TEMPLATE, GROUP)
    else:
        import jinja2.sandbox  # lazily, as gostore does

        # The environment gostore uses, compiled once (gostore caches compiled templates too).
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(
            autoescape=False, keep_trailing_newline=True
        )
        template = env.from_string(TEMPLATE)
        ex, q = fx.cur.execute, sql.GROUP_BLOB

        def render() -> str:
            return template.render(decode_blobs(*ex(q, (GROUP, now_ms())).fetchall()[0]))

    if render() != "v1-v2-v3":
        raise AssertionError(f"Render check failed for {impl}")

    def loop(n: int) -> None:
        for _ in range(n):
            render()

    return Instance(loop, fx.close)


def _set_many_file(impl: str, cfg: Config) -> Instance:
    fx = Fixture(impl, cfg, file=True)
    names = keys(10_000)
    # Batch number b (counting on across calls) writes every key with FILE_VALUES[b % 2], so
    # every batch really writes; the two payloads are built up front, untimed.
    batches = itertools.cycle(range(2))
    if fx.store is not None:
        set_many = fx.store.set_many
        mappings = [dict.fromkeys(names, v) for v in FILE_VALUES]

        def loop(n: int) -> None:
            for _ in range(n):
                set_many(GROUP, mappings[next(batches)])
    else:
        # go-store has no bulk API: Set's statement inside one transaction.
        cur = fx.cur
        rows = [[(GROUP, k, v, None) for k in names] for v in FILE_VALUES]

        def loop(n: int) -> None:
            for _ in range(n):
                cur.execute(sql.BEGIN)
                cur.executemany(sql.SET, rows[next(batches)])
                cur.execute(sql.COMMIT)

    return Instance(loop, fx.close)


# -- the registry ---------------------------------------------------------------------------
BOTH = (GOSTORE, APSW)
GETALL = (GOSTORE, APSW, DICT_CURSOR)


def _workloads() -> list[Workload]:
    w = [
        Workload("Set", "op", 20, BOTH, _set_workload(False)),
        Workload("Get", "op", 20, BOTH, _get),
        Workload("GetAll", "op (10,000 keys)", 2, GETALL, _get_all_workload(10_000), pytest_ops=1),
        Workload("Set_FileBacked", "op", 20, BOTH, _set_workload(True)),
    ]
    for size, quick in ((10, 20), (100, 20), (1_000, 5), (10_000, 2)):
        w.append(
            Workload(
                f"GetAll_VaryingSize/{size}",
                "op",
                quick,
                GETALL,
                _get_all_workload(size),
                pytest_ops=max(1, 1_000 // size),
            )
        )
    w += [
        Workload(
            "SetGet_Parallel",
            "set+get pair (4 threads, wall time / pairs)",
            20,
            BOTH,
            _set_get_parallel,
        ),
        Workload("Count_10K", "op", 20, BOTH, _count_10k, pytest_ops=10),
        Workload(
            "Delete", "op (timed in batches of 1000 after an untimed fill)", 20, BOTH, _delete
        ),
        Workload("SetWithTTL", "op", 20, BOTH, _set_with_ttl),
        Workload("Render", "op", 20, BOTH, _render, pytest_ops=100),
        Workload("SetMany_FileBacked", "batch of 10000", 1, BOTH, _set_many_file, pytest_ops=1),
        Workload("Get_1M", "op", 20, BOTH, _get_1m),
        # watchers and quotas
        Workload(
            "Set_10KWatchers",
            "op (10,000 non-matching watchers)",
            20,
            (GOSTORE,),
            gostore_only.set_10k_watchers,
            go=False,
        ),
        Workload(
            "Set_NewKey",
            "op (new key, 100,000 keys in a namespace)",
            20,
            BOTH,
            gostore_only.new_key_workload(False),
            go=False,
        ),
        Workload(
            "ScopedSet_100K",
            "op (new key, 100,000 keys, quota)",
            20,
            (GOSTORE,),
            gostore_only.new_key_workload(True),
            go=False,
        ),
        # accelerated paths
        Workload(
            "decode_group_10K",
            "call (10,000 entries)",
            2,
            (GOSTORE,),
            gostore_only.decode_group,
            go=False,
            pytest_ops=1,
        ),
        Workload(
            "decode_pairs_10K",
            "call (10,000 entries)",
            2,
            (GOSTORE,),
            gostore_only.decode_pairs,
            go=False,
            pytest_ops=1,
        ),
        Workload(
            "WatcherIndex_match",
            "call (10,004 watchers, 4 match)",
            20,
            (GOSTORE,),
            gostore_only.watcher_match,
            go=False,
        ),
        Workload(
            "Watcher_dispatch",
            "event (10,004 watchers, 4 match)",
            20,
            (GOSTORE,),
            gostore_only.watcher_dispatch,
            go=False,
        ),
    ]
    return w


WORKLOADS: dict[str, Workload] = {w.name: w for w in _workloads()}
# Rows that are run again at each synchronous level.
DURABILITY = ("Set_FileBacked", "SetMany_FileBacked")


def cases(main_level: str) -> dict[str, Workload]:
    """Every row of a run: the workloads at ``main_level`` plus the durability rows.

    A durability row at a level other than ``main_level`` is named ``"<name>[<level>]"``.
    """
    rows = dict(WORKLOADS)
    for level in LEVELS:
        if level == main_level:
            continue
        for name in DURABILITY:
            base = rows[name]
            rows[f"{name}[{level}]"] = Workload(
                f"{name}[{level}]",
                base.per,
                base.quick,
                base.impls,
                base.make,
                go=base.go,
                sync=level,
                pytest_ops=base.pytest_ops,
            )
    return rows
