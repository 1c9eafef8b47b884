"""The SQLite engine's group reads: whole groups and pages, each batch decoded in one step, and
large groups in key ranges so that only one range's batch exists beside the result."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any, NamedTuple

import apsw

from .._accel import decode_group, decode_pairs
from .._types import KeyValue
from . import DatabaseError
from . import sqlite_schema as sql

__all__ = ("NOT_UTF8", "GroupReads", "On")

NOT_UTF8 = "a stored group, key or value is not valid UTF-8"
_NOT_UTF8 = NOT_UTF8

# A group of more than about _CHUNK rows is read in key ranges of _CHUNK rows. SQLite runs
# about 16 virtual-machine steps per row of GROUP_BLOB and calls the progress handler every
# _STEPS steps; it counts the steps of a cached statement across its runs, so the first call
# may come at any point of a run: the statement is stopped at the call after _WHOLE_CALLS,
# after 4 to 5 times _STEPS steps (16K to 20K rows). Rare calls: each costs a GIL hand-off.
_CHUNK = 16384
_STEPS = 65536
_WHOLE_CALLS = 4


class _Budget:
    """A progress handler that interrupts the statement on its ``left + 1``-th call."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = 0

    def __call__(self) -> bool:
        self.left -= 1
        return self.left < 0


class On(NamedTuple):
    """Where a read runs: the writer connection (lock held) or a reader of the pool."""

    conn: apsw.Connection
    execute: Any
    #: maps a driver failure (on the writer inside a transaction it poisons the transaction)
    fail: Any
    #: the read runs inside the calling thread's own transaction
    in_transaction: bool


