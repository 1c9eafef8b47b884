"""The PostgreSQL engine: psycopg 3 on a connection pool, for stores shared by many machines.

Layout: the table ``entries`` with go-store's four columns and primary key, in the schema the
connection's ``search_path`` names first. Group, key and value are ``bytea`` holding UTF-8:
PostgreSQL ``text`` cannot hold NUL, and ``bytea`` compares bytewise, which is SQLite's BINARY
order, so ordering and prefix ranges behave as on SQLite. ``expires_at`` is Unix ms.

Threads: calls from different threads run concurrently, each on a connection of its own. A
call outside a transaction borrows an idle connection and gives it back when it returns; a
transaction keeps one connection, bound to its thread, from ``begin()`` to the end of its
outermost level, and other threads' calls never wait for it. The connections come from a
``psycopg_pool.ConnectionPool`` (which opens, replaces and limits them); the engine keeps the
ones it has borrowed in a free list, because taking one from the pool costs several times a
round trip to a local server, on every call.

``lock`` is an RLock for writes outside a transaction (so a write and the publication of its
events are one step in commit order), and free inside the calling thread's transaction: such a
write's events are only staged, and a thread holding the lock while the server makes it wait
for a row another thread's transaction holds would stop that transaction from going on.
"""

from __future__ import annotations

import hashlib
import math
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import psycopg
import psycopg.errors
import psycopg_pool
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from .._types import KeyValue, StoreStats
from . import DatabaseError, EngineOptions, Row, Totals

__all__ = ("PostgresEngine",)

_NOT_UTF8 = "a stored group, key or value is not valid UTF-8"
_READ_ONLY = "the store is read-only (opened with readonly=True)"
_POOL_SIZE = 16  # connections at most: enough for the threads of one service process
_CHUNK = 10_000  # rows per statement in put_many
_DUMP_ROWS = 1024  # rows fetched per step by dump()

