"""What every workload is built from: the shared constants, the records a workload is described
and built as, and the fixture that opens a gostore Store or a raw connection.

This is the one module of ``gostore.bench`` that reaches gostore's SQL: the raw baselines run
the very statements and ``connect()`` that gostore itself uses, imported below as ``sql``.
Pointing that single import elsewhere repoints every raw column. The raw connection is the
driver's own object, returned by ``sql.connect``; nothing here imports the driver.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gostore import Store

from ..engine import sqlite_schema as sql

__all__ = (
    "APSW",
    "DICT_CURSOR",
    "FILE_VALUES",
    "GOSTORE",
    "GROUP",
    "IMPLS",
    "LEVELS",
    "SEPARATOR",
    "TEMPLATE",
    "VALUE",
    "Config",
    "Fixture",
    "Instance",
    "Workload",
    "cycle",
    "decode_blobs",
    "keys",
    "now_ms",
    "sql",
    "sqlite_version",
)

GROUP = "bench"
VALUE = "value"
# Alternated by the file-backed writes so that every commit changes a page (see workloads.py).
FILE_VALUES = ("value-a", "value-b")
TEMPLATE = "{{ k1 }}-{{ k2 }}-{{ k3 }}"  # go-store's "{{ .k1 }}-{{ .k2 }}-{{ .k3 }}"
SEPARATOR = b"\xff"
LEVELS = ("full", "normal", "off")

# Implementations a workload can be built for; "gostore" is whichever mode this process runs.
GOSTORE, APSW, DICT_CURSOR = "gostore", "apsw", "dict_cursor"
IMPLS = (GOSTORE, APSW, DICT_CURSOR)


_KEYS: list[str] = []


def keys(n: int) -> list[str]:
    """``["key-0", ..., "key-<n-1>"]``, precomputed so string formatting is not measured."""
    if len(_KEYS) < n:
        _KEYS.extend(f"key-{i}" for i in range(len(_KEYS), n))
    return _KEYS[:n]


def now_ms() -> int:
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


class Fixture:
    """A gostore Store or a raw connection on ":memory:" or in a temporary directory."""

    def __init__(self, impl: str, cfg: Config, *, file: bool = False) -> None:
        self.impl = impl
        self._dir = tempfile.mkdtemp(prefix="gostore-bench-") if file else None
        path = os.path.join(self._dir, "bench.db") if self._dir else sql.MEMORY
        self.store: Store | None = None
        # gostore's own connect() for the raw columns: the same pragmas and schema, none of
        # the facade.
        self.conn = None if impl == GOSTORE else sql.connect(path, 5.0, cfg.synchronous)
        if self.conn is None:
            # No purge thread: the Go harness has no purge goroutine either.
            self.store = Store(path, purge_interval=0, synchronous=cfg.synchronous)  # type: ignore[arg-type]
        else:
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


def cycle(items: Sequence[str], n: int) -> Iterable[str]:
    """``items[i % len(items)] for i in range(n)``, without per-op index arithmetic."""
    return itertools.islice(itertools.cycle(items), n)


def decode_blobs(count: Any, text: Any, kb: Any, vb: Any) -> dict[str, str]:
    """The plainest decode of GROUP_BLOB's two blobs (what the pure twin does, unchecked)."""
    if not count or count != text or kb is None or vb is None:
        return {}
    ks, vs = kb.split(SEPARATOR), vb.split(SEPARATOR)
    return dict(zip(map(bytes.decode, ks), map(bytes.decode, vs), strict=True))


def sqlite_version() -> str:
    """The SQLite library version the raw columns (and gostore) run on."""
    conn = sql.connect(sql.MEMORY, 5.0, "full")
    try:
        return str(conn.execute("SELECT sqlite_version()").fetchall()[0][0])
    finally:
        conn.close()
