"""Storage engines: the layer under the facade. One module per database, one protocol.

The facade (:class:`~gostore.Store`, transactions, scoped stores, events, quotas) validates
input, holds the write lock, runs the quota check and publishes events; it never sees SQL or a
driver. An engine knows one database: connections, schema, SQL text, transactions and the
mapping of driver failures to :class:`DatabaseError`. A new engine is a new module that
implements :class:`Engine` and a line in :func:`open_engine`.

Conventions every engine follows:

* Times are Unix milliseconds (``now``); an entry is live when ``expires`` is ``None`` or
  greater than ``now``. Groups, keys and prefixes are compared as UTF-8 bytes (SQLite's BINARY
  order); a prefix becomes the half-open range ``lo <= group < hi`` of
  :func:`gostore._types.prefix_range`, where ``hi`` may be ``b""`` meaning "no upper bound".
* Reads synchronise themselves (they may be called from any thread at any time). Writes and
  transaction control are called with :attr:`Engine.lock` held by the caller, so that a write
  and the publication of its events are one step in commit order.
* The exception is :meth:`Engine.put_free`: a write nobody needs an event or a quota record
  of, called without the lock. It passes :attr:`Engine.gate` or returns False: the facade
  shuts the gate to writes for as long as every write needs the lock (quotas in use, the
  change feed on) and makes its event hub the gate's ``listener``, which the gate asks whether
  anyone wants a write's event; the engine may shut the gate too.
* Every driver failure is raised as :class:`DatabaseError` with the driver's exception chained
  as ``__cause__``; the facade adds the operation and the group/key.
* A failed statement inside an open transaction poisons the transaction: every later call in
  it raises :class:`DatabaseError` until the level that failed is rolled back, and committing
  it rolls back instead. So a transaction block is all-or-nothing whatever the database did on
  the error (SQLite may roll back one statement or the whole transaction; PostgreSQL aborts).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

if TYPE_CHECKING:
    import threading

    from .._accel import Gate
    from .._types import KeyValue, StoreStats

__all__ = (
    "AsyncReader",
    "DatabaseError",
    "Engine",
    "EngineOptions",
    "FeedEngine",
    "FeedListener",
    "FeedRow",
    "Row",
    "Totals",
    "POSTGRES_EXTRA",
    "is_url",
    "open_engine",
)

Synchronous = Literal["full", "normal", "off"]


class DatabaseError(Exception):
    """A driver failure, described in plain words (``reason``); the driver's error is chained."""

    def __init__(self, reason: str, *, busy: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        #: the database was locked by another connection for longer than the busy timeout
        self.busy = busy


#: the default page cache per connection and memory-mapped I/O window, in MiB. Measured with
#: benchmarks/large_db.py (random gets on 1K and 1M keys, file in the OS cache): memory-mapped
#: reads make a get on 1M keys ~5% faster; a page cache larger than SQLite's 2 MB default made
#: it no faster (slightly slower), so the cache keeps SQLite's size.
DEFAULT_CACHE_SIZE_MB = 2
DEFAULT_MMAP_SIZE_MB = 256


class EngineOptions(NamedTuple):
    """What :class:`~gostore.Store` passes to an engine when it opens."""

    busy_timeout: float
    synchronous: Synchronous
    #: open without ever writing: no schema change, and every write raises DatabaseError
    readonly: bool = False
    #: page cache per connection, MiB (an engine without one ignores it)
    cache_size_mb: float = DEFAULT_CACHE_SIZE_MB
    #: memory-mapped I/O window, MiB; 0 turns it off (an engine without it ignores it)
    mmap_size_mb: float = DEFAULT_MMAP_SIZE_MB
    #: record every change in the database (a :class:`FeedEngine` is opened)
    change_feed: bool = False


class Row(NamedTuple):
    """One stored entry with its expiry (export/import and the quota ledger)."""

    group: str
    key: str
    value: str
    expires: int | None


class Totals(NamedTuple):
    """A namespace's live totals for one group (the quota ledger is built from these)."""

    group: str
    keys: int
    bytes: int


class AsyncReader(Protocol):
    """Single-key reads as coroutines, for the thread of one event loop (``gostore.aio``)."""

    async def get(self, group: str, key: str) -> tuple[Any, Any] | None:
        """As :meth:`Engine.get`."""

    async def exists(self, group: str, key: str, now: int) -> bool:
        """As :meth:`Engine.exists`."""

    async def close(self) -> None:
        """Release its connections."""


class Engine(Protocol):
    """What the facade needs from a database. Each engine is one module implementing this."""

    #: where the data lives, for messages: a path, ``":memory:"`` or a URL without password
    target: str
    #: True when other connections (processes, machines) may change the data
    shared: bool
    #: held by the caller around writes and transaction control (see the module docstring)
    lock: threading.RLock
    #: True for a :class:`FeedEngine`, which records every change
    feed: bool
    #: what :meth:`put_free` passes (see the module docstring): ``gate.shut(writes_only=True)``
    #: waits for the writes in flight, ``gate.reopen(writes_only=True)`` undoes one shut
    gate: Gate

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Release every connection. Later calls raise :class:`DatabaseError`."""

    def abandon(self) -> None:
        """In a child after ``fork()``: never touch the parent's connections again; every
        later call raises :class:`DatabaseError`."""

    # -- single-key reads -----------------------------------------------------------------------
    def get(self, group: str, key: str) -> tuple[Any, Any] | None:
        """``(value, expires)`` of the row, expired or not, or ``None``. ``value`` and
        ``expires`` are as stored: rows written by other programs may hold other types."""

    def get_now(self, group: str, key: str) -> tuple[Any, Any] | Literal[False] | None:
        """:meth:`get` if it can run at once without waiting for anything (a lock, another
        thread's transaction, the disk or the network); else ``False``, and nothing is done.
        An event loop's thread reads with it (``gostore.aio``)."""

    def async_reads(self) -> AsyncReader | None:
        """Reads an event loop can await on its own thread, beside each other (a new set at
        each call; its owner closes it), or ``None`` when the engine has none."""

    def exists(self, group: str, key: str, now: int) -> bool:
        """True when a live row exists."""

    def get_many(self, group: str, keys: list[str], now: int) -> dict[str, str]:
        """The live rows among ``keys``."""

    # -- group and prefix reads -----------------------------------------------------------------
    def count(self, group: str, now: int) -> int:
        """Live rows in ``group``."""

    def count_range(self, lo: str, hi: str | bytes, now: int) -> int:
        """Live rows in the groups of the range."""

    def entries(self, group: str, now: int) -> dict[str, str]:
        """Every live entry of ``group``, read in bounded pieces however large the group."""

    def page(self, group: str, now: int, limit: int, offset: int) -> list[KeyValue]:
        """Live entries ascending by key: ``limit`` of them after skipping ``offset``."""

    def page_after(self, group: str, after: str, now: int, limit: int) -> list[KeyValue]:
        """Up to ``limit`` live entries with a key greater than ``after``, ascending."""

    def groups_page(
        self, lo: str, hi: str | bytes, after: str | None, now: int, limit: int
    ) -> list[str]:
        """Up to ``limit`` distinct groups of the range with a live row, ascending, each
        greater than ``after`` (or from ``lo`` itself when ``after`` is ``None``)."""

    def dump(self, now: int) -> Iterator[Row]:
        """Every live row in (group, key) order, as one consistent snapshot. The caller holds
        :attr:`lock` until the iterator is exhausted or closed."""

    # -- writes (caller holds lock) -------------------------------------------------------------
    def put(self, group: str, key: str, value: str, expires: int | None) -> None:
        """Insert or replace one row."""

    def put_free(self, group: str, key: str, value: str, expires: int | None) -> bool:
        """:meth:`put` without the caller holding the lock; False, with nothing written, while
        the gate is shut to writes (the caller then takes the lock and calls :meth:`put`)."""

    def put_now(self, group: str, key: str, value: str, expires: int | None) -> bool:
        """:meth:`put_free` if it can run at once without waiting for anything (see
        :meth:`get_now`); else False, and nothing is written."""

    def put_many(self, rows: Iterable[tuple[str, str, str, int | None]]) -> None:
        """Insert or replace every ``(group, key, value, expires)``, inside the caller's
        transaction."""

    def delete(self, group: str, key: str) -> bool:
        """Remove one row; True when there was one."""

    def delete_expired(self, group: str, key: str, now: int) -> bool:
        """Remove the row only if it has expired by ``now`` (the lazy delete)."""

    def delete_group(self, group: str) -> bool:
        """Remove every row of ``group``; True when there was one."""

    def delete_range(self, lo: str, hi: str | bytes) -> list[str]:
        """Remove every row of the range; the group of each removed row."""

    def purge(self, lo: str, hi: str | bytes, now: int) -> list[tuple[str, str]]:
        """Remove the rows of the range expired by ``now``; their (group, key)."""

    # -- quota support --------------------------------------------------------------------------
    def row_size(self, group: str, key: str) -> tuple[int, Any] | None:
        """``(UTF-8 bytes of key + value, expires)`` of the row, or ``None``."""

    def range_totals(self, lo: str, hi: str | bytes, now: int) -> list[Totals]:
        """Per group of the range: live rows and their UTF-8 bytes."""

    def range_expiring(self, lo: str, hi: str | bytes, now: int) -> list[tuple[str, str, int, int]]:
        """``(group, key, size, expires)`` of the live rows of the range that have an expiry."""

    def version(self, namespace: str) -> object:
        """Inside the transaction holding :meth:`lock_namespace` of ``namespace``: a token that
        changes whenever another connection may have committed a change to it (an engine may
        answer for the whole database); a quota ledger of the namespace is valid while it stays
        equal."""

    def lock_namespace(self, namespace: str) -> None:
        """Inside a transaction: keep other connections from changing ``namespace`` until it
        ends (for an atomic quota check). A no-op where a write transaction excludes others."""

    # -- transactions (caller holds lock) -------------------------------------------------------
    @property
    def depth(self) -> int:
        """Open levels in the calling thread: 0 outside a transaction."""

    def begin(self) -> None:
        """Open a level: the outermost starts a write transaction, inner ones a savepoint."""

    def commit(self) -> None:
        """Close the innermost level. Raises :class:`DatabaseError` (after rolling the level
        back) when the level was poisoned or the commit failed."""

    def rollback(self) -> None:
        """Undo the innermost level. Never raises for a transaction the database already
        ended."""

    # -- atomic read-modify-write (caller holds lock, inside begin() ... commit()) --------------
    # The facade's atomic operations (incr, add, compare_and_set, pop, touch) are one write
    # transaction each: get_for_update, a decision in Python, then put/delete/set_expiry.

    def get_for_update(self, group: str, key: str) -> tuple[Any, Any] | None:
        """Inside a write transaction: the row as :meth:`get` returns it, and no other
        connection may change, create or delete that key until the transaction ends. (SQLite's
        BEGIN IMMEDIATE already excludes every other writer; PostgreSQL needs a row lock
        *and* a lock on the key itself, e.g. a transaction-level advisory lock on its hash,
        because ``SELECT ... FOR UPDATE`` cannot lock a row that does not exist yet.)"""

    def set_expiry(self, group: str, key: str, expires: int | None) -> bool:
        """Change only the expiry of the row, never its value; True when there was one."""

    # -- maintenance ----------------------------------------------------------------------------
    #: opened with ``readonly``: every write (and :meth:`begin`) raises :class:`DatabaseError`
    readonly: bool

    def stats(self, now: int) -> StoreStats:
        """Live keys, expired rows, groups with a live key, UTF-8 bytes of live keys and values,
        and the sizes of the files holding them, from one pass over the data that reads
        lengths only (never decodes a value)."""

    def check(self) -> list[str]:
        """The problems the database's own integrity check reports; ``[]`` when healthy."""

    def vacuum(self) -> None:
        """Rebuild the storage, returning free space to the operating system. Outside a
        transaction only."""

    def checkpoint(self, mode: str) -> tuple[int, int]:
        """Copy the write-ahead log into the database (``mode``: ``"passive"``, ``"full"``,
        ``"restart"`` or ``"truncate"``); ``(log frames, frames checkpointed)``. An engine
        without such a log raises :class:`DatabaseError` saying which tool does it."""

    def backup(self, dest: str) -> None:
        """Write a consistent copy of the committed data to the new file ``dest`` while other
        connections keep writing; a partial copy is removed on failure. ``dest`` must not
        exist. An engine whose database is not a file raises :class:`DatabaseError` saying
        which tool does it."""


_URL_SCHEMES = ("postgresql://", "postgres://")
POSTGRES_EXTRA = 'pip install "gostore[postgresql]"'


def is_url(target: object) -> bool:
    """True when ``target`` is a database server URL (selects the PostgreSQL engine)."""
    return isinstance(target, str) and target[:13].lower().startswith(_URL_SCHEMES)


class FeedRow(NamedTuple):
    """One recorded change of the feed."""

    seq: int  # its position: increasing in commit order, never reused
    kind: int  # an EventType value
    group: str
    key: str  # "" for DELETE_GROUP
    value: str  # "" unless SET
    timestamp: float  # Unix seconds of the change


class FeedListener(Protocol):
    """A background reader of the feed, on a connection of its own (one thread uses it)."""

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True when other connections may have recorded
        changes since the last call. Returns False at once after :meth:`wake`."""

    def read(self, since: int, limit: int) -> tuple[list[FeedRow], int]:
        """As :meth:`FeedEngine.feed_others`, on the listener's connection."""

    def wake(self) -> None:
        """Make :meth:`wait` return now; callable from any thread."""

    def close(self) -> None:
        """Release the connection (in the listener's thread, or after it ended)."""


class FeedEngine(Engine, Protocol):
    """An engine that records every committed change to the entries, whoever makes it, in a
    feed of its own (``change_feed=True``).

    Every change row is recorded in commit order with a ``seq`` that only grows: a reader that
    has seen ``seq`` N has seen every change committed before it. Writes of the engine's own
    are recorded with the kinds the facade's events have: ``delete_group`` and
    ``delete_range`` as one DELETE_GROUP row per group, ``purge`` and ``delete_expired`` as
    EXPIRE rows, in the order of the groups or keys they return; everything else as one SET or
    DELETE row per row changed, in the order written. So the facade can number the events of
    a write it just made from :meth:`feed_written`. Changes by other programs are SET or
    DELETE rows.
    """

    def feed_read(self, since: int, limit: int) -> list[FeedRow]:
        """Up to ``limit`` recorded changes with ``seq > since``, ascending (a read; inside
        a transaction it sees the transaction's own changes)."""

    def feed_others(self, since: int, limit: int) -> tuple[list[FeedRow], int]:
        """Up to ``limit`` committed changes with ``seq > since`` made by other connections
        than the engine's own, ascending, and the ``seq`` through which that list is complete
        (so a reader moves past the engine's own changes without reading them again)."""

    def feed_last_seq(self) -> int:
        """The newest ``seq`` ever recorded (0 when none), trimmed rows included."""

    def feed_written(self) -> int:
        """The ``seq`` of the last change recorded by the calling thread's latest write (lock
        held, right after the write): the facade numbers that write's events back from it."""

    def feed_trimmed(self) -> int:
        """The newest ``seq`` removed by :meth:`feed_trim` (0 when none): a reader that has
        not seen it has missed changes."""

    def feed_trim(self, before_ms: int) -> int:
        """Remove the changes recorded before ``before_ms`` (Unix ms); how many went."""

    def feed_pending(self) -> bool:
        """True when other connections may have committed since the last call (writer's
        thread, lock held): the facade then reads their changes before delivering its own, so
        each key's events stay in order."""

    def feed_listen(self) -> FeedListener:
        """A new :class:`FeedListener` for the store's background thread."""


def open_engine(target: str | os.PathLike[str], options: EngineOptions) -> Engine:
    """The engine for ``target``: a ``postgresql://`` or ``postgres://`` URL is PostgreSQL, a
    path or ``":memory:"`` is SQLite."""
    text = os.fsdecode(os.fspath(target))
    if is_url(text):
        try:
            from . import postgres
        except ImportError as exc:
            raise DatabaseError(
                f"a PostgreSQL URL needs psycopg 3, which is not installed ({exc}); "
                f"install it with: {POSTGRES_EXTRA}"
            ) from exc
        if options.change_feed:
            from . import postgres_feed

            return postgres_feed.PostgresFeedEngine(text, options)
        return postgres.PostgresEngine(text, options)
    from . import sqlite

    if options.change_feed:
        from . import sqlite_feed

        return sqlite_feed.SQLiteFeedEngine(text, options)
    return sqlite.SQLiteEngine(text, options)
