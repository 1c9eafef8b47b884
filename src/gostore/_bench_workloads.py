"""The comparison benchmark's workloads (SPEC section 9): what is measured.

The workloads here are shared by ``benchmarks/`` (pytest-benchmark) and the runner
``gostore._bench`` (``gostore bench`` / ``python -m gostore._bench``), so both measure the same
thing. They mirror the Go harness in ``benchmarks/go/main.go`` exactly: the same names, the key
set ``"key-%d"``, group ``"bench"``, value ``"value"``, loops that restart at key 0 on every
timed run, Delete timed in batches of 1,000 after an untimed fill, SetMany_FileBacked as one
10,000-key batch, Get_1M probing ``(i*7919) % 1_000_000``, and the file-backed writes' changing
values (below). A workload is built for one implementation:

* ``gostore``: a gostore Store in whichever mode this process runs (compiled or pure);
* ``apsw``: raw APSW running the very SQL constants of ``gostore._schema`` through one reused
  cursor, no facade; single-row reads use ``.fetchall()`` as gostore does, because a
  ``fetchone()`` leaves the statement un-reset and so holds a read snapshot open on a file;
* ``dict_cursor``: for the GetAll rows, ``dict(cursor.execute(GROUP_ROWS, ...))``, the
  simplest way to build the dict straight from APSW rows.

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
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import apsw

from . import _accel
from ._types import KeyValue
from .engine import sqlite_schema as sql
from .events import Event, EventHub, EventType
from .scope import QuotaConfig
from .store import Store

__all__ = ("DURABILITY", "WORKLOADS", "Config", "Instance", "Workload", "cases")

GROUP = "bench"
VALUE = "value"
# Alternated by the file-backed writes so that every commit changes a page (module docstring).
FILE_VALUES = ("value-a", "value-b")
TEMPLATE = "{{ k1 }}-{{ k2 }}-{{ k3 }}"  # go-store's "{{ .k1 }}-{{ .k2 }}-{{ .k3 }}"
SEPARATOR = b"\xff"
LEVELS = ("full", "normal", "off")

# Implementations a workload can be built for; "gostore" is whichever mode this process runs.
GOSTORE, APSW, DICT_CURSOR = "gostore", "apsw", "dict_cursor"
IMPLS = (GOSTORE, APSW, DICT_CURSOR)


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
            self.store = Store(path, purge_interval=0, synchronous=cfg.synchronous)  # type: ignore[arg-type]
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


def _decode(count: Any, text: Any, kb: Any, vb: Any) -> dict[str, str]:
    # The plainest decode of GROUP_BLOB's two blobs (what the pure twin does, unchecked).
    if not count or count != text or kb is None or vb is None:
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
            go=False,
        ),
        Workload(
            "Set_NewKey",
            "op (new key, 100,000 keys in a namespace)",
            20,
            BOTH,
            _new_key_workload(False),
            go=False,
        ),
        Workload(
            "ScopedSet_100K",
            "op (new key, 100,000 keys, quota)",
            20,
            (GOSTORE,),
            _new_key_workload(True),
            go=False,
        ),
        # accelerated paths
        Workload(
            "decode_group_10K",
            "call (10,000 entries)",
            2,
            (GOSTORE,),
            _decode_group,
            go=False,
            pytest_ops=1,
        ),
        Workload(
            "decode_pairs_10K",
            "call (10,000 entries)",
            2,
            (GOSTORE,),
            _decode_pairs,
            go=False,
            pytest_ops=1,
        ),
        Workload(
            "WatcherIndex_match",
            "call (10,004 watchers, 4 match)",
            20,
            (GOSTORE,),
            _watcher_match,
            go=False,
        ),
        Workload(
            "Watcher_dispatch",
            "event (10,004 watchers, 4 match)",
            20,
            (GOSTORE,),
            _watcher_dispatch,
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