# -- SQL -------------------------------------------------------------------------------------
_LIVE = "(expires_at IS NULL OR expires_at > %b)"
_CREATE = (
    "CREATE TABLE IF NOT EXISTS entries ("
    "group_name bytea NOT NULL, entry_key bytea NOT NULL, entry_value bytea NOT NULL, "
    "expires_at bigint, PRIMARY KEY (group_name, entry_key))",
    # The purge scans only the rows that have an expiry.
    "CREATE INDEX IF NOT EXISTS entries_expires_at ON entries (expires_at) "
    "WHERE expires_at IS NOT NULL",
)
_COLUMNS = (
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
    "WHERE a.attrelid = 'entries'::regclass AND a.attnum > 0 AND NOT a.attisdropped"
)
_EXPECTED = {
    "group_name": "bytea",
    "entry_key": "bytea",
    "entry_value": "bytea",
    "expires_at": "bigint",
}
GET = "SELECT entry_value, expires_at FROM entries WHERE group_name = %b AND entry_key = %b"
EXISTS = f"SELECT 1 FROM entries WHERE group_name = %b AND entry_key = %b AND {_LIVE}"
GET_MANY = (
    "SELECT entry_key, entry_value FROM entries WHERE group_name = %b "
    f"AND entry_key = ANY(%b::bytea[]) AND {_LIVE}"
)
SET = (
    "INSERT INTO entries (group_name, entry_key, entry_value, expires_at) "
    "VALUES (%b, %b, %b, %b::bigint) ON CONFLICT (group_name, entry_key) DO UPDATE SET "
    "entry_value = excluded.entry_value, expires_at = excluded.expires_at"
)
# NOTE: one statement for a whole batch: the rows travel as four arrays and the server
# unpacks them, a round trip per batch instead of per row.
SET_MANY = (
    "INSERT INTO entries (group_name, entry_key, entry_value, expires_at) "
    "SELECT * FROM unnest(%b::bytea[], %b::bytea[], %b::bytea[], %b::bigint[]) "
    "ON CONFLICT (group_name, entry_key) DO UPDATE SET "
    "entry_value = excluded.entry_value, expires_at = excluded.expires_at"
)
DELETE = "DELETE FROM entries WHERE group_name = %b AND entry_key = %b"
# The lazy delete is a courtesy of a read: SKIP LOCKED keeps it from waiting for a row another
# transaction holds (the purge removes it later), and it re-checks the expiry so it never
# removes a row another client just renewed.
DELETE_EXPIRED = (
    "DELETE FROM entries WHERE (group_name, entry_key) IN (SELECT group_name, entry_key "
    "FROM entries WHERE group_name = %b AND entry_key = %b AND expires_at IS NOT NULL "
    "AND expires_at <= %b FOR UPDATE SKIP LOCKED)"
)
DELETE_GROUP = "DELETE FROM entries WHERE group_name = %b"
COUNT = f"SELECT count(*) FROM entries WHERE group_name = %b AND {_LIVE}"
ENTRIES = f"SELECT entry_key, entry_value FROM entries WHERE group_name = %b AND {_LIVE}"
PAGE = (
    f"SELECT entry_key, entry_value FROM entries WHERE group_name = %b AND {_LIVE} "
    "ORDER BY entry_key LIMIT %b::bigint OFFSET %b::bigint"
)
PAGE_AFTER = (
    "SELECT entry_key, entry_value FROM entries WHERE group_name = %b AND entry_key > %b "
    f"AND {_LIVE} ORDER BY entry_key LIMIT %b::bigint"
)
ROW_SIZE = (
    "SELECT octet_length(entry_key) + octet_length(entry_value), expires_at FROM entries "
    "WHERE group_name = %b AND entry_key = %b"
)
LOCK = "SELECT pg_advisory_xact_lock(%b::bigint)"
SET_EXPIRY = "UPDATE entries SET expires_at = %b WHERE group_name = %b AND entry_key = %b"
_IS_LIVE = "(expires_at IS NULL OR expires_at > %b)"
STATS = (
    f"SELECT count(*) FILTER (WHERE {_IS_LIVE}), count(*) FILTER (WHERE NOT {_IS_LIVE}), "
    f"count(DISTINCT group_name) FILTER (WHERE {_IS_LIVE}), "
    f"COALESCE(sum(length(entry_key) + length(entry_value)) FILTER (WHERE {_IS_LIVE}), 0), "
    "pg_total_relation_size('entries') FROM entries"
)
CHECK = (
    "SELECT count(*) FROM entries WHERE convert_from(group_name, 'UTF8') IS NULL "
    "OR convert_from(entry_key, 'UTF8') IS NULL OR convert_from(entry_value, 'UTF8') IS NULL"
)


def _ranged(template: str) -> tuple[str, str]:
    """``template`` with ``{range}`` as ``lo <= group_name < hi`` and as ``lo <= group_name``
    (a prefix with no upper bound); both bind ``lo`` then ``hi``, the second ignoring it."""
    return (
        template.format(range="group_name >= %b AND group_name < %b"),
        template.format(range="group_name >= %b AND %b::bytea IS NOT NULL"),
    )


COUNT_RANGE = _ranged(f"SELECT count(*) FROM entries WHERE {{range}} AND {_LIVE}")
GROUPS_FIRST = _ranged(
    "SELECT DISTINCT group_name FROM entries WHERE {range} AND group_name >= %b AND "
    f"{_LIVE} ORDER BY group_name LIMIT %b::bigint"
)
GROUPS_AFTER = _ranged(
    "SELECT DISTINCT group_name FROM entries WHERE {range} AND group_name > %b AND "
    f"{_LIVE} ORDER BY group_name LIMIT %b::bigint"
)
DELETE_RANGE = _ranged("DELETE FROM entries WHERE {range} RETURNING group_name")
PURGE = _ranged(
    "DELETE FROM entries WHERE {range} AND expires_at IS NOT NULL AND expires_at <= %b "
    "RETURNING group_name, entry_key"
)
TOTALS = _ranged(
    "SELECT group_name, count(*), sum(octet_length(entry_key) + octet_length(entry_value)) "
    f"FROM entries WHERE {{range}} AND {_LIVE} GROUP BY group_name"
)
EXPIRING = _ranged(
    "SELECT group_name, entry_key, octet_length(entry_key) + octet_length(entry_value), "
    "expires_at FROM entries WHERE {range} AND expires_at IS NOT NULL AND expires_at > %b"
)
EXPORT = (
    "SELECT group_name, entry_key, entry_value, expires_at FROM entries "
    f"WHERE {_LIVE} ORDER BY group_name, entry_key"
)


