"""The comparison benchmark (SPEC section 9): gostore against raw APSW and go-store.

The workloads here are shared by ``benchmarks/`` (pytest-benchmark) and ``gostore bench`` /
``python -m gostore._bench``, so both measure the same thing. They mirror the Go harness in
``benchmarks/go/main.go`` exactly: the same names, the key set ``"key-%d"``, group ``"bench"``,
value ``"value"``, loops that restart at key 0 on every timed run, Delete timed in batches of
1,000 after an untimed fill, SetMany_FileBacked as one 10,000-key batch, Get_1M probing
``(i*7919) % 1_000_000``, and the file-backed writes' changing values (below). The columns of
one run:

* ``compiled``: gostore with ``gostore._speedups`` (this process, when it is built);
* ``pure``: gostore with ``GOSTORE_PURE=1``, in a subprocess, because the mode is chosen at
  import;
* ``apsw``: raw APSW running the very SQL constants of ``gostore._schema`` through one reused
  cursor, no facade; single-row reads use ``.fetchall()`` as gostore does, because a
  ``fetchone()`` leaves the statement un-reset and so holds a read snapshot open on a file;
* ``dict_cursor``: for the GetAll rows, ``dict(cursor.execute(GROUP_ROWS, ...))``, the
  simplest way to build the dict straight from APSW rows;
* ``go``: the go-store-equivalent Go harness (skipped with a message when ``go`` is missing).

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

import argparse
import gc
import itertools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw

from . import _accel
from . import _schema as sql
from ._types import KeyValue
from .events import Event, EventHub, EventType
from .scope import QuotaConfig
from .store import Store

__all__ = ("WORKLOADS", "Instance", "Workload", "main")

GROUP = "bench"
VALUE = "value"
# Alternated by the file-backed writes so that every commit changes a page (module docstring).
FILE_VALUES = ("value-a", "value-b")
TEMPLATE = "{{ k1 }}-{{ k2 }}-{{ k3 }}"  # go-store's "{{ .k1 }}-{{ .k2 }}-{{ .k3 }}"
SEPARATOR = b"\xff"
LEVELS = ("full", "normal", "off")

# Columns of the report.
COMPILED, PURE, APSW, DICT_CURSOR, GO = "compiled", "pure", "apsw", "dict_cursor", "go"
COLUMNS = (COMPILED, PURE, APSW, DICT_CURSOR, GO)
# Implementations a workload can be built for; "gostore" is whichever mode this process runs.
GOSTORE = "gostore"
IMPLS = (GOSTORE, APSW, DICT_CURSOR)

GO_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "go"


# -- fixtures -------------------------------------------------------------------------------
_KEYS: list[str] = []


def keys(n: int) -> list[str]:
    """``["key-0", ..., "key-<n-1>"]``, precomputed so string formatting is not measured."""
    if len(_KEYS) < n:
        _KEYS.extend(f"key-{i}" for i in range(len(_KEYS), n))
    return _KEYS[:n]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Config:
    synchronous: str = "full"


@dataclass
class Instance:
    """One workload built for one implementation.

    ``loop(n)`` runs ``n`` operations, all timed. When ``batch`` is set, the runner calls
    ``prepare(b)`` (untimed) before each ``loop(b)`` with ``b <= batch`` (Delete's fill).
    """

    loop: Callable[[int], object]
    close: Callable[[], None]
    prepare: Callable[[int], object] | None = None
    batch: int = 0


@dataclass(frozen=True)
class Workload:
    name: str
    per: str
    quick: int  # iteration count under --quick (the Go harness's count)
    impls: tuple[str, ...]
    make: Callable[[str, Config], Instance]
    section: str = "go-store"
    go: bool = True  # the Go harness runs it too
    sync: str | None = None  # a fixed synchronous level (durability rows)
    pytest_ops: int = 1000  # operations per timed call under pytest-benchmark


class _Fixture:
    """A gostore Store or a raw APSW connection on ":memory:" or in a temporary directory."""

    def __init__(self, impl: str, cfg: Config, *, file: bool = False) -> None:
        self.impl = impl
        self._dir = tempfile.mkdtemp(prefix="gostore-bench-") if file else None
        path = os.path.join(self._dir, "bench.db") if self._dir else sql.MEMORY
        self.store: Store | None = None
        self.conn: apsw.Connection | None = None
        if impl == GOSTORE:
            # No purge thread: the Go harness has no purge goroutine either.
            self.store = Store(path, purge_interval=0, synchronous=cfg.synchronous)
        else:
            # gostore's own connect(): the same pragmas and schema, none of the facade.
            self.conn = sql.connect(path, 5.0, cfg.synchronous)
            self.cur = self.conn.cursor()

    def fill(self, names: Sequence[str], group: str = GROUP, value: str = VALUE) -> None:
        """Insert ``names`` with ``value`` in transactions of 10,000 rows (setup, untimed)."""
        for start in range(0, len(names), 10_000):
            chunk = names[start : start + 10_000]
            if self.store is not None:
                self.store.set_many(group, dict.fromkeys(chunk, value))
            else:
                self.cur.execute(sql.BEGIN)
                self.cur.executemany(sql.SET, [(group, k, value, None) for k in chunk])
                self.cur.execute(sql.COMMIT)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        if self.conn is not None:
            self.conn.close()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)


def _cycle(items: Sequence[str], n: int) -> Iterable[str]:
    # items[i % len(items)] for i in range(n), without per-op index arithmetic
    return itertools.islice(itertools.cycle(items), n)


def _decode(count: Any, kb: Any, vb: Any) -> dict[str, str]:
    # The plainest decode of GROUP_BLOB's two blobs (what the pure twin does, unchecked).
    if not count or kb is None or vb is None:
        return {}
    ks, vs = kb.split(SEPARATOR), vb.split(SEPARATOR)
    return dict(zip(map(bytes.decode, ks), map(bytes.decode, vs), strict=True))


# -- the go-store workloads -----------------------------------------------------------------
def _set_workload(file: bool) -> Callable[[str, Config], Instance]:
    def make(impl: str, cfg: Config) -> Instance:
        fx = _Fixture(impl, cfg, file=file)
        names = keys(10_000)
        if file:
            return Instance(_set_file_loop(fx, names), fx.close)
        if fx.store is not None:
            put = fx.store.set

            def loop(n: int) -> None:
                for k in _cycle(names, n):
                    put(GROUP, k, VALUE)
        else:
            ex, q = fx.cur.execute, sql.SET

            def loop(n: int) -> None:
                for k in _cycle(names, n):
                    ex(q, (GROUP, k, VALUE, None))

        return Instance(loop, fx.close)

    return make


def _set_file_loop(fx: _Fixture, names: Sequence[str]) -> Callable[[int], None]:
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
    fx = _Fixture(impl, cfg)
    names = keys(1_000)
    fx.fill(names)
    return Instance(_get_loop(fx, names), fx.close)


def _get_loop(fx: _Fixture, probes: Sequence[str]) -> Callable[[int], None]:
    if fx.store is not None:
        get = fx.store.get

        def loop(n: int) -> None:
            for k in _cycle(probes, n):
                get(GROUP, k)
    else:
        ex, q = fx.cur.execute, sql.GET

        # The fastest correct raw read: fetchone() on an in-memory database (nothing else can
        # be held back by the unfinished statement), as gostore does there.
        def loop(n: int) -> None:
            for k in _cycle(probes, n):
                ex(q, (GROUP, k)).fetchone()

    return loop


_PROBES_1M: list[str] = []


def _get_1m(impl: str, cfg: Config) -> Instance:
    fx = _Fixture(impl, cfg)
    names = keys(1_000_000)
    fx.fill(names)
    if not _PROBES_1M:
        # Go probes keys[(i*7919) % 1_000_000]; the sequence repeats every 1,000,000 ops.
        _PROBES_1M.extend(names[(i * 7919) % 1_000_000] for i in range(1_000_000))
    return Instance(_get_loop(fx, _PROBES_1M), fx.close)


def _get_all_workload(size: int) -> Callable[[str, Config], Instance]:
    def make(impl: str, cfg: Config) -> Instance:
        fx = _Fixture(impl, cfg)
        fx.fill(keys(size))
        read: Callable[[], dict[str, str]]
        if fx.store is not None:
            store = fx.store

            def read() -> dict[str, str]:
                return store.get_all(GROUP)
        elif impl == APSW:
            ex, q = fx.cur.execute, sql.GROUP_BLOB

            def read() -> dict[str, str]:
                return _decode(*ex(q, (GROUP, _now_ms())).fetchall()[0])
        else:
            ex, q = fx.cur.execute, sql.GROUP_ROWS

            def read() -> dict[str, str]:
                return dict(ex(q, (GROUP, _now_ms())))

        if len(read()) != size:
            raise AssertionError(f"GetAll check failed for {impl}")

        def loop(n: int) -> None:
            for _ in range(n):
                read()

        return Instance(loop, fx.close)

    return make


def _set_get_parallel(impl: str, cfg: Config) -> Instance:
    fx = _Fixture(impl, cfg)
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
    fx = _Fixture(impl, cfg)
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
                ex(q, (GROUP, _now_ms())).fetchall()[0][0]

    return Instance(loop, fx.close)


def _delete(impl: str, cfg: Config) -> Instance:
    fx = _Fixture(impl, cfg)
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
    fx = _Fixture(impl, cfg)
    names = keys(10_000)
    if fx.store is not None:
        put = fx.store.set_with_ttl

        def loop(n: int) -> None:
            for k in _cycle(names, n):
                put(GROUP, k, VALUE, 3600.0)  # time.Hour
    else:
        ex, q = fx.cur.execute, sql.SET

        def loop(n: int) -> None:
            for k in _cycle(names, n):
                ex(q, (GROUP, k, VALUE, _now_ms() + 3_600_000))

    return Instance(loop, fx.close)


def _render(impl: str, cfg: Config) -> Instance:
    fx = _Fixture(impl, cfg)
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
            return template.render(_decode(*ex(q, (GROUP, _now_ms())).fetchall()[0]))

    if render() != "v1-v2-v3":
        raise AssertionError(f"Render check failed for {impl}")

    def loop(n: int) -> None:
        for _ in range(n):
            render()

    return Instance(loop, fx.close)


def _set_many_file(impl: str, cfg: Config) -> Instance:
    fx = _Fixture(impl, cfg, file=True)
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


# -- issue 3: watchers and quotas -----------------------------------------------------------
def _set_10k_watchers(impl: str, cfg: Config) -> Instance:
    """Set with 10,000 registered watchers, none matching (compare with Set)."""
    fx = _Fixture(impl, cfg)
    assert fx.store is not None
    store, names = fx.store, keys(10_000)
    # Same group, other keys, and other groups with "*": buckets next to the ones probed.
    for i in range(5_000):
        store.watch(GROUP, f"other-{i}")
        store.watch(f"other-{i}", "*")
    put = store.set

    def loop(n: int) -> None:
        for k in _cycle(names, n):
            put(GROUP, k, VALUE)

    return Instance(loop, fx.close)


_NAMESPACE = "tenant"
_NAMESPACE_KEYS = 100_000


def _new_key_workload(scoped: bool) -> Callable[[str, Config], Instance]:
    """set() of a new key each op, next to 100,000 live keys in a namespace with a quota."""

    def make(impl: str, cfg: Config) -> Instance:
        fx = _Fixture(impl, cfg)
        fx.fill(keys(_NAMESPACE_KEYS), group=f"{_NAMESPACE}:{GROUP}")
        counter = itertools.count()
        if fx.store is not None:
            if scoped:
                view = fx.store.scoped(_NAMESPACE, QuotaConfig(max_keys=10**9))
                view.set(GROUP, "warm-up", VALUE)  # builds the quota ledger, untimed
                put = view.set
            else:
                put = fx.store.set

            def loop(n: int) -> None:
                for c in itertools.islice(counter, n):
                    put(GROUP, f"new-{c}", VALUE)
        else:
            ex, q = fx.cur.execute, sql.SET

            def loop(n: int) -> None:
                for c in itertools.islice(counter, n):
                    ex(q, (GROUP, f"new-{c}", VALUE, None))

        return Instance(loop, fx.close)

    return make


# -- the accelerated paths (_speedups vs _speedups_py, through _accel) ----------------------
def _blob_10k() -> tuple[int, bytes, bytes]:
    names = keys(10_000)
    return (
        len(names),
        SEPARATOR.join(k.encode() for k in names),
        SEPARATOR.join([b"value"] * 10_000),
    )


def _decode_group(impl: str, cfg: Config) -> Instance:
    count, kb, vb = _blob_10k()
    decode = _accel.decode_group

    def loop(n: int) -> None:
        for _ in range(n):
            decode(count, kb, vb)

    return Instance(loop, lambda: None)


def _decode_pairs(impl: str, cfg: Config) -> Instance:
    count, kb, vb = _blob_10k()
    decode = _accel.decode_pairs

    def loop(n: int) -> None:
        for _ in range(n):
            decode(count, kb, vb, KeyValue)

    return Instance(loop, lambda: None)


def _watcher_hub() -> EventHub:
    """10,000 non-matching watchers, plus one per bucket form matching ("bench", "key-1")."""
    hub = EventHub()
    for i in range(5_000):
        hub.watch(GROUP, f"other-{i}", 16)
        hub.watch(f"other-{i}", "*", 16)
    for group, key in ((GROUP, "key-1"), (GROUP, "*"), ("*", "key-1"), ("*", "*")):
        hub.watch(group, key, 16)
    return hub


def _watcher_match(impl: str, cfg: Config) -> Instance:
    hub = _watcher_hub()
    match = hub._index.match

    def loop(n: int) -> None:
        for _ in range(n):
            match(GROUP, "key-1", False)

    return Instance(loop, hub.close_all)


def _watcher_dispatch(impl: str, cfg: Config) -> Instance:
    # NOTE: the buffers fill after 16 events; from then on each offer counts a drop, the
    # steady state of a watcher nobody reads.
    hub = _watcher_hub()
    events = [Event(EventType.SET, GROUP, "key-1", VALUE, time.time())]
    dispatch = hub.to_watchers

    def loop(n: int) -> None:
        for _ in range(n):
            dispatch(events)

    return Instance(loop, hub.close_all)


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
        # issue 3
        Workload(
            "Set_10KWatchers",
            "op (10,000 non-matching watchers)",
            20,
            (GOSTORE,),
            _set_10k_watchers,
            section="issue 3",
            go=False,
        ),
        Workload(
            "Set_NewKey",
            "op (new key, 100,000 keys in a namespace)",
            20,
            BOTH,
            _new_key_workload(False),
            section="issue 3",
            go=False,
        ),
        Workload(
            "ScopedSet_100K",
            "op (new key, 100,000 keys, quota)",
            20,
            (GOSTORE,),
            _new_key_workload(True),
            section="issue 3",
            go=False,
        ),
        # accelerated paths
        Workload(
            "decode_group_10K",
            "call (10,000 entries)",
            2,
            (GOSTORE,),
            _decode_group,
            section="accelerated",
            go=False,
            pytest_ops=1,
        ),
        Workload(
            "decode_pairs_10K",
            "call (10,000 entries)",
            2,
            (GOSTORE,),
            _decode_pairs,
            section="accelerated",
            go=False,
            pytest_ops=1,
        ),
        Workload(
            "WatcherIndex_match",
            "call (10,004 watchers, 4 match)",
            20,
            (GOSTORE,),
            _watcher_match,
            section="accelerated",
            go=False,
        ),
        Workload(
            "Watcher_dispatch",
            "event (10,004 watchers, 4 match)",
            20,
            (GOSTORE,),
            _watcher_dispatch,
            section="accelerated",
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
                section="durability",
                go=base.go,
                sync=level,
                pytest_ops=base.pytest_ops,
            )
    return rows


# -- measuring ------------------------------------------------------------------------------
@dataclass
class Result:
    ns_per_op: float
    rounds: list[float] = field(default_factory=list)
    iterations: int = 0


def _timed(inst: Instance, n: int) -> float:
    gc.collect()
    if not inst.batch:
        start = time.perf_counter()
        inst.loop(n)
        return time.perf_counter() - start
    assert inst.prepare is not None
    elapsed, done = 0.0, 0
    while done < n:
        b = min(inst.batch, n - done)
        inst.prepare(b)
        start = time.perf_counter()
        inst.loop(b)
        elapsed += time.perf_counter() - start
        done += b
    return elapsed


def _calibrate(inst: Instance, target: float) -> int:
    # As testing.B and the Go harness: grow n, predicting from the last run, <= 100x a step.
    n = 1
    while True:
        d = _timed(inst, n)
        if d >= target or n >= 1_000_000_000:
            return n
        nxt = int(target * 1.2 * n / d) if d > 0 else 100 * n
        n = max(n + 1, min(nxt, 100 * n))


def measure(
    workload: Workload,
    impls: Sequence[str],
    cfg: Config,
    *,
    rounds: int,
    target: float,
    quick: bool,
) -> dict[str, Result]:
    """Median ns/op of ``rounds`` timed runs of ``workload``, for each of ``impls``.

    NOTE: the implementations' rounds alternate (a, b, a, b, ...), so that a burst of load on a
    shared machine hits both sides of a ratio rather than one.
    """
    level = workload.sync or cfg.synchronous
    built: dict[str, Instance] = {}
    try:
        for impl in impls:
            built[impl] = workload.make(impl, Config(level))
        counts = {
            impl: workload.quick if quick else _calibrate(inst, target)
            for impl, inst in built.items()
        }
        per_round: dict[str, list[float]] = {impl: [] for impl in built}
        for _ in range(rounds):
            for impl, inst in built.items():
                n = counts[impl]
                per_round[impl].append(round(_timed(inst, n) * 1e9 / n, 1))
    finally:
        for inst in built.values():
            inst.close()
    return {
        impl: Result(round(statistics.median(xs), 1), xs, counts[impl])
        for impl, xs in per_round.items()
    }


Results = dict[str, dict[str, Result]]


def _run_python(
    rows: dict[str, Workload],
    impls: Sequence[str],
    cfg: Config,
    *,
    rounds: int,
    target: float,
    quick: bool,
    label: str,
    log: Callable[[str], None],
) -> Results:
    results: Results = {}
    for name, workload in rows.items():
        wanted = [impl for impl in workload.impls if impl in impls]
        if not wanted:
            continue
        measured = measure(workload, wanted, cfg, rounds=rounds, target=target, quick=quick)
        for impl, res in measured.items():
            column = label if impl == GOSTORE else impl
            results.setdefault(name, {})[column] = res
            log(f"  {name:<34} {column:<11} {_fmt(res.ns_per_op):>10}/op  (n={res.iterations})")
    return results


def _run_pure(
    names: Sequence[str], args: argparse.Namespace, log: Callable[[str], None]
) -> Results:
    cmd = [
        sys.executable,
        "-m",
        "gostore._bench",
        "--worker",
        "--rounds",
        str(args.rounds),
        "--synchronous",
        args.synchronous,
        "--target",
        str(args.target),
        "--only",
        "^(" + "|".join(re.escape(n) for n in names) + ")$",
    ]
    if args.quick:
        cmd.append("--quick")
    env = dict(os.environ, GOSTORE_PURE="1")
    log("pure column: running GOSTORE_PURE=1 in a subprocess")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log(f"pure column skipped: the subprocess failed ({proc.returncode}):\n{proc.stderr}")
        return {}
    results: Results = {}
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        results.setdefault(row["name"], {})[PURE] = Result(
            row["ns_per_op"], row["rounds"], row["iterations"]
        )
        log(f"  {row['name']:<34} {PURE:<11} {_fmt(row['ns_per_op']):>10}/op")
    return results


def go_available(go_dir: Path) -> str | None:
    """Why the Go column cannot run, or None when it can."""
    if shutil.which("go") is None:
        return "`go` is not on PATH"
    if not (go_dir / "main.go").is_file():
        return f"the Go harness is not at {go_dir}"
    return None


def _run_go(
    rows: dict[str, Workload], args: argparse.Namespace, log: Callable[[str], None]
) -> tuple[Results, str]:
    go_dir = Path(args.go_dir)
    why = go_available(go_dir)
    if why:
        log(f"go-store column skipped: {why}")
        return {}, ""
    results: Results = {}
    impl = ""
    by_level: dict[str, list[str]] = {}
    for name, w in rows.items():
        if w.go:
            by_level.setdefault(w.sync or args.synchronous, []).append(name)
    for level, names in by_level.items():
        plain = [n.split("[")[0] for n in names]
        cmd = [
            "go",
            "run",
            ".",
            "-json",
            "-rounds",
            str(args.rounds),
            "-synchronous",
            level,
            "-target",
            f"{round(args.target * 1000)}ms",
            "-bench",
            "^(" + "|".join(re.escape(n) for n in plain) + ")$",
        ]
        if args.quick:
            cmd.append("-quick")
        log(f"go-store column: {' '.join(cmd)}")
        proc = subprocess.run(cmd, cwd=go_dir, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            log(
                f"go-store column skipped at synchronous={level}: exit {proc.returncode}\n"
                f"{proc.stderr.strip()}"
            )
            continue
        for line in proc.stdout.splitlines():
            row = json.loads(line)
            name = row["name"] if level == args.synchronous else f"{row['name']}[{level}]"
            impl = row.get("impl", impl)
            results.setdefault(name, {})[GO] = Result(
                row["ns_per_op"], row["rounds"], row["iterations"]
            )
            log(f"  {name:<34} {GO:<11} {_fmt(row['ns_per_op']):>10}/op")
    return results, impl


def merge(*parts: Results) -> Results:
    out: Results = {}
    for part in parts:
        for name, cols in part.items():
            out.setdefault(name, {}).update(cols)
    return out


# -- reporting ------------------------------------------------------------------------------
def _fmt(ns: float | None) -> str:
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns < scale * 100 else f"{ns / scale:.0f} {unit}"
    return f"{ns:.0f} ns"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _r(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _ns(results: Results, name: str, column: str) -> float | None:
    res = results.get(name, {}).get(column)
    return None if res is None else res.ns_per_op


def _gostore(results: Results, name: str) -> float | None:
    """gostore's default mode: compiled when measured, else pure."""
    ns = _ns(results, name, COMPILED)
    return ns if ns is not None else _ns(results, name, PURE)


@dataclass
class Target:
    what: str
    ratio: float | None
    limit: float
    at_least: bool = False  # True: ratio must be >= limit

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "n/a"
        ok = self.ratio >= self.limit if self.at_least else self.ratio <= self.limit
        return "PASS" if ok else "MISS"


_HALF = ("Get", "Set", "SetWithTTL", "Delete", "Count_10K", "GetAll")


def targets(results: Results) -> list[Target]:
    """Issue 4's targets (and issue 3's) against the measured medians."""
    out: list[Target] = []

    def gs(name: str) -> float | None:
        return _gostore(results, name)

    for name in results:
        w = WORKLOADS.get(name.split("[")[0])
        if w is not None and w.go:
            limit = 0.5 if name in _HALF else 1.0
            out.append(
                Target(
                    f"{name}: gostore / go-store", _ratio(gs(name), _ns(results, name, GO)), limit
                )
            )
    for name in ("Get", "Set"):
        out.append(
            Target(f"{name}: gostore / raw APSW", _ratio(gs(name), _ns(results, name, APSW)), 1.25)
        )
    out.append(
        Target(
            "GetAll: gostore / dict(cursor)",
            _ratio(gs("GetAll"), _ns(results, "GetAll", DICT_CURSOR)),
            0.7,
        )
    )
    for name in ("decode_group_10K", "decode_pairs_10K", "WatcherIndex_match", "Watcher_dispatch"):
        out.append(
            Target(
                f"{name}: pure / compiled (speed-up)",
                _ratio(_ns(results, name, PURE), _ns(results, name, COMPILED)),
                1.5,
                at_least=True,
            )
        )
    out.append(Target("Get_1M / Get", _ratio(gs("Get_1M"), gs("Get")), 1.5))
    many = gs("SetMany_FileBacked")
    out.append(
        Target(
            "Set_FileBacked / (SetMany_FileBacked / 10000)",
            _ratio(gs("Set_FileBacked"), many / 10_000 if many else None),
            20.0,
            at_least=True,
        )
    )
    out.append(Target("Set_10KWatchers / Set", _ratio(gs("Set_10KWatchers"), gs("Set")), 1.2))
    out.append(
        Target("ScopedSet_100K / Set_NewKey", _ratio(gs("ScopedSet_100K"), gs("Set_NewKey")), 2.0)
    )
    return out


def report(results: Results, meta: dict[str, Any]) -> str:
    """The results table, the extra ratios and the targets, as Markdown."""
    lines = [
        "| benchmark | per | compiled | pure | raw APSW | dict(cursor) | go-store-eq | "
        "gostore/go | gostore/APSW | compiled/pure |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = cases(meta.get("synchronous", "full"))
    order = [n for n in rows if n in results] + [n for n in results if n not in rows]
    for name in order:
        gs = _gostore(results, name)
        per = rows[name].per if name in rows else ""
        lines.append(
            f"| {name} | {per} | {_fmt(_ns(results, name, COMPILED))} | "
            f"{_fmt(_ns(results, name, PURE))} | {_fmt(_ns(results, name, APSW))} | "
            f"{_fmt(_ns(results, name, DICT_CURSOR))} | {_fmt(_ns(results, name, GO))} | "
            f"{_r(_ratio(gs, _ns(results, name, GO)))} | "
            f"{_r(_ratio(gs, _ns(results, name, APSW)))} | "
            f"{_r(_ratio(_ns(results, name, COMPILED), _ns(results, name, PURE)))} |"
        )
    lines += [
        "",
        "| target (gostore = compiled mode) | measured | limit | verdict |",
        "| --- | ---: | ---: | --- |",
    ]
    for t in targets(results):
        limit = f"{'>=' if t.at_least else '<='} {t.limit:g}"
        lines.append(f"| {t.what} | {_r(t.ratio)} | {limit} | {t.verdict} |")
    lines += [
        "",
        "Durability (file-backed writes at each synchronous level, gostore compiled):",
        "",
    ]
    lines += ["| benchmark | " + " | ".join(LEVELS) + " |", "| --- |" + " ---: |" * len(LEVELS)]
    main_level = meta.get("synchronous", "full")
    for base in DURABILITY:
        cells = []
        for level in LEVELS:
            name = base if level == main_level else f"{base}[{level}]"
            cells.append(_fmt(_gostore(results, name)))
        lines.append(f"| {base} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        cpu = platform.processor() or "unknown"
    go = "not found"
    if shutil.which("go"):
        proc = subprocess.run(["go", "version"], capture_output=True, text=True, check=False)
        go = proc.stdout.strip() or go
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "sqlite": apsw.sqlite_lib_version(),
        "apsw": apsw.apsw_version(),
        "go": go,
    }


def _to_json(results: Results) -> dict[str, Any]:
    return {name: {col: vars(res) for col, res in cols.items()} for name, cols in results.items()}


# -- command line ---------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gostore bench",
        description="Compare gostore (compiled and pure) with raw APSW and go-store; "
        "prints medians and ratios.",
    )
    p.add_argument("--quick", action="store_true", help="tiny fixed iteration counts, 1 round")
    p.add_argument(
        "--only", metavar="REGEX", default="", help="run the benchmarks whose name matches"
    )
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per benchmark (median)")
    p.add_argument(
        "--synchronous",
        choices=LEVELS,
        default="full",
        help="SQLite synchronous level for every side (default: full)",
    )
    p.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    p.add_argument("--no-go", action="store_true", help="skip the go-store column")
    p.add_argument("--no-pure", action="store_true", help="skip the GOSTORE_PURE=1 column")
    p.add_argument(
        "--target",
        type=float,
        default=0.1,
        help="seconds one calibrated round should take (default 0.1)",
    )
    p.add_argument("--go-dir", default=str(GO_DIR), help="the Go harness (benchmarks/go)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print the table. Returns the exit status."""
    args = _parser().parse_args(argv)
    if args.rounds < 1:
        print("gostore bench: --rounds must be >= 1", file=sys.stderr)
        return 2
    if args.quick:
        args.rounds = 1
    try:
        only = re.compile(args.only)
    except re.error as exc:
        print(f"gostore bench: invalid --only: {exc}", file=sys.stderr)
        return 2
    rows = {n: w for n, w in cases(args.synchronous).items() if only.search(n)}
    if not rows:
        print(f"gostore bench: no benchmark matches {args.only!r}", file=sys.stderr)
        return 2
    cfg = Config(args.synchronous)
    measure_args = {"rounds": args.rounds, "target": args.target, "quick": args.quick}

    if args.worker:  # the pure subprocess: gostore rows only, JSON lines on stdout
        for name, w in rows.items():
            if GOSTORE in w.impls:
                res = measure(w, [GOSTORE], cfg, **measure_args)[GOSTORE]
                print(json.dumps({"name": name, **vars(res)}), flush=True)
        return 0

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    mode = COMPILED if _accel.SPEEDUPS else PURE
    log(
        f"gostore bench: this process runs gostore in {mode} mode; "
        f"synchronous={args.synchronous}, rounds={args.rounds}{', quick' if args.quick else ''}"
    )
    started = time.perf_counter()
    own = _run_python(rows, IMPLS, cfg, label=mode, log=log, **measure_args)
    pure: Results = {}
    if mode == COMPILED and not args.no_pure:
        pure = _run_pure([n for n, w in rows.items() if GOSTORE in w.impls], args, log)
    elif mode == PURE:
        log("compiled column skipped: gostore._speedups is not in use in this process")
    go: Results = {}
    go_impl = ""
    if args.no_go:
        log("go-store column skipped: --no-go")
    else:
        go, go_impl = _run_go(rows, args, log)
    results = merge(own, pure, go)
    meta = {
        **machine(),
        "synchronous": args.synchronous,
        "rounds": args.rounds,
        "quick": args.quick,
        "target_seconds": args.target,
        "go_impl": go_impl,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(report(results, meta))
    print(
        f"\n{meta['date']}  {meta['cpu']} x{meta['nproc']}  Python {meta['python']}  "
        f"SQLite {meta['sqlite']}  APSW {meta['apsw']}  {meta['go']}  ({meta['seconds']} s)"
    )
    if args.json:
        data = {
            "meta": meta,
            "results": _to_json(results),
            "targets": [{**vars(t), "verdict": t.verdict} for t in targets(results)],
        }
        Path(args.json).write_text(json.dumps(data, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
