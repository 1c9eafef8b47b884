"""The SQLite engine: one writer connection, go-store's file format, batch group reads.

The writer connection is shared by every thread of a Store. Whoever holds :attr:`lock` (a
reentrant :class:`~gostore._accel.GateLock`) has it to itself: writes and transaction control
run with the caller holding it, and a transaction holds it from ``begin()`` to its
``commit()``/``rollback()``, so other threads' writes wait for it and the owning thread's own
calls join it.

Single statements outside a transaction (``get`` in memory, ``put_free``) do not take the
lock: a lock around each statement makes threads queue behind it and hand the GIL back and
forth, three times slower with 4 threads than the statements alone. They pass :attr:`gate`
instead, each on a cursor of its own, while nobody holds the lock; taking the lock shuts the
gate and waits for the statements in flight. (APSW lets a statement wait a while for
another thread's statement on the same connection, and refuses a connection-level call such
as ``changes()`` at once: so the lock's holder must have the connection alone, and a gated
statement that waited too long runs again.)

Reads of a file store run on a bounded pool of read-only connections (``sqlite_readers``), so
they run beside the writer and beside each other and never wait for another thread's
transaction: they see the last committed state. A thread inside its own transaction reads on
the writer, which sees its own writes. An in-memory database has one connection only: its
reads take the lock, and so wait for another thread's transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

import apsw

from .._accel import BoundStatement, Gate, GatedStatement, GateLock, PooledRead
from . import DatabaseError, EngineOptions, Row, Totals
from . import sqlite_schema as sql
from .sqlite_groups import NOT_UTF8 as _NOT_UTF8
from .sqlite_groups import GroupReads, _text
from .sqlite_maintenance import READ_ONLY as _READ_ONLY
from .sqlite_maintenance import Maintenance
from .sqlite_readers import PooledReads, ReaderPool, open_reader
from .sqlite_schema import failure_reason as _reason

__all__ = ("SQLiteEngine",)


class SQLiteEngine(PooledReads, GroupReads, Maintenance):
    """:class:`~gostore.engine.Engine` on one APSW connection."""

    feed = False  # engine.sqlite_feed records changes

    def __init__(self, path: str, options: EngineOptions) -> None:
        self.target = path
        self.shared = path != sql.MEMORY
        #: open while statements may run without the lock (see the module docstring)
        self.gate = Gate()
        self.lock: Any = GateLock(self.gate)
        self.depth = 0
        self._busy_timeout = options.busy_timeout
        self.readonly = options.readonly
        if options.readonly and path == sql.MEMORY:
            raise DatabaseError("an in-memory database cannot be opened read-only: it is empty")
        try:
            self._conn = sql.connect(
                path, options.busy_timeout, options.synchronous, readonly=options.readonly,
                cache_size_mb=options.cache_size_mb, mmap_size_mb=options.mmap_size_mb,
            )
        except sql.SchemaError as exc:
            raise DatabaseError(f"cannot open {path!r}: {exc}") from exc
        except apsw.Error as exc:
            raise DatabaseError(f"cannot open {path!r}: {self._reason(exc)}") from exc
        self._busy_handler = sql.BusyWaiter(options.busy_timeout)
        self._conn.set_busy_handler(self._busy_handler)
        self._cur = self._conn.cursor()
        self._files = (self._conn.filename, self._conn.filename_wal)
        self._free: list[apsw.Cursor] = []  # the idle cursors of the gated statements
        self._memory = path == sql.MEMORY
        self._execute: Any = self._cur.execute
        self._owner = 0  # the thread with an open transaction (0: none)
        self._readers: ReaderPool | None = None
        if not self._memory:
            self._readers = ReaderPool(
                partial(
                    open_reader, self._files[0], options.busy_timeout,
                    options.cache_size_mb, options.mmap_size_mb,
                )
            )
        self._bind_hot_paths()
        # NOTE: the batch reads join UTF-8 bytes with 0xFF; a UTF-16 database returns UTF-16
        # bytes from the same SQL, so such a file is read row by row.
        encoding = self._conn.execute("PRAGMA encoding").fetchall()[0][0]
        self._batch = str(encoding).upper() == "UTF-8"
        self._poisoned_at = 0  # the transaction level a failure poisoned (0: none)
        self._poison: DatabaseError | None = None

    def _bind_hot_paths(self) -> None:
        """``get`` and ``put`` are compiled single calls (see ``BoundStatement``), not methods:
        on the hottest paths a Python call level costs more than the rest of the facade."""
        mapped = (apsw.Error, UnicodeDecodeError)
        #: ``get(group, key)``: ``(value, expires)`` of the row, expired or not, or ``None``.
        #: NOTE: in memory no other connection exists, so leaving the statement after its one
        #: row holds nothing back; on a file it runs to its end, as an unfinished SELECT keeps a
        #: read snapshot open, which stops WAL checkpoints until the next call.
        rows = 1 if self._memory else 2
        self._get = BoundStatement(self._execute, sql.GET, rows, mapped, self._map, self.lock)
        new_cursor = self._conn.cursor
        busy = apsw.ThreadingViolationError
        self.get: Any = GatedStatement(
            self.gate, False, self._free, new_cursor, sql.GET, rows, mapped, self._map, self._get,
            busy,
        )
        #: ``get_now(group, key)``: in memory, ``get`` while the gate lets it, else False; a
        #: file's pages may have to come from the disk, so there always False
        self.get_now: Any = _not_now
        if self._memory:
            self.get_now = GatedStatement(
                self.gate, False, self._free, new_cursor, sql.GET, rows, mapped, self._map,
                _not_now, busy,
            )
        readers = self._readers
        if readers is not None:
            #: NOTE: a thread in its own transaction (``owner``) reads on the writer instead.
            self.get = PooledRead(
                self._get, sql.GET, readers.idle, readers.take, readers.notify,
                readers.waiting, mapped, self._map_read,
            )
            self.get.owner = self._owner
        #: ``put(group, key, value, expires)``: insert or replace one row (caller holds lock).
        self.put = BoundStatement(self._execute, sql.SET, 0, mapped, self._map)
        #: ``put_free(group, key, value, expires)``: ``put`` without the lock; False (and
        #: nothing written) while the gate is shut to writes.
        self.put_free = GatedStatement(
            self.gate, True, self._free, new_cursor, sql.SET, 0, mapped, self._map, _not_now,
            busy,
        )
        #: ``put_now(...)``: in memory, ``put_free``; on a file always False (see get_now)
        self.put_now: Any = self.put_free if self._memory else _not_now
        #: ``row_size(group, key)``: ``(bytes, expires)`` of the row, or ``None`` (the quota
        #: check, under the caller's lock): one call, as it runs beside every checked write.
        self.row_size = BoundStatement(self._execute, sql.ROW_SIZE, rows, mapped, self._map)

    def _use(self, execute: Any) -> None:
        """Route every statement through ``execute`` (the cursor's, or ``_refuse``)."""
        self._execute = execute
        self._get.execute = execute
        self.put.execute = execute
        self.row_size.execute = execute

    def _map(self, exc: BaseException) -> DatabaseError:
        if isinstance(exc, apsw.Error):
            return self._fail(exc)
        return DatabaseError(_NOT_UTF8)  # TEXT written by another program

    # -- failures -------------------------------------------------------------------------------
    def _reason(self, exc: BaseException) -> str:
        if self.readonly and isinstance(exc, apsw.ReadOnlyError):
            return _READ_ONLY
        return _reason(exc, self._busy_timeout)

    def _fail(self, exc: apsw.Error) -> DatabaseError:
        """Map ``exc``; inside a transaction, poison it (see the engine protocol)."""
        error = DatabaseError(self._reason(exc), busy=isinstance(exc, apsw.BusyError))
        if self.depth and not self._poisoned_at:
            # SQLite may have rolled back the whole transaction (SQLITE_FULL, IOERR, NOMEM...):
            # then autocommit is back on and every savepoint is gone.
            lost = self._conn.getautocommit()
            self._poisoned_at = 1 if lost else self.depth
            self._poison = error
            self._use(self._refuse)
        return error

    def _refuse(self, *args: object) -> Any:
        poison = self._poison
        if poison is None:
            raise DatabaseError("the database is closed")
        raise DatabaseError(
            "the transaction failed earlier and will be rolled back "
            f"(first failure: {poison.reason}); leave the transaction block"
        )

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        with self.lock:
            self.gate.shut()  # for good: every statement now runs under the lock, and fails
            self._free.clear()
            self._poison = None
            self._use(self._refuse)
            if self._readers is not None:
                self._readers.close()
            self._conn.close()

    def abandon(self) -> None:
        # NOTE: never close the parent's connection from a child: closing releases locks the
        # parent relies on. Keep it referenced (so it is not finalised either) and refuse use.
        _INHERITED.append(self._conn)
        if self._readers is not None:
            self._readers.abandon(_INHERITED)
            self._readers = None
        # The parent's lock may have been held at fork time, and a parent's thread may have
        # been past the gate: a new lock, and a new gate shut for good.
        self.gate = Gate()
        self.gate.shut_all = 1
        self.lock = GateLock(self.gate)
        self._free = []
        self._owner = 0
        self._poison = None
        self._execute = self._refuse
        self._bind_hot_paths()

    # -- single-key reads -----------------------------------------------------------------------
    def async_reads(self) -> None:
        return None  # a read waits for no server: in memory the loop uses get_now()

    def exists(self, group: str, key: str, now: int) -> bool:
        return bool(self._read(sql.EXISTS, (group, key, now)))

    def get_many(self, group: str, keys: list[str], now: int) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._reading() as on:
            try:
                for key in keys:
                    rows = on.execute(sql.GET_MANY_ROW, (group, key, now)).fetchall()
                    if rows:
                        found[key] = _text(rows[0][0], key)
            except apsw.Error as exc:
                raise on.fail(exc) from exc
            except UnicodeDecodeError as exc:
                raise DatabaseError(_NOT_UTF8) from exc
        return found

    def _fetch(self, statement: str, args: tuple[Any, ...]) -> list[Any]:
        with self.lock:
            try:
                return self._execute(statement, args).fetchall()  # type: ignore[no-any-return]
            except apsw.Error as exc:
                raise self._fail(exc) from exc
            except UnicodeDecodeError as exc:  # TEXT written by another program
                raise DatabaseError(_NOT_UTF8) from exc

    # -- group and prefix reads -----------------------------------------------------------------
    def count(self, group: str, now: int) -> int:
        return int(self._read(sql.COUNT, (group, now))[0][0])

    def count_range(self, lo: str, hi: str | bytes, now: int) -> int:
        return int(self._read(sql.COUNT_PREFIX, (lo, hi, now))[0][0])

    def groups_page(
        self, lo: str, hi: str | bytes, after: str | None, now: int, limit: int
    ) -> list[str]:
        if after is None:
            rows = self._read(sql.GROUPS_FIRST, (lo, hi, lo, now, limit))
        else:
            rows = self._read(sql.GROUPS_AFTER, (lo, hi, after, now, limit))
        return [_text(row[0], None) for row in rows]

    def dump(self, now: int) -> Iterator[Row]:
        # Its own cursor: the caller holds the lock until the iterator ends, and the store's
        # cursor stays free for the caller's other calls in between.
        try:
            for group, key, value, expires in self._conn.cursor().execute(sql.EXPORT, (now,)):
                yield Row(_text(group, key), _text(key, key), _text(value, key), expires)
        except apsw.Error as exc:
            raise self._fail(exc) from exc
        except UnicodeDecodeError as exc:
            raise DatabaseError(_NOT_UTF8) from exc

    # -- writes ---------------------------------------------------------------------------------
    def put_many(self, rows: Iterable[tuple[str, str, str, int | None]]) -> None:
        if self._poison is not None:
            self._refuse()
        try:
            self._cur.executemany(sql.SET, rows)
        except apsw.Error as exc:
            raise self._fail(exc) from exc

    def _changed(self, statement: str, args: tuple[Any, ...]) -> bool:
        # NOTE: changes() counts the connection's last write: the caller's lock keeps every
        # other statement off the connection. (RETURNING would not need that, but costs a
        # single-key delete more than twice as much.)
        try:
            self._execute(statement, args)
        except apsw.Error as exc:
            raise self._fail(exc) from exc
        return self._conn.changes() > 0

    def delete(self, group: str, key: str) -> bool:
        return self._changed(sql.DELETE, (group, key))

    def delete_expired(self, group: str, key: str, now: int) -> bool:
        if self.depth or not self.shared:
            return self._changed(sql.DELETE_EXPIRED_KEY, (group, key, now))
        # NOTE: the lazy delete is a courtesy of a read: it must not make the read wait for
        # another connection's write lock, so it tries once (the purge removes the row later).
        self._conn.set_busy_handler(None)
        try:
            return self._changed(sql.DELETE_EXPIRED_KEY, (group, key, now))
        finally:
            self._conn.set_busy_handler(self._busy_handler)

    def delete_group(self, group: str) -> bool:
        return self._changed(sql.DELETE_GROUP, (group,))

    def delete_range(self, lo: str, hi: str | bytes) -> list[str]:
        return [row[0] for row in self._fetch(sql.DELETE_PREFIX_RETURNING, (lo, hi))]

    def purge(self, lo: str, hi: str | bytes, now: int) -> list[tuple[str, str]]:
        return [(g, k) for g, k in self._fetch(sql.PURGE_RANGE_RETURNING, (lo, hi, now))]

    # -- quota support --------------------------------------------------------------------------
    def range_totals(self, lo: str, hi: str | bytes, now: int) -> list[Totals]:
        return [Totals(*row) for row in self._fetch(sql.NAMESPACE_TOTALS, (lo, hi, now))]

    def range_expiring(self, lo: str, hi: str | bytes, now: int) -> list[tuple[str, str, int, int]]:
        return [tuple(row) for row in self._fetch(sql.NAMESPACE_EXPIRING, (lo, hi, now))]

    def version(self, namespace: str) -> object:
        # SQLite tells whether anything changed, not where; in memory nothing else can write.
        return None if self._memory else self._fetch(sql.DATA_VERSION, ())[0][0]

    def data_version(self) -> object:
        """Changes when another connection commits (``PRAGMA data_version``)."""
        if self._memory:  # nothing else can write an in-memory database
            return None
        return self._fetch(sql.DATA_VERSION, ())[0][0]

    def lock_namespace(self, namespace: str) -> None:
        """BEGIN IMMEDIATE already keeps every other connection from writing."""

    # -- transactions ---------------------------------------------------------------------------
    def begin(self) -> None:
        if self.readonly:  # SQLite lets a read-only connection BEGIN IMMEDIATE
            raise DatabaseError(_READ_ONLY)
        # Held until this level's commit() or rollback(): it also keeps every gated statement
        # out of the transaction.
        self.lock.acquire()
        try:
            if self.depth == 0:
                self._execute(sql.BEGIN)
                self._own(threading.get_ident())
            else:
                self._execute(f"SAVEPOINT gostore_{self.depth}")
        except apsw.Error as exc:
            self.lock.release()
            raise self._fail(exc) from exc
        except BaseException:
            self.lock.release()
            raise
        self.depth += 1

    def commit(self) -> None:
        if self._poisoned_at:
            poison = self._poison
            self.rollback()
            raise DatabaseError(
                "the transaction was rolled back because a statement in it failed"
                + (f" ({poison.reason})" if poison is not None else "")
            )
        level = self.depth
        try:
            if level > 1:
                self._execute(f"RELEASE gostore_{level - 1}")
            else:
                self._execute(sql.COMMIT)
        except apsw.Error as exc:
            error = self._fail(exc)
            self.rollback()
            raise error from exc
        self.depth = level - 1
        if not self.depth:
            self._own(0)
        self.lock.release()

    def rollback(self) -> None:
        level = self.depth
        try:
            lost = self._conn.getautocommit()  # SQLite already ended the whole transaction
            if not lost:
                if level > 1:
                    self._cur.execute(f"ROLLBACK TO gostore_{level - 1}")
                    self._cur.execute(f"RELEASE gostore_{level - 1}")
                else:
                    self._cur.execute(sql.ROLLBACK)
        except apsw.Error:
            # The level cannot be undone on its own: the whole transaction must go.
            self._poisoned_at = 1
            if level == 1 and not self._conn.getautocommit():
                raise
        finally:
            self.depth = level - 1
            if not self.depth:
                self._own(0)
            if self._poisoned_at >= level:  # the failed level is undone: usable again
                self._poisoned_at = 0
                self._poison = None
                self._use(self._cur.execute)
            self.lock.release()

    # -- atomic read-modify-write (caller holds lock, inside begin() ... commit()) --------------
    def get_for_update(self, group: str, key: str) -> tuple[Any, Any] | None:
        # BEGIN IMMEDIATE already holds the database's write lock: no other connection can
        # change the key before this transaction ends, so a plain read is enough.
        row: tuple[Any, Any] | None = self.get(group, key)
        return row

    def set_expiry(self, group: str, key: str, expires: int | None) -> bool:
        return self._changed(sql.SET_EXPIRY, (expires, group, key))


def _not_now(*args: object) -> bool:
    return False  # put_free or get_now while the gate is shut: the caller takes the lock


def versions() -> str:
    """The SQLite library and APSW versions, for ``gostore --version``."""
    return f"SQLite {apsw.sqlite_lib_version()}, APSW {apsw.apswversion()}"


_INHERITED: list[apsw.Connection] = []  # connections inherited through fork(), never closed