def _range(hi: str | bytes) -> tuple[int, bytes]:
    """Which form of a ranged statement, and the ``hi`` to bind (``b""``: no upper bound)."""
    if isinstance(hi, bytes):
        return 1, hi
    return 0, hi.encode()


class _Slot:
    """A borrowed connection and the cursor every statement on it runs through."""

    __slots__ = ("conn", "cur")

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.cur = conn.cursor()


class _Thread(threading.local):
    """Per-thread transaction state (class attributes are each thread's starting values)."""

    slot: _Slot | None = None  # the connection of this thread's open transaction
    depth = 0
    poisoned_at = 0  # the level a failure poisoned (0: none)
    poison: DatabaseError | None = None
    held: list[bool] | None = None  # _WriteLock: whether each acquire took the real lock


class _WriteLock:
    """``engine.lock`` on PostgreSQL: an RLock, except inside the calling thread's transaction
    (see the module docstring)."""

    __slots__ = ("_lock", "_state")

    def __init__(self, state: _Thread) -> None:
        self._lock = threading.RLock()
        self._state = state

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        state = self._state
        held = state.held
        if held is None:
            held = state.held = []
        if state.depth:
            held.append(False)
            return True
        if not self._lock.acquire(blocking, timeout):
            return False
        held.append(True)
        return True

    def release(self) -> None:
        held = self._state.held
        if not held:
            raise RuntimeError("cannot release un-acquired lock")
        if held.pop():
            self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class PostgresEngine:
    """:class:`~gostore.engine.Engine` on a PostgreSQL server."""

    shared = True
    feed = False  # the change feed is SQLite's only, so far

    def __init__(self, url: str, options: EngineOptions) -> None:
        self.target = _redact(url)
        self.readonly = options.readonly
        self._state = _Thread()
        self.lock = cast(threading.RLock, _WriteLock(self._state))
        self._closed = False
        self._idle: list[_Slot] = []
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot open {self.target!r}: {_reason(exc)}") from exc
        busy = options.busy_timeout
        # NOTE: no call may block forever on a lost server: libpq gives up connecting after
        # connect_timeout, the server cancels a statement after statement_timeout, and a
        # server that vanished without closing the socket is noticed by tcp_user_timeout.
        connect = int(params.get("connect_timeout") or max(2, math.ceil(busy)))
        self._statement_timeout = max(30.0, 6 * busy)
        server_options = " ".join(
            (
                f"-c lock_timeout={max(1, round(busy * 1000))}",
                f"-c statement_timeout={round(self._statement_timeout * 1000)}",
                "-c synchronous_commit=" + ("off" if options.synchronous == "off" else "on"),
                # readonly: the server itself refuses every write of this store's sessions
                "-c default_transaction_read_only=on" if options.readonly else "",
                self._session_options(),
                str(params.get("options") or ""),  # the URL's own settings win
            )
        ).strip()
        params.update(
            connect_timeout=connect,
            options=server_options,
            application_name=params.get("application_name") or "gostore",
        )
        params.setdefault("keepalives", 1)
        params.setdefault("keepalives_idle", 10)
        params.setdefault("keepalives_interval", 5)
        params.setdefault("keepalives_count", 3)
        params.setdefault("tcp_user_timeout", round(self._statement_timeout * 1000))
        self._busy = busy
        self._wait = connect + busy  # longest wait for a connection from the pool
        kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, **params}
        # The first connection is made here, not by the pool: its error (authentication,
        # unknown database, unreachable host) is the one to report. It then serves as the
        # first idle connection, so a store used by one thread never needs the pool.
        try:
            first = psycopg.connect(**kwargs)
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot open {self.target!r}: {_reason(exc)}") from exc
        try:
            schema = self._prepare_schema(first)
        except BaseException:
            first.close()
            raise
        self._first = first
        self._idle.append(_Slot(first))
        salt = f"gostore\0{params.get('dbname', '')}\0{schema}\0"
        self._purge_key = _lock_key(salt + "purge")
        self._key_salt = salt
        self._pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            "",
            kwargs=kwargs,
            min_size=0,  # connections are opened when threads need more than the first
            max_size=_POOL_SIZE - 1,
            open=False,
            name=f"gostore {self.target}",
            timeout=self._wait,
            reconnect_timeout=max(60.0, 10 * self._wait),
        )
        self._pool.open(wait=False)

    def _session_options(self) -> str:
        """Server settings (``-c name=value``) every connection of this engine starts with,
        besides the engine's own; a subclass adds its own here."""
        return ""

    def _prepare_schema(self, conn: psycopg.Connection[Any]) -> str:
        """Create the table if missing (one client at a time) and check its columns."""
        try:
            with conn.transaction():
                if not self.readonly:  # a read-only store never creates anything
                    conn.execute(LOCK, (_lock_key("gostore\0create entries"),))
                    for statement in _CREATE:
                        conn.execute(statement)
                columns = dict(conn.execute(_COLUMNS).fetchall())
                schema = conn.execute("SELECT current_schema()").fetchone()
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot open {self.target!r}: {_reason(exc)}") from exc
        wrong = {
            name: columns.get(name) for name, kind in _EXPECTED.items() if columns.get(name) != kind
        }
        if wrong:
            raise DatabaseError(
                f"cannot open {self.target!r}: its table 'entries' has columns {columns}, not "
                "gostore's (group_name bytea, entry_key bytea, entry_value bytea, expires_at "
                "bigint); refusing to use it"
            )
        return str(schema[0]) if schema else ""

    # -- connections ----------------------------------------------------------------------------
    def _borrow(self) -> _Slot:
        """A connection of this engine's own: an idle one, else a new one from the pool."""
        try:
            return self._idle.pop()
        except IndexError:
            pass
        if self._closed:
            raise DatabaseError("the database is closed")
        try:
            conn = self._pool.getconn()
        except psycopg_pool.PoolClosed as exc:
            raise DatabaseError("the database is closed") from exc
        except psycopg_pool.PoolTimeout as exc:
            raise DatabaseError(
                f"cannot connect to the server within {self._wait:g} s (is it running and "
                "reachable?)"
            ) from exc
        return _Slot(conn)

    def _give_back(self, slot: _Slot) -> None:
        """Return a connection after a failure: keep it only if it is idle and healthy."""
        conn = slot.conn
        if (
            not self._closed
            and not conn.closed
            and conn.info.transaction_status == pq.TransactionStatus.IDLE
        ):
            self._idle.append(slot)
            return
        lost = conn.closed or conn.broken
        self._put(conn)
        if lost:
            self._drop_idle()

    def _put(self, conn: psycopg.Connection[Any]) -> None:
        if conn is self._first:  # not the pool's: it is closed instead, and not replaced
            conn.close()
            return
        try:
            self._pool.putconn(conn)
        except Exception:  # a pool that is closing: the connection just goes
            conn.close()

    def _drop_idle(self) -> None:
        """One connection was lost, so the server may have restarted: every idle connection
        is suspect. Close ours and let the pool replace them, and check the pool's own."""
        while True:
            try:
                slot = self._idle.pop()
            except IndexError:
                break
            slot.conn.close()
            self._put(slot.conn)
        if not self._closed:
            try:
                self._pool.check()
            except Exception:  # checking is a courtesy; the next call reports the failure
                pass

    def _fail(self, exc: psycopg.Error) -> DatabaseError:
        """Map ``exc``; inside this thread's transaction, poison it (see the engine protocol)."""
        readonly = self.readonly and isinstance(exc, psycopg.errors.ReadOnlySqlTransaction)
        error = DatabaseError(
            _READ_ONLY if readonly else _reason(exc, self._busy, self._statement_timeout),
            busy=isinstance(
                exc,
                (
                    psycopg.errors.LockNotAvailable,
                    psycopg.errors.DeadlockDetected,
                    psycopg.errors.SerializationFailure,
                ),
            ),
        )
        state = self._state
        if state.depth and not state.poisoned_at:
            slot = state.slot
            lost = slot is None or slot.conn.closed or slot.conn.broken
            state.poisoned_at = 1 if lost else state.depth
            state.poison = error
        return error

    def _refuse(self, state: _Thread) -> Any:
        poison = state.poison
        raise DatabaseError(
            "the transaction failed earlier and will be rolled back "
            f"(first failure: {poison.reason if poison else 'unknown'}); "
            "leave the transaction block"
        )

    def _run(
        self,
        statement: str,
        args: tuple[Any, ...],
        fetch: Callable[[psycopg.Cursor[Any]], Any],
        *,
        retry: bool = False,
    ) -> Any:
        """Run one statement in this thread's transaction, or on a borrowed connection.
        ``retry``: a read that found its connection lost runs once more on a fresh one."""
        state = self._state
        slot = state.slot
        if slot is not None:
            if state.poisoned_at:
                self._refuse(state)
            try:
                slot.cur.execute(statement, args, binary=True)
                return fetch(slot.cur)
            except psycopg.Error as exc:
                raise self._fail(exc) from exc
        while True:
            slot = self._borrow()
            try:
                slot.cur.execute(statement, args, binary=True)
                result = fetch(slot.cur)
            except psycopg.Error as exc:
                lost = slot.conn.closed or slot.conn.broken
                self._give_back(slot)
                if retry and lost and isinstance(exc, psycopg.OperationalError):
                    retry = False
                    continue
                raise self._fail(exc) from exc
            except BaseException:
                self._give_back(slot)
                raise
            self._idle.append(slot)
            return result

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._put(self._idle.pop().conn)
        self._pool.close(timeout=1.0)

    def abandon(self) -> None:
        # NOTE: never close the parent's connections from a child: closing one sends the
        # server a goodbye on a socket the parent still uses. Keep them referenced and refuse.
        _INHERITED.append((self._pool, self._idle, self._state.slot))
        self._closed = True
        self._idle = []
        self._state = _Thread()
        self.lock = cast(threading.RLock, _WriteLock(self._state))
        self._pool = _NoPool()  # type: ignore[assignment]

    # -- single-key reads -----------------------------------------------------------------------
    def get(self, group: str, key: str) -> tuple[Any, Any] | None:
        args = (group.encode(), key.encode())
        slot = self._state.slot
        if slot is None:
            # NOTE: the hot path of _run, inlined: get() is the call that is measured most.
            idle = self._idle
            try:
                slot = idle.pop()
            except IndexError:
                slot = self._borrow()
            try:
                cur = slot.cur
                cur.execute(GET, args, binary=True)
                row = cur.fetchone()
            except psycopg.Error as exc:
                lost = slot.conn.closed or slot.conn.broken
                self._give_back(slot)
                if not (lost and isinstance(exc, psycopg.OperationalError)):
                    raise self._fail(exc) from exc
                row = self._run(GET, args, _one)  # once more, on a fresh connection
            else:
                idle.append(slot)
        else:
            row = self._run(GET, args, _one)
        if row is None:
            return None
        value, expires = row
        try:
            return value.decode(), expires
        except UnicodeDecodeError:
            return value, expires  # the caller names the stored value that is not UTF-8

    def exists(self, group: str, key: str, now: int) -> bool:
        return bool(self._run(EXISTS, (group.encode(), key.encode(), now), _one, retry=True))

    def get_many(self, group: str, keys: list[str], now: int) -> dict[str, str]:
        wanted = [key.encode() for key in keys]
        rows = self._run(GET_MANY, (group.encode(), wanted, now), _all, retry=True)
        found = _decode_dict(rows)
        return {key: found[key] for key in keys if key in found}

    # -- group and prefix reads -----------------------------------------------------------------
    def count(self, group: str, now: int) -> int:
        return int(self._run(COUNT, (group.encode(), now), _one, retry=True)[0])

    def count_range(self, lo: str, hi: str | bytes, now: int) -> int:
        form, top = _range(hi)
        return int(self._run(COUNT_RANGE[form], (lo.encode(), top, now), _one, retry=True)[0])

    def entries(self, group: str, now: int) -> dict[str, str]:
        return _decode_dict(self._run(ENTRIES, (group.encode(), now), _all, retry=True))

    def page(self, group: str, now: int, limit: int, offset: int) -> list[KeyValue]:
        rows = self._run(PAGE, (group.encode(), now, limit, offset), _all, retry=True)
        return _decode_pairs(rows)

    def page_after(self, group: str, after: str, now: int, limit: int) -> list[KeyValue]:
        args = (group.encode(), after.encode(), now, limit)
        return _decode_pairs(self._run(PAGE_AFTER, args, _all, retry=True))

    def groups_page(
        self, lo: str, hi: str | bytes, after: str | None, now: int, limit: int
    ) -> list[str]:
        form, top = _range(hi)
        low = lo.encode()
        if after is None:
            args = (low, top, low, now, limit)
            rows = self._run(GROUPS_FIRST[form], args, _all, retry=True)
        else:
            args = (low, top, after.encode(), now, limit)
            rows = self._run(GROUPS_AFTER[form], args, _all, retry=True)
        return [_text(row[0]) for row in rows]

    def dump(self, now: int) -> Iterator[Row]:
        # One statement is one snapshot; a server-side cursor reads it in bounded pieces,
        # inside this thread's transaction or a read-only one of its own.
        state = self._state
        own = state.slot is None
        if own:
            self.begin()
        try:
            slot = state.slot
            assert slot is not None
            if state.poisoned_at:
                self._refuse(state)
            try:
                with slot.conn.cursor(name="gostore_dump", binary=True) as cursor:
                    cursor.itersize = _DUMP_ROWS
                    cursor.execute(EXPORT, (now,))
                    for group, key, value, expires in cursor:
                        yield Row(_text(group), _text(key), _text(value), expires)
            except psycopg.Error as exc:
                raise self._fail(exc) from exc
        except BaseException:
            if own:
                self.rollback()
            raise
        if own:
            self.commit()

    # -- writes ---------------------------------------------------------------------------------
    def put(self, group: str, key: str, value: str, expires: int | None) -> None:
        self._run(SET, (group.encode(), key.encode(), value.encode(), expires), _none)

    def put_many(self, rows: Iterable[tuple[str, str, str, int | None]]) -> None:
        # NOTE: one statement cannot change a row twice (ON CONFLICT refuses), so a key given
        # twice keeps its last row, as a run of single upserts would.
        latest: dict[tuple[bytes, bytes], tuple[bytes, int | None]] = {}
        for group, key, value, expires in rows:
            latest[(group.encode(), key.encode())] = (value.encode(), expires)
        items = list(latest.items())
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            groups = [gk[0] for gk, _ in chunk]
            keys = [gk[1] for gk, _ in chunk]
            values = [ve[0] for _, ve in chunk]
            expiries = [ve[1] for _, ve in chunk]
            self._run(SET_MANY, (groups, keys, values, expiries), _none)

    def delete(self, group: str, key: str) -> bool:
        return bool(self._run(DELETE, (group.encode(), key.encode()), _changed))

    def delete_expired(self, group: str, key: str, now: int) -> bool:
        return bool(self._run(DELETE_EXPIRED, (group.encode(), key.encode(), now), _changed))

    def delete_group(self, group: str) -> bool:
        return bool(self._run(DELETE_GROUP, (group.encode(),), _changed))

    def delete_range(self, lo: str, hi: str | bytes) -> list[str]:
        form, top = _range(hi)
        rows = self._run(DELETE_RANGE[form], (lo.encode(), top), _all)
        return [_text(row[0]) for row in rows]

    def purge(self, lo: str, hi: str | bytes, now: int) -> list[tuple[str, str]]:
        # Only one client purges at a time: the others wait, then find nothing left to remove.
        form, top = _range(hi)
        own = self._state.slot is None
        if own:
            self.begin()
        try:
            self._run(LOCK, (self._purge_key,), _none)
            rows = self._run(PURGE[form], (lo.encode(), top, now), _all)
        except BaseException:
            if own:
                self.rollback()
            raise
        if own:
            self.commit()
        return [(_text(group), _text(key)) for group, key in rows]

    # -- quota support --------------------------------------------------------------------------
    def row_size(self, group: str, key: str) -> tuple[int, Any] | None:
        row = self._run(ROW_SIZE, (group.encode(), key.encode()), _one)
        return None if row is None else (int(row[0]), row[1])

    def range_totals(self, lo: str, hi: str | bytes, now: int) -> list[Totals]:
        form, top = _range(hi)
        rows = self._run(TOTALS[form], (lo.encode(), top, now), _all)
        return [Totals(_text(group), int(keys), int(size)) for group, keys, size in rows]

    def range_expiring(self, lo: str, hi: str | bytes, now: int) -> list[tuple[str, str, int, int]]:
        form, top = _range(hi)
        rows = self._run(EXPIRING[form], (lo.encode(), top, now), _all)
        return [(_text(g), _text(k), int(size), int(exp)) for g, k, size, exp in rows]

    def version(self) -> object:
        # NOTE: other clients commit without telling us, and nothing cheap reveals whether
        # they touched a namespace, so every token is new and a quota ledger is rebuilt (two
        # index range scans of the namespace) at each check, under the namespace's lock.
        return object()

    def lock_namespace(self, namespace: str) -> None:
        key = _lock_key(self._key_salt + "namespace\0" + namespace)
        self._run(LOCK, (key,), _none)

    # -- atomic read-modify-write (inside begin() ... commit()) ---------------------------------
    def get_for_update(self, group: str, key: str) -> tuple[Any, Any] | None:
        # NOTE: SELECT ... FOR UPDATE cannot lock a row that does not exist yet, so the key
        # itself is locked (an advisory lock held until the transaction ends).
        self._run(LOCK, (_lock_key(self._key_salt + "key\0" + group + "\0" + key),), _none)
        return self.get(group, key)

    def set_expiry(self, group: str, key: str, expires: int | None) -> bool:
        return bool(self._run(SET_EXPIRY, (expires, group.encode(), key.encode()), _changed))

    # -- maintenance ----------------------------------------------------------------------------
    def stats(self, now: int) -> StoreStats:
        keys, expired, groups, size, table = self._run(STATS, (now, now, now, now), _one)
        return StoreStats(int(keys), int(expired), int(groups), int(size), int(table), 0)

    def check(self) -> list[str]:
        # PostgreSQL keeps its own pages consistent; what can be wrong here is what gostore
        # reads: a row that is not UTF-8 text. Reading every row once finds it.
        try:
            self._run(CHECK, (), _none)
        except DatabaseError as exc:
            return [exc.reason]
        return []

    def vacuum(self) -> None:
        if self.readonly:
            raise DatabaseError(_READ_ONLY)
        if self._state.depth:
            raise DatabaseError("VACUUM cannot run inside a transaction")
        self._run("VACUUM entries", (), _none)

    def checkpoint(self, mode: str) -> tuple[int, int]:
        raise DatabaseError(
            "checkpoints are the PostgreSQL server's own (CHECKPOINT, checkpoint_timeout)"
        )

    def backup(self, dest: str) -> None:
        raise DatabaseError(
            "back up a PostgreSQL database with its own tools (pg_dump, pg_basebackup)"
        )

    # -- transactions ---------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return self._state.depth

    def begin(self) -> None:
        state = self._state
        if state.depth == 0:
            slot = self._borrow()
            try:
                slot.cur.execute("BEGIN", prepare=False)
            except psycopg.Error as exc:
                self._give_back(slot)
                raise DatabaseError(_reason(exc, self._busy, self._statement_timeout)) from exc
            except BaseException:
                self._give_back(slot)
                raise
            state.slot = slot
        else:
            if state.poisoned_at:
                self._refuse(state)
            current = state.slot
            assert current is not None
            try:
                current.cur.execute(f"SAVEPOINT gostore_{state.depth}", prepare=False)
            except psycopg.Error as exc:
                raise self._fail(exc) from exc
        state.depth += 1

    def commit(self) -> None:
        state = self._state
        slot = state.slot
        assert slot is not None
        level = state.depth
        if not state.poisoned_at and (
            slot.conn.info.transaction_status != pq.TransactionStatus.INTRANS
        ):
            # The server ended or aborted the transaction without an error reaching us.
            state.poisoned_at = 1
            state.poison = DatabaseError("the server ended the transaction")
        if state.poisoned_at:
            poison = state.poison
            self.rollback()
            raise DatabaseError(
                "the transaction was rolled back because a statement in it failed"
                + (f" ({poison.reason})" if poison is not None else "")
            )
        try:
            if level > 1:
                slot.cur.execute(f"RELEASE SAVEPOINT gostore_{level - 1}", prepare=False)
            else:
                slot.cur.execute("COMMIT", prepare=False)
        except psycopg.Error as exc:
            error = self._fail(exc)
            self.rollback()
            raise error from exc
        state.depth = level - 1
        if level == 1:
            state.slot = None
            self._idle.append(slot)

    def rollback(self) -> None:
        state = self._state
        slot = state.slot
        level = state.depth
        try:
            if slot is not None and not slot.conn.closed:
                if level > 1 and state.poisoned_at != 1:
                    slot.cur.execute(f"ROLLBACK TO SAVEPOINT gostore_{level - 1}", prepare=False)
                    slot.cur.execute(f"RELEASE SAVEPOINT gostore_{level - 1}", prepare=False)
                elif level == 1:
                    slot.cur.execute("ROLLBACK", prepare=False)
        except psycopg.Error:
            # The level cannot be undone on its own: the whole transaction must go (a lost
            # connection has ended it on the server already).
            state.poisoned_at = 1
        finally:
            state.depth = level - 1
            if state.poisoned_at >= level:  # the failed level is undone: usable again
                state.poisoned_at = 0
                state.poison = None
            if level == 1:
                state.slot = None
                if slot is not None:
                    self._give_back(slot)


