"""Read-only connections of a file store, so that reads run beside a writer and beside each
other: in WAL mode a reader sees the last committed state and never waits for a writer.

The pool is bounded and shared by every thread (threads come and go, so nothing is kept per
thread). A read takes an idle reader, runs one statement to its end (so no snapshot stays open
between calls, and the next read sees every commit made before it) and puts it back. When every
reader is busy and the bound is reached, the read waits for one to come back.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import apsw

from . import DatabaseError
from . import sqlite_schema as sql
from .sqlite_groups import NOT_UTF8, On

__all__ = ("PooledReads", "ReaderPool", "open_reader")

#: the most reader connections a store opens; each has its own page cache
MAX_READERS = 8


class ReaderPool:
    """Reader connections opened on demand, up to ``size``."""

    def __init__(
        self, open_reader: Callable[[], apsw.Connection], size: int = MAX_READERS
    ) -> None:
        self._open = open_reader
        self._size = size
        self._cond = threading.Condition(threading.Lock())
        #: idle reader cursors; PooledRead pops and appends them without taking ``_cond``
        self.idle: list[Any] = []
        #: how many threads wait in take() (a list, so the compiled reader can test it cheaply)
        self.waiting = [0]
        self._conns: list[apsw.Connection] = []
        self._opening = 0
        self._closed = False
        #: no reader can be opened (e.g. the file's directory is not writable): use the writer
        self.failed = False

    def take(self) -> Any:
        """An idle reader cursor, waiting for one when the bound is reached; ``None`` when no
        reader can be opened (the caller then reads on the writer connection)."""
        with self._cond:
            while True:
                if self._closed:
                    raise DatabaseError("the database is closed")
                if self.idle:
                    return self.idle.pop()
                if self.failed:
                    return None
                if len(self._conns) + self._opening < self._size:
                    self._opening += 1
                    break
                self.waiting[0] += 1
                try:
                    self._cond.wait()
                finally:
                    self.waiting[0] -= 1
        conn = None
        try:
            conn = self._open()
        except apsw.Error:
            # Read on the writer instead: slower, never wrong.
            self.failed = True
        finally:
            with self._cond:
                self._opening -= 1
                if conn is not None:
                    if self._closed:
                        conn.close()
                        conn = None
                    else:
                        self._conns.append(conn)
                self._cond.notify_all()
        if conn is None:
            if self._closed:
                raise DatabaseError("the database is closed")
            return None
        return conn.cursor()

    def give(self, cursor: Any) -> None:
        """Put back a cursor from :meth:`take`."""
        self.idle.append(cursor)
        if self.waiting[0]:
            self.notify()

    def notify(self) -> None:
        """Wake the threads waiting for a reader (one has just come back)."""
        with self._cond:
            self._cond.notify_all()

    @contextlib.contextmanager
    def reader(self) -> Iterator[Any]:
        """A reader cursor for the block, or ``None`` (read on the writer instead)."""
        try:
            cursor = self.idle.pop()
        except IndexError:
            cursor = self.take()
        try:
            yield cursor
        finally:
            if cursor is not None:
                self.give(cursor)

    def close(self) -> None:
        """Close every reader, waiting for those in use to come back."""
        with self._cond:
            self._closed = True
            self.waiting[0] += 1
            try:
                while self._conns or self._opening:
                    while True:
                        try:
                            conn = self.idle.pop().connection
                        except IndexError:  # a read may take an idle reader meanwhile
                            break
                        conn.close()
                        self._conns.remove(conn)
                    if self._conns or self._opening:
                        self._cond.wait()
            finally:
                self.waiting[0] -= 1

    def abandon(self, keep: list[apsw.Connection]) -> None:
        """After ``fork()``: never use or close the parent's readers; keep them referenced in
        ``keep`` so that they are not finalised either."""
        self._cond = threading.Condition(threading.Lock())  # may have been held at fork time
        keep.extend(self._conns)
        self._conns = []
        self.idle.clear()
        self._closed = True


def open_reader(
    path: str, busy_timeout: float, cache_size_mb: float, mmap_size_mb: float
) -> apsw.Connection:
    """A read-only connection to the file, with the writer's busy handler and cache sizes."""
    conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
    try:
        conn.set_busy_handler(sql.BusyWaiter(busy_timeout))
        conn.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
        sql.set_cache(conn, cache_size_mb, mmap_size_mb)
        # Fail now, not at the first read, when the file cannot be read this way.
        conn.execute("SELECT 1 FROM entries LIMIT 0").fetchall()
    except BaseException:
        conn.close()
        raise
    return conn


class PooledReads:
    """Where the reads of :class:`~gostore.engine.sqlite.SQLiteEngine` run."""

    if TYPE_CHECKING:
        lock: threading.RLock
        depth: int
        get: Any
        _conn: apsw.Connection
        _execute: Any
        _owner: int
        _readers: ReaderPool | None

        def _fail(self, exc: apsw.Error) -> DatabaseError: ...

        def _reason(self, exc: BaseException) -> str: ...

    def _map_read(self, exc: BaseException) -> DatabaseError:
        """As :meth:`_map` for a reader: its failure never poisons another thread's
        transaction."""
        if isinstance(exc, apsw.Error):
            return DatabaseError(self._reason(exc), busy=isinstance(exc, apsw.BusyError))
        return DatabaseError(NOT_UTF8)

    def _own(self, owner: int) -> None:
        """Record the thread with an open transaction, whose reads go to the writer."""
        self._owner = owner
        if self._readers is not None:
            self.get.owner = owner

    @contextlib.contextmanager
    def _reading(self) -> Iterator[On]:
        """Where a read runs: a reader of the pool, or the writer (lock held) in the calling
        thread's own transaction, in memory, or when no reader can be opened."""
        readers = self._readers
        if readers is not None and self._owner != threading.get_ident():
            with readers.reader() as cursor:
                if cursor is not None:
                    yield On(cursor.connection, cursor.execute, self._map_read, False)
                    return
        with self.lock:
            yield On(self._conn, self._execute, self._fail, bool(self.depth))

    def _read(self, statement: str, args: tuple[Any, ...]) -> list[Any]:
        """The rows of one read statement (see :meth:`_reading`)."""
        with self._reading() as on:
            try:
                return on.execute(statement, args).fetchall()  # type: ignore[no-any-return]
            except apsw.Error as exc:
                raise on.fail(exc) from exc
            except UnicodeDecodeError as exc:  # TEXT written by another program
                raise DatabaseError(NOT_UTF8) from exc
