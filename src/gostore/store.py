"""Store: one SQLite connection behind a lock, go-store's API, TTL in three layers.

Every write goes through the same few steps: the SQL runs under ``self._lock``; the events it
causes are published while the lock is still held (so watchers see writes in commit order) or
staged when a transaction is open; ``on_change`` callbacks run after the lock is released.
Transactions, quotas and events hook in there and nowhere else.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import apsw

from . import _schema as sql
from ._reads import GroupReads
from ._types import check_text, expiry_ms, now_ms, prefix_range
from .errors import NotFoundError, StoreClosedError, StoreError
from .events import Event, EventHub, EventType, Watcher, logger

if TYPE_CHECKING:
    from .scope import QuotaConfig, ScopedStore, _Ledger
    from .transaction import Transaction

__all__ = ("Store",)

Seconds = float | int
TTL = float | int | timedelta

_GET = sql.GET  # module globals: one dict lookup on the hot paths instead of two
_SET = sql.SET
_SET_EVENT = EventType.SET
_DELETE = sql.DELETE
_DELETE_EVENT = EventType.DELETE
_NO_EVENTS: list[Event] = []  # shared empty result; never mutated
_OPEN_STORES: weakref.WeakSet[Store] = weakref.WeakSet()
# NOTE: a Store inherited through fork() must never close the parent's SQLite connection from
# the child (closing releases locks the parent relies on); the child keeps it here, unused.
_INHERITED_CONNECTIONS: list[apsw.Connection] = []


def _after_fork_in_child() -> None:
    for store in list(_OPEN_STORES):
        store._abandon_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Guard(Protocol):
    """Checks a single-key write before it runs and accounts for it after (quotas)."""

    def before(
        self, store: Store, op: str, group: str, key: str, value: str | None, expires: int | None
    ) -> Any:
        """Raise to refuse the write; ``value`` is None for a delete. Returns a token."""

    def after(self, token: Any, changed: bool) -> None:
        """The write ran (``changed``: a row was written or removed)."""


def _seconds(op: str, name: str, value: object, *, allow_none: bool) -> float:
    if value is None and allow_none:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: {name} must be a number of seconds, not {type(value).__name__}")
    if math.isnan(value) or value < 0 or math.isinf(value):
        raise ValueError(f"{op}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


class Store(GroupReads):
    """A SQLite-backed key-value store with groups, TTL expiry and change events.

    :param path: a filesystem path (``str`` or ``os.PathLike``) or ``":memory:"``.
    :param purge_interval: seconds between background purges of expired rows; ``0`` or
        ``None`` disables the purge thread.
    :param busy_timeout: seconds to wait for a lock held by another connection or process.
    :param synchronous: SQLite durability, ``"full"`` (default, as go-store), ``"normal"``
        or ``"off"``; see the README for what each survives.
    :raises StoreError: the path cannot be opened or is not a SQLite database.

    >>> with Store() as store:
    ...     store.set("config", "colour", "blue")
    ...     store.get("config", "colour")
    'blue'
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = sql.MEMORY,
        *,
        purge_interval: Seconds | None = 60.0,
        busy_timeout: Seconds = 5.0,
        synchronous: str = "full",
    ) -> None:
        op = "store.open"
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"{op}: path must be str or os.PathLike, not {type(path).__name__}")
        self._path = sql.fspath(path)
        self._purge_interval = _seconds(op, "purge_interval", purge_interval, allow_none=True)
        self._busy_timeout = _seconds(op, "busy_timeout", busy_timeout, allow_none=False)
        if not isinstance(synchronous, str) or synchronous.lower() not in sql.SYNCHRONOUS_LEVELS:
            raise ValueError(
                f"{op}: synchronous must be one of 'full', 'normal', 'off', got {synchronous!r}"
            )
        self._closed = True  # until the connection is open; close() and __del__ stay safe
        self._forked = False
        self._lock = threading.RLock()
        # The lock's bound methods, looked up once: the hot paths call them on every operation.
        self._acquire = self._lock.acquire
        self._release = self._lock.release
        self._hub = EventHub(self._lock)
        self._tx_depth = 0  # open transaction levels (outermost BEGIN + savepoints)
        self._staged: list[Event] = []  # events of the open transaction, sent on commit
        #: quota ledgers by namespace, kept by ScopedStore (see scope.py)
        self._ledgers: dict[str, _Ledger] = {}
        try:
            self._conn = sql.connect(self._path, self._busy_timeout, synchronous.lower())
        except apsw.Error as exc:
            raise StoreError.at(op, f"cannot open {self._path!r}: {_reason(exc)}") from exc
        # NOTE: Any, not apsw.Cursor: the schema fixes each column's type, which apsw's stubs
        # cannot know (fetchall() rows are tuple[SQLiteValue, ...]); after fork() it is a
        # _DeadCursor.
        self._cur: Any = self._conn.cursor()
        self._execute = self._cur.execute  # looked up once, for the hot paths
        self._memory = self._path == sql.MEMORY
        self._closed = False
        _OPEN_STORES.add(self)
        self._stop_purge = threading.Event()
        self._purger: threading.Thread | None = None
        if self._purge_interval > 0:
            self._purger = threading.Thread(
                target=_purge_loop,
                args=(weakref.ref(self), self._stop_purge, self._purge_interval),
                name=f"gostore-purge {self._path}",
                daemon=True,
            )
            self._purger.start()

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The database path, or ``":memory:"``."""
        return self._path

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __repr__(self) -> str:
        return f"<gostore.Store {self._path!r}{' closed' if self._closed else ''}>"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the purge thread, close every watcher and the database. Idempotent."""
        if self._closed:
            return
        with self._lock:
            if self._closed:
                return
            if self._tx_depth:
                raise StoreError.at("store.close", "cannot close inside an open transaction")
            self._closed = True
        self._stop_purge.set()
        purger = self._purger
        if purger is not None and purger is not threading.current_thread():
            purger.join()
        self._hub.close_all()
        with self._lock:
            _OPEN_STORES.discard(self)
            self._conn.close()

    def __del__(self) -> None:
        # Dropped without close(): wake the purge thread so it ends now, not an interval later.
        stop = getattr(self, "_stop_purge", None)
        if stop is not None:
            stop.set()

    def _abandon_after_fork(self) -> None:
        """In a forked child: refuse every call and never touch the parent's connection."""
        self._forked = True
        self._closed = True
        _INHERITED_CONNECTIONS.append(self._conn)
        self._cur = _DeadCursor()
        self._execute = self._cur.execute
        self._lock = threading.RLock()  # the parent's lock may have been held at fork time
        self._acquire = self._lock.acquire
        self._release = self._lock.release
        self._hub._delivery_lock = self._lock  # so unwatch() in the child cannot block

    def _closed_error(self, op: str) -> StoreError:
        if self._forked:
            return StoreError.at(
                op, "this Store was opened in the parent process; open a new Store after fork()"
            )
        return StoreClosedError.at(op, "the store is closed")

    def _failure(
        self, op: str, exc: BaseException, group: str | None = None, key: str | None = None
    ) -> StoreError:
        """The StoreError to raise (``from exc``) for an APSW failure."""
        if self._closed:
            return self._closed_error(op)
        return StoreError.at(op, _reason(exc, self._busy_timeout), group, key)

    def _ready(self, op: str) -> None:
        if self._closed:
            raise self._closed_error(op)

    # -- events ---------------------------------------------------------------------------------
    def _publish(self, events: list[Event]) -> list[Event]:
        """Send committed ``events`` to watchers (lock held); return those callbacks still need.

        Inside a transaction the events are staged instead, and sent on commit.
        """
        if self._tx_depth:
            self._staged.extend(events)
            return _NO_EVENTS
        self._hub.to_watchers(events)
        return events if self._hub.callbacks else _NO_EVENTS

    def _publish_one(self, kind: EventType, group: str, key: str, value: str) -> list[Event]:
        """:meth:`_publish` for one change, building the Event only if someone receives it."""
        if self._tx_depth:
            self._staged.append(Event(kind, group, key, value, time.time()))
            return _NO_EVENTS
        event = self._hub.publish(kind, group, key, value)
        return _NO_EVENTS if event is None else [event]

    def _event(self, kind: EventType, group: str, key: str = "", value: str = "") -> Event:
        return Event(kind, group, key, value, time.time())

    # -- transactions (the machinery; the public API is in transaction.py) ----------------------
    def _begin(self) -> int:
        """Open a transaction level (lock held); returns the staged-events mark to roll back to."""
        if self._tx_depth == 0:
            self._cur.execute(sql.BEGIN)
        else:
            self._cur.execute(f"SAVEPOINT gostore_{self._tx_depth}")
        self._tx_depth += 1
        return len(self._staged)

    def _commit(self, mark: int) -> list[Event]:
        """Close a level successfully (lock held); the outermost commit publishes the events."""
        depth = self._tx_depth - 1
        if depth:
            self._cur.execute(f"RELEASE gostore_{depth}")
            self._tx_depth = depth
            return _NO_EVENTS
        try:
            self._cur.execute(sql.COMMIT)
        except BaseException:
            self._rollback(mark)
            raise
        self._tx_depth = 0
        events, self._staged = self._staged, []
        return self._publish(events) if events else _NO_EVENTS

    def _rollback(self, mark: int) -> None:
        """Undo a level (lock held): its writes, its staged events and the quota ledgers."""
        depth = self._tx_depth - 1
        try:
            if depth:
                self._cur.execute(f"ROLLBACK TO gostore_{depth}")
                self._cur.execute(f"RELEASE gostore_{depth}")
            elif not self._conn.get_autocommit():
                self._cur.execute(sql.ROLLBACK)
        finally:
            self._tx_depth = depth
            del self._staged[mark:]
            self._ledgers.clear()  # counts may include rolled-back writes; rebuilt on demand

    @contextlib.contextmanager
    def _atomic(self, op: str, group: str | None = None) -> Iterator[None]:
        """Run the block as one write transaction (a savepoint when one is already open)."""
        self._ready(op)
        callbacks = _NO_EVENTS
        with self._lock:
            self._ready(op)
            try:
                mark = self._begin()
            except apsw.Error as exc:
                raise self._failure(op, exc, group) from exc
            try:
                yield
            except BaseException:
                self._rollback(mark)
                raise
            try:
                callbacks = self._commit(mark)
            except apsw.Error as exc:
                raise self._failure(op, exc, group) from exc
        if callbacks:
            self._hub.to_callbacks(callbacks)

    def transaction(self) -> contextlib.AbstractContextManager[Transaction]:
        """A write transaction: commits when the block ends, rolls back on an exception.

        Other threads wait until it ends; events are sent only after the commit.

        >>> with Store() as store:
        ...     with store.transaction() as tx:
        ...         tx.set("accounts", "alice", "10")
        ...         tx.count("accounts")
        1
        """
        from .transaction import open_transaction

        return open_transaction(self)

    # -- single-key reads -----------------------------------------------------------------------
    def get(self, group: str, key: str) -> str:
        """The value of ``key`` in ``group``.

        :raises NotFoundError: the key is absent or expired (an expired row is deleted here).
        """
        if type(group) is not str or type(key) is not str:
            check_text("store.get", group=group, key=key)
        # No closed check: a closed store's cursor raises an apsw.Error, which _failure maps.
        self._acquire()
        try:
            row = None
            try:
                if self._memory:
                    # In memory no other connection exists, so leaving the statement after its
                    # one row (as fetchone() does) holds nothing back; the next execute resets it.
                    for row in self._execute(_GET, (group, key)):  # noqa: B007
                        break
                else:
                    # NOTE: on a file, run the statement to its end: an unfinished SELECT keeps
                    # a read snapshot open, which stops WAL checkpoints until the next call.
                    for row in self._execute(_GET, (group, key)):  # noqa: B007
                        pass
            except apsw.Error as exc:
                raise self._failure("store.get", exc, group, key) from exc
            except UnicodeEncodeError:
                check_text("store.get", group=group, key=key)
                raise
            if row is not None:
                value, expires = row
                if expires is None or expires > now_ms():
                    return value  # type: ignore[no-any-return]
                callbacks = self._expire_key("store.get", group, key)
            else:
                callbacks = _NO_EVENTS
        finally:
            self._release()
        if callbacks:
            self._hub.to_callbacks(callbacks)
        raise NotFoundError.at("store.get", "not found", group, key)

    def _expire_key(self, op: str, group: str, key: str) -> list[Event]:
        """The lazy delete of an expired key (lock held); returns events for callbacks."""
        try:
            self._cur.execute(sql.DELETE_EXPIRED_KEY, (group, key, now_ms()))
        except apsw.Error as exc:
            raise self._failure(op, exc, group, key) from exc
        if self._conn.changes() and self._hub.active:
            return self._publish_one(EventType.EXPIRE, group, key, "")
        return _NO_EVENTS

    def exists(self, group: str, key: str) -> bool:
        """True when ``key`` is present and not expired."""
        if type(group) is not str or type(key) is not str:
            check_text("store.exists", group=group, key=key)
        if self._closed:
            raise self._closed_error("store.exists")
        lock = self._lock
        lock.acquire()
        try:
            return bool(self._cur.execute(sql.EXISTS, (group, key, now_ms())).fetchall())
        except apsw.Error as exc:
            raise self._failure("store.exists", exc, group, key) from exc
        except UnicodeEncodeError:
            check_text("store.exists", group=group, key=key)
            raise
        finally:
            lock.release()

    # -- single-key writes ----------------------------------------------------------------------
    def set(self, group: str, key: str, value: str) -> None:
        """Insert or replace ``key`` in ``group``; clears any TTL."""
        if type(group) is not str or type(key) is not str or type(value) is not str:
            check_text("store.set", group=group, key=key, value=value)
        # NOTE: _put inlined by hand: set() is the hottest write and a call costs ~10% of it.
        self._acquire()
        try:
            if self._ledgers:
                self._forget_ledger(group)
            try:
                self._execute(_SET, (group, key, value, None))
            except apsw.Error as exc:
                raise self._failure("store.set", exc, group, key) from exc
            except UnicodeEncodeError:
                check_text("store.set", group=group, key=key, value=value)
                raise
            hub = self._hub
            if not hub.active:
                return
            # Cheap pre-check so that non-matching watchers cost one C-level index lookup.
            if not (self._tx_depth or hub.callbacks or hub.match(group, key, False)):
                return
            callbacks = self._publish_one(_SET_EVENT, group, key, value)
        finally:
            self._release()
        if callbacks:
            self._hub.to_callbacks(callbacks)

    def set_with_ttl(self, group: str, key: str, value: str, ttl: TTL) -> None:
        """Insert or replace ``key`` so that it expires after ``ttl``.

        :param ttl: seconds (``int``/``float``) or a ``timedelta``; ``<= 0`` stores an
            already-expired entry, as go-store does.
        :raises ValueError: ``ttl`` is NaN or infinite.
        """
        if type(group) is not str or type(key) is not str or type(value) is not str:
            check_text("store.set_with_ttl", group=group, key=key, value=value)
        self._put(
            "store.set_with_ttl", group, key, value, expiry_ms("store.set_with_ttl", ttl, now_ms())
        )

    def _put(
        self,
        op: str,
        group: str,
        key: str,
        value: str,
        expires: int | None,
        guard: Guard | None = None,
    ) -> None:
        """Insert or replace one key (``set`` has this inlined); ``guard`` checks quotas."""
        if guard is not None:
            return self._write_one(
                op, _SET, (group, key, value, expires), _SET_EVENT, group, key, value, guard
            )
        self._acquire()
        try:
            if self._ledgers:
                self._forget_ledger(group)
            try:
                self._execute(_SET, (group, key, value, expires))
            except apsw.Error as exc:
                raise self._failure(op, exc, group, key) from exc
            except UnicodeEncodeError:
                check_text(op, group=group, key=key, value=value)
                raise
            hub = self._hub
            if not hub.active:
                return None
            if not (self._tx_depth or hub.callbacks or hub.match(group, key, False)):
                return None
            callbacks = self._publish_one(_SET_EVENT, group, key, value)
        finally:
            self._release()
        if callbacks:
            self._hub.to_callbacks(callbacks)
        return None

    def delete(self, group: str, key: str) -> None:
        """Remove ``key`` from ``group``; no error when it is absent."""
        if type(group) is not str or type(key) is not str:
            check_text("store.delete", group=group, key=key)
        # NOTE: _write_one inlined by hand, as in set(): delete is a hot path too.
        self._acquire()
        try:
            if self._ledgers:
                self._forget_ledger(group)
            try:
                self._execute(_DELETE, (group, key))
            except apsw.Error as exc:
                raise self._failure("store.delete", exc, group, key) from exc
            except UnicodeEncodeError:
                check_text("store.delete", group=group, key=key)
                raise
            if not self._hub.active or not self._conn.changes():
                return
            callbacks = self._publish_one(_DELETE_EVENT, group, key, "")
        finally:
            self._release()
        if callbacks:
            self._hub.to_callbacks(callbacks)

    def delete_group(self, group: str) -> None:
        """Remove every key of ``group``."""
        if type(group) is not str:
            check_text("store.delete_group", group=group)
        self._write_one(
            "store.delete_group", sql.DELETE_GROUP, (group,), EventType.DELETE_GROUP, group, ""
        )

    def _write_one(
        self,
        op: str,
        statement: str,
        args: tuple[Any, ...],
        kind: EventType,
        group: str,
        key: str,
        value: str = "",
        guard: Guard | None = None,
    ) -> None:
        """Run one single-statement write and publish its event.

        A SET always emits; a delete emits only when it removed a row. ``guard`` (quotas) checks
        before and accounts after the write, atomically with it.
        """
        if self._closed:
            raise self._closed_error(op)
        callbacks = _NO_EVENTS
        lock = self._lock
        lock.acquire()
        try:
            try:
                if guard is not None:
                    self._guarded(guard, op, statement, args, group, key, value)
                else:
                    if self._ledgers:
                        self._forget_ledger(group)
                    self._cur.execute(statement, args)
            except apsw.Error as exc:
                raise self._failure(op, exc, group, key or None) from exc
            except UnicodeEncodeError:
                check_text(op, group=group, key=key, value=value)
                raise
            if self._hub.active and (kind is _SET_EVENT or self._conn.changes()):
                callbacks = self._publish_one(kind, group, key, value)
        finally:
            lock.release()
        if callbacks:
            self._hub.to_callbacks(callbacks)

    def _guarded(
        self,
        guard: Guard,
        op: str,
        statement: str,
        args: tuple[Any, ...],
        group: str,
        key: str,
        value: str,
    ) -> None:
        """Check, write and account as one step (lock held).

        NOTE: on a file database another process may write too, so the check and the write run
        in one BEGIN IMMEDIATE transaction; in memory the lock alone makes them atomic.
        """
        own_tx = not self._tx_depth and self._path != sql.MEMORY
        if own_tx:
            self._cur.execute(sql.BEGIN)
        checked = False
        try:
            is_set = statement is sql.SET
            token = guard.before(
                self, op, group, key, value if is_set else None, args[3] if is_set else None
            )
            checked = True
            self._cur.execute(statement, args)
            guard.after(token, self._conn.changes() > 0)
            if own_tx:
                self._cur.execute(sql.COMMIT)
        except BaseException:
            # A refused write (QuotaExceededError from the check) leaves the ledgers exact; a
            # failure after the check may have left them ahead of the database.
            if checked:
                self._ledgers.clear()
            if own_tx and not self._conn.get_autocommit():
                self._cur.execute(sql.ROLLBACK)
            raise

    def _forget_ledger(self, group: str) -> None:
        """A write outside the quota path touched ``group``: its namespace ledger is stale."""
        namespace, colon, _ = group.partition(":")
        if colon:
            self._ledgers.pop(namespace, None)

    # -- prefix operations ----------------------------------------------------------------------
    def delete_prefix(self, prefix: str) -> int:
        """Remove every group whose name starts with ``prefix`` (literal, case-sensitive).

        :returns: rows physically removed, expired ones included.
        """
        if type(prefix) is not str:
            check_text("store.delete_prefix", prefix=prefix)
        return self._delete_range("store.delete_prefix", prefix)

    def _delete_range(self, op: str, prefix: str) -> int:
        lo, hi = prefix_range(prefix)
        with self._atomic(op):
            try:
                if self._hub.active:
                    groups = [
                        row[0] for row in self._cur.execute(sql.DELETE_PREFIX_RETURNING, (lo, hi))
                    ]
                    removed = len(groups)
                    self._publish(
                        [self._event(EventType.DELETE_GROUP, g) for g in dict.fromkeys(groups)]
                    )
                else:
                    self._cur.execute(sql.DELETE_PREFIX, (lo, hi))
                    removed = self._conn.changes()
            except apsw.Error as exc:
                raise self._failure(op, exc, prefix) from exc
            except UnicodeEncodeError:
                check_text(op, prefix=prefix)
                raise
            self._ledgers.clear()
        return removed

    # -- bulk writes ----------------------------------------------------------------------------
    def set_many(self, group: str, mapping: Mapping[str, str], ttl: TTL | None = None) -> None:
        """Write every entry of ``mapping`` in one transaction.

        :param ttl: as :meth:`set_with_ttl`; ``None`` clears any TTL, as :meth:`set` does.
        """
        self._set_many("store.set_many", group, mapping, ttl)

    def _set_many(
        self,
        op: str,
        group: str,
        mapping: Mapping[str, str],
        ttl: TTL | None,
        guard: Guard | None = None,
    ) -> None:
        rows = self._many_rows(op, group, mapping, ttl)
        with self._atomic(op, group):
            self._write_rows(op, group, rows, guard)

    def _many_rows(
        self, op: str, group: str, mapping: Mapping[str, str], ttl: TTL | None
    ) -> list[tuple[str, str, str, int | None]]:
        if type(group) is not str:
            check_text(op, group=group)
        if not isinstance(mapping, Mapping):
            raise TypeError(f"{op}: mapping must be a Mapping, not {type(mapping).__name__}")
        expires = None if ttl is None else expiry_ms(op, ttl, now_ms())
        rows = [(group, k, v, expires) for k, v in mapping.items()]
        for _, k, v, _ in rows:
            if type(k) is not str or type(v) is not str:
                check_text(op, key=k, value=v)
        return rows

    def _write_rows(
        self,
        op: str,
        group: str,
        rows: list[tuple[str, str, str, int | None]],
        guard: Guard | None = None,
    ) -> None:
        """Write ``rows`` inside the caller's transaction and stage their events."""
        try:
            if guard is None:
                self._cur.executemany(sql.SET, rows)
            else:
                for row in rows:
                    token = guard.before(self, op, group, row[1], row[2], row[3])
                    self._cur.execute(sql.SET, row)
                    guard.after(token, True)
        except apsw.Error as exc:
            raise self._failure(op, exc, group) from exc
        except UnicodeEncodeError:
            for _, k, v, _ in rows:
                check_text(op, group=group, key=k, value=v)
            raise
        if self._ledgers and guard is None:
            self._forget_ledger(group)
        if self._hub.active:
            stamp = time.time()
            self._publish([Event(EventType.SET, group, k, v, stamp) for _, k, v, _ in rows])

    # -- expiry ---------------------------------------------------------------------------------
    def purge_expired(self) -> int:
        """Delete expired rows now; returns how many."""
        return self._purge("store.purge_expired", sql.PURGE, sql.PURGE_RETURNING, ())

    def _purge(self, op: str, plain: str, returning: str, args: tuple[Any, ...]) -> int:
        self._ready(op)
        callbacks = _NO_EVENTS
        with self._lock:
            self._ready(op)
            now = now_ms()
            try:
                if self._hub.active:
                    rows = self._cur.execute(returning, (*args, now)).fetchall()
                    removed = len(rows)
                    callbacks = self._publish(
                        [self._event(EventType.EXPIRE, g, k) for g, k in rows]
                    )
                else:
                    self._cur.execute(plain, (*args, now))
                    removed = self._conn.changes()
            except apsw.Error as exc:
                raise self._failure(op, exc) from exc
        if callbacks:
            self._hub.to_callbacks(callbacks)
        return removed


    # -- events API -----------------------------------------------------------------------------
    def watch(self, group: str, key: str, *, buffer: int = 16) -> Watcher:
        """A :class:`Watcher` receiving the events on ``(group, key)``; ``"*"`` matches any.

        :param buffer: events held before new ones are dropped (and counted).
        """
        return self._watch("store.watch", group, key, buffer, None)

    def _watch(self, op: str, group: str, key: str, buffer: int, namespace: str | None) -> Watcher:
        check_text(op, group=group, key=key)
        if isinstance(buffer, bool) or not isinstance(buffer, int):
            raise TypeError(f"{op}: buffer must be int, not {type(buffer).__name__}")
        if buffer < 1:
            raise ValueError(f"{op}: buffer must be >= 1, got {buffer}")
        self._ready(op)
        return self._hub.watch(group, key, buffer, namespace)

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
        self._ready("store.on_change")
        return self._hub.on_change(callback)

    # -- namespaces -----------------------------------------------------------------------------
    def scoped(self, namespace: str, quota: QuotaConfig | None = None) -> ScopedStore:
        """A :class:`ScopedStore` for ``namespace``, as ``ScopedStore(self, namespace, quota)``."""
        from .scope import ScopedStore

        self._ready("store.scoped")  # SPEC 2: every method but close/unwatch raises once closed
        return ScopedStore(self, namespace, quota)


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


