"""Store: go-store's API over a storage engine, with TTL in three layers and change events.

The work is done by the :class:`~gostore._core.Core` the store shares with its transactions
and scoped views; this module adds the lifecycle (open, purge thread, fork, close) and the
public methods, whose hottest ones (get, set, delete) take the core's fast path inline.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import weakref
from collections.abc import Callable, Generator, Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from ._core import Core
from ._maintenance import Maintenance
from ._render import render as _render
from ._render_limits import RenderLimits
from ._store_atomic import AtomicMethods
from ._types import KeyValue, check_text, expiry_ms, go_fields, go_split, now_ms
from .engine import (
    DEFAULT_CACHE_SIZE_MB,
    DEFAULT_MMAP_SIZE_MB,
    DatabaseError,
    EngineOptions,
    open_engine,
)
from .errors import StoreClosedError, StoreError
from .events import Event, Watcher, logger
from .feed import Feed, check_seq, feed_off, start_feed

if TYPE_CHECKING:
    from .scope import QuotaConfig, ScopedStore
    from .transaction import Transaction

__all__ = ("Store",)

Seconds = float | int
TTL = float | int | timedelta
Synchronous = Literal["full", "normal", "off"]

_OPEN_STORES: weakref.WeakSet[Store] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_OPEN_STORES):
        store._abandon_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _seconds(op: str, name: str, value: object, *, allow_none: bool) -> float:
    if value is None and allow_none:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a number of seconds, not {type(value).__name__}")
    if math.isnan(value) or value < 0 or math.isinf(value):
        raise ValueError(f"{op}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _mebibytes(op: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a number of MiB, not {type(value).__name__}")
    if not 0 <= value < 2**40:  # NaN fails this too
        raise ValueError(f"{op}: {name} must be a number of MiB >= 0, got {value!r}")
    return float(value)


class Store(AtomicMethods, Maintenance):
    """A key-value store with groups, TTL expiry and change events, on SQLite.

    :param path: a filesystem path (``str`` or ``os.PathLike``), ``":memory:"``, or a
        ``postgresql://`` URL for the PostgreSQL engine (``pip install "gostore[postgresql]"``).
    :param purge_interval: seconds between background purges of expired rows; ``0`` or
        ``None`` disables the purge thread.
    :param busy_timeout: seconds to wait for a lock held by another connection or process.
    :param synchronous: SQLite durability, ``"full"`` (default, as go-store), ``"normal"``
        or ``"off"``; see the README for what each survives.
    :param readonly: open without ever writing to the file: no schema change (a file that
        needs one raises :class:`StoreError`), no purge thread, and every write method raises
        :class:`StoreError`. Reads see what other processes commit meanwhile.
    :param cache_size_mb: SQLite's page cache for this store's connection, in MiB (private
        memory that grows as pages are read; default 2, SQLite's own). Worth raising when the
        file is larger than ``mmap_size_mb`` or memory-mapped I/O is off.
    :param mmap_size_mb: how much of the file SQLite reads through memory-mapped I/O, in MiB
        (default 256): pages are used in place in the OS cache instead of copied, which makes
        gets on large files faster; ``0`` turns it off (for filesystems where mmap is unsafe,
        such as network filesystems).
    :param change_feed: record every committed change in the database (whoever makes it) and
        deliver other connections' changes to this store's watchers and callbacks; see
        :meth:`changes`. Off, the file stays exactly as go-store writes it.
    :param change_retention: seconds the feed keeps a change (the purge removes older ones).
    :raises StoreError: the path cannot be opened or is not a SQLite database.

    >>> with Store() as store:
    ...     store.set("config", "colour", "blue")
    ...     store.get("config", "colour")
    'blue'
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        purge_interval: Seconds | None = 60.0,
        busy_timeout: Seconds = 5.0,
        synchronous: Synchronous = "full",
        readonly: bool = False,
        cache_size_mb: float = DEFAULT_CACHE_SIZE_MB,
        mmap_size_mb: float = DEFAULT_MMAP_SIZE_MB,
        change_feed: bool = False,
        change_retention: Seconds = 86400.0,
    ) -> None:
        op = "store.open"
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"{op}: path must be str or os.PathLike, not {type(path).__name__}")
        interval = _seconds(op, "purge_interval", purge_interval, allow_none=True)
        timeout = _seconds(op, "busy_timeout", busy_timeout, allow_none=False)
        level = synchronous.lower() if isinstance(synchronous, str) else None
        if level not in ("full", "normal", "off"):
            raise ValueError(
                f"{op}: synchronous must be one of 'full', 'normal', 'off', got {synchronous!r}"
            )
        if not isinstance(readonly, bool):
            raise TypeError(f"{op}: readonly must be bool, not {type(readonly).__name__}")
        cache_mb = _mebibytes(op, "cache_size_mb", cache_size_mb)
        mmap_mb = _mebibytes(op, "mmap_size_mb", mmap_size_mb)
        if readonly:
            interval = 0.0  # the purge writes
        retention = _seconds(op, "change_retention", change_retention, allow_none=False)
        options = EngineOptions(
            timeout, level, readonly, cache_mb, mmap_mb, bool(change_feed)  # type: ignore[arg-type]
        )
        try:
            engine = open_engine(path, options)
        except DatabaseError as exc:
            raise StoreError.at(op, exc.reason) from exc.__cause__
        self._path = engine.target
        self._core = core = Core(self, engine)
        if change_feed:
            core.feed = start_feed(core, engine, retention)
        self._bind_hot_paths()
        _OPEN_STORES.add(self)
        self._stop_purge = threading.Event()
        self._purger: threading.Thread | None = None
        if interval > 0:
            self._purger = threading.Thread(
                target=_purge_loop,
                args=(weakref.ref(self), self._stop_purge, interval),
                name=f"gostore-purge {self._path}",
                daemon=True,
            )
            self._purger.start()

    def _bind_hot_paths(self) -> None:
        """Look up once what get() and set() use on every call."""
        engine = self._core.engine
        self._engine_get = engine.get
        self._put_free = engine.put_free

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The database path, or ``":memory:"``."""
        return self._path

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._core.closed

    def __repr__(self) -> str:
        return f"<gostore.Store {self._path!r}{' closed' if self._core.closed else ''}>"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the purge thread, close every watcher and the database. Idempotent."""
        core = self._core
        if core.closed:
            return
        with core.lock:
            if core.closed:
                return
            if core.engine.depth:
                raise StoreError.at("store.close", "cannot close inside an open transaction")
            core.closed = True
        self._stop_purge.set()
        purger = self._purger
        if purger is not None and purger is not threading.current_thread():
            purger.join()
        if core.feed is not None:
            core.feed.stop()
        core.hub.close_all()
        with core.lock:
            _OPEN_STORES.discard(self)
            core.engine.close()

    def __del__(self) -> None:
        # Dropped without close(): wake the purge thread so it ends now, not an interval later.
        stop = getattr(self, "_stop_purge", None)
        if stop is not None:
            stop.set()

    def _abandon_after_fork(self) -> None:
        """In a forked child: refuse every call and never touch the parent's connection."""
        core = self._core
        core.forked = True
        core.closed = True
        if core.feed is not None:
            core.feed.abandon()
        core.engine.abandon()
        # The parent's locks may have been held at fork time by threads that do not exist here.
        core.lock = core.engine.lock
        core.hub.after_fork(core.lock, core.engine.gate)
        self._bind_hot_paths()

    # -- single-key reads -----------------------------------------------------------------------
    def get(self, group: str, key: str) -> str:
        """The value of ``key`` in ``group``.

        :raises NotFoundError: the key is absent or expired (an expired row is deleted here).
        """
        # NOTE: Core.get inlined: get() is the hottest call and a call level costs ~5% of it.
        if type(group) is not str or type(key) is not str:
            check_text("store.get", group=group, key=key)
        try:
            row = self._engine_get(group, key)
        except DatabaseError as exc:
            raise self._core.failure("store.get", exc, group, key) from exc.__cause__
        except UnicodeEncodeError:
            check_text("store.get", group=group, key=key)
            raise
        if row is not None and row[1] is None and type(row[0]) is str:
            return row[0]
        return self._core.finish_get("store.get", group, key, row)

    def exists(self, group: str, key: str) -> bool:
        """True when ``key`` is present and not expired."""
        return self._core.exists("store.exists", group, key)

    def get_many(self, group: str, keys: list[str] | tuple[str, ...]) -> dict[str, str]:
        """The live entries among ``keys`` (absent and expired keys are left out)."""
        return self._core.get_many("store.get_many", group, keys)

    def get_split(self, group: str, key: str, separator: str) -> Iterator[str]:
        """The value split like Go's ``strings.Split`` (empty separator: one item a character).

        :raises NotFoundError: at the call, not at the first ``next()``.
        """
        check_text("store.get_split", group=group, key=key, separator=separator)
        return iter(go_split(self._core.get("store.get_split", group, key), separator))

    def get_fields(self, group: str, key: str) -> Iterator[str]:
        """The value split on whitespace runs as Go's ``strings.Fields`` does."""
        check_text("store.get_fields", group=group, key=key)
        return iter(go_fields(self._core.get("store.get_fields", group, key)))

    # -- group reads ----------------------------------------------------------------------------
    def count(self, group: str) -> int:
        """Live keys in ``group``."""
        return self._core.count("store.count", group)

    def count_all(self, prefix: str = "") -> int:
        """Live keys in all groups whose name starts with ``prefix`` (literal, case-sensitive)."""
        return self._core.count_all("store.count_all", prefix)

    def get_all(self, group: str) -> dict[str, str]:
        """Every live entry of ``group`` as a dict."""
        return self._core.get_all("store.get_all", group)

    def all(self, group: str) -> Iterator[KeyValue]:
        """Live entries of ``group`` ascending by key, fetched lazily a page at a time."""
        return self._core.all("store.all", group)

    def get_page(self, group: str, offset: int = 0, limit: int = 100) -> list[KeyValue]:
        """One page of :meth:`all`: ``limit`` entries after skipping ``offset``."""
        return self._core.get_page("store.get_page", group, offset, limit)

    def groups(self, prefix: str = "") -> list[str]:
        """Distinct groups with a live key whose name starts with ``prefix``, ascending."""
        return list(self._core.groups_iter("store.groups", prefix))

    def groups_iter(self, prefix: str = "") -> Iterator[str]:
        """Like :meth:`groups`, fetched lazily a page at a time."""
        return self._core.groups_iter("store.groups_iter", prefix)

    def render(
        self, template: str, group: str, *, strict: bool = False, limits: RenderLimits | None = None
    ) -> str:
        """Render a Jinja2 template (sandboxed) with the group's live entries as variables.

        :param strict: a missing variable raises :class:`TemplateError` instead of rendering "".
        :param limits: bounds on the work and output of one render (see :class:`RenderLimits`);
            ``None`` uses the defaults.
        :raises TemplateError: syntax or runtime template errors, or a limit was exceeded.
        """
        check_text("store.render", template=template, group=group)
        entries = self._core.get_all("store.render", group)
        return _render("store.render", template, group, entries, strict, limits)

    # -- writes ---------------------------------------------------------------------------------
    def set(self, group: str, key: str, value: str) -> None:
        """Insert or replace ``key`` in ``group``; clears any TTL."""
        if type(group) is not str or type(key) is not str or type(value) is not str:
            check_text("store.set", group=group, key=key, value=value)
        # NOTE: Core.write's first step inlined (set() is the hottest write and a call level
        # costs ~8% of it): without the lock when no watcher or callback wants the key, no
        # quota is in use and no transaction is open (see Engine.put_free).
        try:
            if self._put_free(group, key, value, None):
                return
        except DatabaseError as exc:
            raise self._core.failure("store.set", exc, group, key) from exc.__cause__
        except UnicodeEncodeError:
            check_text("store.set", group=group, key=key, value=value)
            raise
        self._core.write("store.set", group, key, value, None, free_tried=True)

    def set_with_ttl(self, group: str, key: str, value: str, ttl: TTL) -> None:
        """Insert or replace ``key`` so that it expires after ``ttl``.

        :param ttl: seconds (``int``/``float``) or a ``timedelta``; ``<= 0`` stores an
            already-expired entry, as go-store does.
        :raises ValueError: ``ttl`` is NaN or infinite.
        """
        if type(group) is not str or type(key) is not str or type(value) is not str:
            check_text("store.set_with_ttl", group=group, key=key, value=value)
        expires = expiry_ms("store.set_with_ttl", ttl, now_ms())
        self._core.write("store.set_with_ttl", group, key, value, expires)

    def set_many(self, group: str, mapping: Mapping[str, str], ttl: TTL | None = None) -> None:
        """Write every entry of ``mapping`` in one transaction.

        :param ttl: as :meth:`set_with_ttl`; ``None`` clears any TTL, as :meth:`set` does.
        """
        self._core.set_many("store.set_many", group, mapping, ttl)

    def delete(self, group: str, key: str) -> None:
        """Remove ``key`` from ``group``; no error when it is absent."""
        if type(group) is not str or type(key) is not str:
            check_text("store.delete", group=group, key=key)
        self._core.write("store.delete", group, key, None, None)

    def delete_group(self, group: str) -> None:
        """Remove every key of ``group``."""
        self._core.delete_group("store.delete_group", group)

    def delete_prefix(self, prefix: str) -> int:
        """Remove every group whose name starts with ``prefix`` (literal, case-sensitive).

        :returns: rows physically removed, expired ones included.
        """
        return self._core.delete_prefix("store.delete_prefix", prefix)

    def purge_expired(self) -> int:
        """Delete expired rows now; returns how many."""
        return self._core.purge_expired("store.purge_expired")

    # -- export and import ----------------------------------------------------------------------
    def export_entries(self) -> Generator[tuple[str, str, str, int | None], None, None]:
        """Every live entry as ``(group, key, value, expires_at)`` in (group, key) order, from
        one consistent snapshot; ``expires_at`` is Unix ms or ``None``. Other threads' writes
        (in memory, their reads too) wait until the iterator is exhausted or closed, so close it
        (``contextlib.closing``) when you stop early."""
        return self._core.dump("store.export_entries")

    def import_entries(self, rows: list[tuple[str, str, str, int | None]]) -> None:
        """Write ``(group, key, value, expires_at)`` rows as they are, expiry included, in one
        transaction (what :meth:`export_entries` yields)."""
        op = "store.import_entries"
        for group, key, value, expires in rows:
            if type(group) is not str or type(key) is not str or type(value) is not str:
                check_text(op, group=group, key=key, value=value)
            if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)):
                kind = type(expires).__name__
                raise TypeError(f"{op}: expires_at must be int or None, not {kind}")
        with self._core.atomic(op):
            self._core.write_rows(op, "", rows)

    @property
    def readonly(self) -> bool:
        """True when opened with ``readonly=True``."""
        return self._core.engine.readonly

    # -- transactions and namespaces ------------------------------------------------------------
    def transaction(self) -> contextlib.AbstractContextManager[Transaction]:
        """A write transaction: commits when the block ends, rolls back on an exception.

        Other threads' writes wait until it ends (in memory, their reads too); events are sent
        only after the commit.

        >>> with Store() as store:
        ...     with store.transaction() as tx:
        ...         tx.set("accounts", "alice", "10")
        ...         tx.count("accounts")
        1
        """
        from .transaction import open_transaction

        return open_transaction(self._core, "tx")

    def scoped(self, namespace: str, quota: QuotaConfig | None = None) -> ScopedStore:
        """A :class:`ScopedStore` for ``namespace``, as ``ScopedStore(self, namespace, quota)``."""
        from .scope import ScopedStore

        self._core.ready("store.scoped")
        return ScopedStore(self, namespace, quota)

    # -- events ---------------------------------------------------------------------------------
    def watch(
        self, group: str, key: str, *, buffer: int = 16, since: int | None = None
    ) -> Watcher:
        """A :class:`Watcher` receiving the events on ``(group, key)``; ``"*"`` matches any.

        :param buffer: events held before new ones are dropped (and counted).
        :param since: with the change feed on, first replay the recorded matching changes
            with a ``seq`` after ``since``, then the live ones, with no gap and no duplicate
            (replayed events never count against ``buffer``).
        :raises ChangesExpiredError: the changes after ``since`` are no longer kept.
        """
        return self._core.watch("store.watch", group, key, buffer, None, since)

    def changes(self, since: int = 0, *, limit: int | None = None) -> Iterator[Event]:
        """The recorded changes with a ``seq`` after ``since``, oldest first (change feed on).

        :param limit: at most this many (``None``: all).
        :raises ChangesExpiredError: at the call, when the changes after ``since`` are no
            longer kept (older than ``change_retention``).
        """
        op = "store.changes"
        check_seq(op, "since", since)
        if limit is not None:
            check_seq(op, "limit", limit)
        return self._feed(op).changes(op, since, limit)

    def last_seq(self) -> int:
        """The newest recorded change's ``seq`` (0 when none): resume from it with
        ``changes(since=...)`` or ``watch(..., since=...)`` (change feed on)."""
        op = "store.last_seq"
        feed = self._feed(op)
        try:
            return feed.engine.feed_last_seq()
        except DatabaseError as exc:
            raise self._core.failure(op, exc) from exc.__cause__

    def _feed(self, op: str) -> Feed:
        self._core.ready(op)
        feed = self._core.feed
        if feed is None:
            raise feed_off(op)
        return feed

    def unwatch(self, watcher: Watcher) -> None:
        """Stop delivery to ``watcher`` and close it. Idempotent; harmless after close()."""
        if not isinstance(watcher, Watcher):
            raise TypeError(f"store.unwatch: expected a Watcher, not {type(watcher).__name__}")
        # Through the watcher, so it leaves the index of the store that made it (not ours).
        watcher.close()

    def on_change(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` after every committed change, in the writing thread.

        :returns: an idempotent function that unregisters the callback.
        """
        if not callable(callback):
            raise TypeError(
                f"store.on_change: callback must be callable, not {type(callback).__name__}"
            )
        self._core.ready("store.on_change")
        return self._core.hub.on_change(callback)


def _purge_loop(ref: weakref.ref[Store], stop: threading.Event, interval: float) -> None:
    """The background purge. It holds only a weak reference, so a Store dropped without
    close() is still garbage-collected, and this thread then ends."""
    while not stop.wait(interval):
        store = ref()
        if store is None:
            return
        try:
            store.purge_expired()
        except StoreClosedError:
            return
        except Exception:  # keep purging; a database locked now may be free next time
            logger.exception("gostore: background purge of %r failed", store.path)
        del store