class GroupReads:
    """The group and page reads of :class:`~gostore.engine.sqlite.SQLiteEngine`."""

    if TYPE_CHECKING:
        lock: threading.RLock
        shared: bool
        depth: int
        _conn: apsw.Connection
        _batch: bool

        def _fail(self, exc: apsw.Error) -> DatabaseError: ...

        def _reading(self) -> contextlib.AbstractContextManager[On]: ...

    def entries(self, group: str, now: int) -> dict[str, str]:
        with self._reading() as on:
            found = self._whole_group(on, group, now) if self._batch else None
            if found is None:
                found = self._group_rows(on, group, now)
        return found

    def _whole_group(self, on: On, group: str, now: int) -> dict[str, str] | None:
        """The group in one batch statement when it has at most about ``_CHUNK`` rows, else in
        key ranges of ``_CHUNK`` rows (lock held); ``None``: read it row by row.

        NOTE: the one unordered statement is the fastest read, but SQLite's buffer, the two
        blobs and the dict being built live at once: for a large group that is a third more
        memory than the dict itself. Only SQLite knows the size as it goes, so a progress
        handler stops the statement after about ``_CHUNK`` rows' work (a length limit would
        not: group_concat reports it only after reading every row), and the group is read in
        ranges instead, with only one range's blobs beside the dict.
        """
        conn = on.conn
        budget = _Budget()  # one a call: readers of other threads run at the same time
        budget.left = _WHOLE_CALLS
        conn.set_progress_handler(budget, _STEPS)
        try:
            row = on.execute(sql.GROUP_BLOB, (group, now)).fetchall()[0]
        except apsw.InterruptError:
            row = None
        except apsw.TooBigError:  # a group of very large values
            return None
        except apsw.Error as exc:
            raise on.fail(exc) from exc
        finally:
            conn.set_progress_handler(None)
        if row is None:
            return self._chunked(on, group, now)
        found: dict[str, str] | None = self._decode(decode_group, *row)
        return found

    def _chunked(self, on: On, group: str, now: int) -> dict[str, str] | None:
        # One read transaction, so every chunk comes from the same snapshot even when another
        # connection commits in between (a transaction of the caller's already is one).
        snapshot = self.shared and not on.in_transaction
        found: dict[str, str] = {}
        execute = on.execute
        try:
            if snapshot:
                execute(sql.BEGIN_READ)
            try:
                lo: Any = ""  # every text key sorts at or after ""
                while True:
                    # The chunk's end: a walk of the key index alone, a fraction of the read.
                    end = execute(sql.KEY_AT, (group, lo, _CHUNK)).fetchall()
                    if end:
                        row = execute(sql.RANGE_BLOB, (group, now, lo, end[0][0])).fetchall()
                    else:
                        row = execute(sql.TAIL_BLOB, (group, now, lo)).fetchall()
                    chunk = self._decode(decode_group, *row[0])
                    if chunk is None:
                        return None
                    # NOTE: the first chunk goes in as pairs: updating an empty dict from a
                    # dict clones its table, and the decoder's presized table has the general
                    # layout, a third larger per entry than the str-keyed one a dict grows.
                    found.update(chunk if found else chunk.items())
                    if not end:
                        return found
                    lo = end[0][0]
            finally:
                if snapshot:
                    execute(sql.COMMIT)
        except apsw.TooBigError:
            return None
        except apsw.Error as exc:
            raise on.fail(exc) from exc

    @staticmethod
    def _group_rows(on: On, group: str, now: int) -> dict[str, str]:
        try:
            rows = on.execute(sql.GROUP_ROWS, (group, now)).fetchall()
        except apsw.Error as exc:
            raise on.fail(exc) from exc
        except UnicodeDecodeError as exc:  # TEXT written by another program
            raise DatabaseError(_NOT_UTF8) from exc
        return {_text(k, k): _text(v, k) for k, v in rows}

    @staticmethod
    def _decode(decode: Any, count: int, text: int, keys: Any, values: Any) -> Any:
        if count != text:
            return None
        try:
            return decode(count, keys, values)
        except UnicodeDecodeError as exc:
            raise DatabaseError(_NOT_UTF8) from exc

    def page(self, group: str, now: int, limit: int, offset: int) -> list[KeyValue]:
        return self._page(sql.PAGE_OFFSET_BLOB, sql.PAGE_OFFSET_ROWS, (group, now, limit, offset))

    def page_after(self, group: str, after: str, now: int, limit: int) -> list[KeyValue]:
        return self._page(sql.PAGE_AFTER_BLOB, sql.PAGE_AFTER_ROWS, (group, after, now, limit))

    def _page(self, blob_sql: str, rows_sql: str, args: tuple[Any, ...]) -> list[KeyValue]:
        with self._reading() as on:
            page: list[KeyValue] | None = None
            if self._batch:
                try:
                    count, text, keys, values = on.execute(blob_sql, args).fetchall()[0]
                    page = self._decode(_decode_pairs, count, text, keys, values)
                except apsw.TooBigError:  # a batch over SQLite's length limit
                    page = None
                except apsw.Error as exc:
                    raise on.fail(exc) from exc
            if page is None:  # a UTF-16 file, a row that is not text, or very large values
                try:
                    rows = on.execute(rows_sql, args).fetchall()
                except apsw.Error as exc:
                    raise on.fail(exc) from exc
                except UnicodeDecodeError as exc:
                    raise DatabaseError(_NOT_UTF8) from exc
                page = [KeyValue(_text(k, k), _text(v, k)) for k, v in rows]
        return page


def _decode_pairs(count: int, keys: bytes | None, values: bytes | None) -> list[KeyValue] | None:
    pairs: list[KeyValue] | None = decode_pairs(count, keys, values, KeyValue)
    return pairs


def _text(value: object, key: object) -> str:
    """A stored value as ``str``; rows written by other programs may hold BLOBs or NULLs."""
    if type(value) is str:
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise DatabaseError(_where("a stored BLOB is not valid UTF-8", key)) from None
    raise DatabaseError(_where(f"a stored value is {type(value).__name__}, not text", key))


def _where(reason: str, key: object) -> str:
    return reason if key is None or not isinstance(key, str) else f"{reason} (key {key[:60]!r})"