class _NoPool:
    """The pool of an engine abandoned after fork(): every use refuses."""

    def getconn(self, timeout: float | None = None) -> Any:
        raise psycopg_pool.PoolClosed("the pool belongs to the parent process")

    def putconn(self, conn: Any) -> None:
        """Connections of the parent stay open (see ``PostgresEngine.abandon``)."""

    def check(self) -> None:
        """Nothing to check."""

    def close(self, timeout: float = 0) -> None:
        """Nothing to close."""


_INHERITED: list[object] = []  # pools and connections inherited through fork(), never closed


def _one(cur: psycopg.Cursor[Any]) -> Any:
    return cur.fetchone()


def _all(cur: psycopg.Cursor[Any]) -> list[Any]:
    return cur.fetchall()


def _none(cur: psycopg.Cursor[Any]) -> None:
    return None


def _changed(cur: psycopg.Cursor[Any]) -> bool:
    return cur.rowcount > 0


def _text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise DatabaseError(_NOT_UTF8) from None


def _decode_dict(rows: list[tuple[bytes, bytes]]) -> dict[str, str]:
    try:
        return {key.decode(): value.decode() for key, value in rows}
    except UnicodeDecodeError:
        raise DatabaseError(_NOT_UTF8) from None


def _decode_pairs(rows: list[tuple[bytes, bytes]]) -> list[KeyValue]:
    try:
        return [KeyValue(key.decode(), value.decode()) for key, value in rows]
    except UnicodeDecodeError:
        raise DatabaseError(_NOT_UTF8) from None