class _DeadCursor:
    """Stands in for the cursor of a Store inherited through fork(): every use fails, and the
    hot paths map the failure to the fork error without checking a flag on each call."""

    def execute(self, *args: object) -> Any:
        raise apsw.ConnectionClosedError("Store inherited through fork()")

    executemany = execute


def _reason(exc: BaseException, busy_timeout: float | None = None) -> str:
    """A plain-words reason for an APSW failure (the APSW exception stays chained)."""
    if isinstance(exc, apsw.BusyError):
        waited = f" after waiting {busy_timeout:g} s" if busy_timeout is not None else ""
        return f"the database is locked by another connection{waited} (SQLITE_BUSY)"
    if isinstance(exc, apsw.FullError):
        return "the disk or database is full (SQLITE_FULL)"
    if isinstance(exc, apsw.ReadOnlyError):
        return "the database is read-only (SQLITE_READONLY)"
    if isinstance(exc, apsw.CantOpenError):
        return f"cannot open the database file ({exc})"
    if isinstance(exc, apsw.NotADBError):
        return "the file is not a SQLite database (SQLITE_NOTADB)"
    if isinstance(exc, apsw.CorruptError):
        return "the database file is corrupt (SQLITE_CORRUPT)"
    return f"SQLite error {type(exc).__name__}: {exc}"