def _lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name``."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _redact(url: str) -> str:
    """``url`` without its password, for messages and ``Store.path``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url.split("@")[-1]
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def _reason(exc: BaseException, busy_timeout: float = 0, statement_timeout: float = 0) -> str:
    """A plain-words reason for a psycopg failure (the psycopg exception stays chained)."""
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return (
            "the data is locked by another connection "
            f"after waiting {busy_timeout:g} s (PostgreSQL lock_timeout)"
        )
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return f"the statement ran longer than {statement_timeout:g} s and was cancelled"
    if isinstance(exc, psycopg.errors.DeadlockDetected):
        return "a deadlock with another connection was detected; the transaction was aborted"
    if isinstance(exc, psycopg.errors.SerializationFailure):
        return "a concurrent update conflicted with this transaction"
    if isinstance(exc, psycopg.errors.DiskFull):
        return "the server's disk is full"
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return "the server is read-only"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return f"permission denied ({_first_line(exc)})"
    if isinstance(exc, psycopg.errors.ProgramLimitExceeded):
        return f"a value is larger than PostgreSQL allows ({_first_line(exc)})"
    if isinstance(exc, psycopg.OperationalError):
        return f"the connection to the server failed: {_first_line(exc)}"
    sqlstate = getattr(exc, "sqlstate", None)
    code = f" {sqlstate}" if sqlstate else ""
    return f"PostgreSQL error{code}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
