"""The PostgreSQL engine: psycopg 3 on a connection pool, for stores shared by many machines.

The SQL text and the schema (the table ``entries``, and the namespace change counters that
keep a quota check from counting the namespace) are in :mod:`.postgres_sql`; the connections,
each thread's transaction and the write lock in :mod:`.postgres_conn`. This module maps the
engine protocol onto them.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Literal, cast

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .._accel import Gate
from .._types import KeyValue, StoreStats
from . import DatabaseError, EngineOptions, Row, Totals
from .postgres_async import AsyncReads, text_row
from .postgres_conn import READ_ONLY, Connections, changed, every, nothing, one
from .postgres_errors import reason, redact
from .postgres_sql import (
    CHANGES,
    CHECK,
    COUNT,
    COUNT_RANGE,
    DELETE,
    DELETE_EXPIRED,
    DELETE_GROUP,
    DELETE_RANGE,
    ENTRIES,
    EXISTS,
    EXPIRING,
    EXPORT,
    FOLD,
    GET,
    GET_MANY,
    GROUPS_AFTER,
    GROUPS_FIRST,
    LOCK,
    LOCK_NAMESPACE,
    PAGE,
    PAGE_AFTER,
    PURGE,
    ROW_SIZE,
    SET,
    SET_EXPIRY,
    SET_MANY,
    STATS,
    TOTALS,
    Schema,
    lock_key,
    prepare_schema,
    range_args,
)

__all__ = ("PostgresEngine",)

_NOT_UTF8 = "a stored group, key or value is not valid UTF-8"
_CHUNK = 10_000  # rows per statement in put_many
_DUMP_ROWS = 1024  # rows fetched per step by dump()


class PostgresEngine:
    """:class:`~gostore.engine.Engine` on a PostgreSQL server."""

    shared = True
    feed = False  # PostgresFeedEngine (postgres_feed) is the engine with the change feed
    key_ordered_batches = True  # see put_many

    def __init__(self, url: str, options: EngineOptions) -> None:
        self.target = redact(url)
        self.readonly = options.readonly
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot open {self.target!r}: {reason(exc)}") from exc
        busy = options.busy_timeout
        # NOTE: no call may block forever on a lost server: libpq gives up connecting after
        # connect_timeout, the server cancels a statement after statement_timeout, and a
        # server that vanished without closing the socket is noticed by tcp_user_timeout.
        connect = int(params.get("connect_timeout") or max(2, math.ceil(busy)))
        statement_timeout = max(30.0, 6 * busy)
        server_options = " ".join(
            (
                f"-c lock_timeout={max(1, round(busy * 1000))}",
                f"-c statement_timeout={round(statement_timeout * 1000)}",
                "-c synchronous_commit=" + ("off" if options.synchronous == "off" else "on"),
                # readonly: the server itself refuses every write of this store's sessions
                "-c default_transaction_read_only=on" if options.readonly else "",
                self.session_options(),
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
        params.setdefault("tcp_user_timeout", round(statement_timeout * 1000))
        kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, **params}
        self._async_options = (kwargs, connect + busy, statement_timeout)  # see async_reads()
        # The first connection is made here, not by the pool: its error (authentication,
        # unknown database, unreachable host) is the one to report. It then serves as the
        # first idle connection, so a store used by one thread never needs the pool.
        try:
            first = psycopg.connect(**kwargs)
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot open {self.target!r}: {reason(exc)}") from exc
        try:
            schema = prepare_schema(first, self.target, self.readonly)
            self.extend_schema(first, schema)
        except psycopg.Error as exc:
            first.close()
            why = reason(exc, busy, statement_timeout)
            raise DatabaseError(f"cannot open {self.target!r}: {why}") from exc
        except BaseException:
            first.close()
            raise
        #: the namespace change counters are usable: a quota ledger lives while they stay put
        self._counted = schema.counted
        #: tags this client's writes under its quota locks (see postgres_sql)
        self._writer = uuid.uuid4().hex
        salt = f"gostore\0{params.get('dbname', '')}\0{schema.name}\0"
        self._purge_key = lock_key(salt + "purge")
        self._key_salt = salt
        self._db = Connections(
            first,
            kwargs,
            target=self.target,
            busy=busy,
            statement_timeout=statement_timeout,
            wait=connect + busy,
            readonly=self.readonly,
        )
        self.lock = cast(threading.RLock, self._db.lock)
        #: a thread's transaction has a connection of its own, so only the facade shuts it
        self.gate = Gate()

    # -- hooks of an engine that builds on this one ---------------------------------------------
    def session_options(self) -> str:
        """Server settings (``-c name=value``) every connection starts with, besides the
        engine's own (called once, before the first connection)."""
        return ""

    def extend_schema(self, conn: psycopg.Connection[Any], schema: Schema) -> None:
        """Create or check what is kept next to ``entries`` in ``schema``, on the first
        connection once the table is ready (a :class:`psycopg.Error` is reported as the
        failure to open)."""

    @property
    def connections(self) -> Connections:
        """The connections and each thread's transaction: statements of an engine's own run
        through ``connections.run``, in the calling thread's transaction if one is open."""
        return self._db

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        self.gate.shut()  # for good: a write now takes the lock, and fails there
        self._db.close()

    def abandon(self) -> None:
        self._db.abandon()
        self.lock = cast(threading.RLock, self._db.lock)
        self.gate = Gate()
        self.gate.shut_all = 1

    # -- single-key reads -----------------------------------------------------------------------
    def get(self, group: str, key: str) -> tuple[Any, Any] | None:
        return text_row(self._db.row(GET, (group.encode(), key.encode())))

    def get_now(self, group: str, key: str) -> Literal[False]:
        return False  # every read waits for the server

    def async_reads(self) -> AsyncReads:
        kwargs, wait, statement_timeout = self._async_options
        return AsyncReads(
            kwargs, target=self.target, wait=wait, statement_timeout=statement_timeout
        )

    def exists(self, group: str, key: str, now: int) -> bool:
        return bool(self._db.run(EXISTS, (group.encode(), key.encode(), now), one, retry=True))

    def get_many(self, group: str, keys: list[str], now: int) -> dict[str, str]:
        wanted = [key.encode() for key in keys]
        rows = self._db.run(GET_MANY, (group.encode(), wanted, now), every, retry=True)
        found = _decode_dict(rows)
        return {key: found[key] for key in keys if key in found}

    # -- group and prefix reads -----------------------------------------------------------------
    def count(self, group: str, now: int) -> int:
        return int(self._db.run(COUNT, (group.encode(), now), one, retry=True)[0])

    def count_range(self, lo: str, hi: str | bytes, now: int) -> int:
        form, top = range_args(hi)
        return int(self._db.run(COUNT_RANGE[form], (lo.encode(), top, now), one, retry=True)[0])

    def entries(self, group: str, now: int) -> dict[str, str]:
        return _decode_dict(self._db.run(ENTRIES, (group.encode(), now), every, retry=True))

    def page(self, group: str, now: int, limit: int, offset: int) -> list[KeyValue]:
        rows = self._db.run(PAGE, (group.encode(), now, limit, offset), every, retry=True)
        return _decode_pairs(rows)

    def page_after(self, group: str, after: str, now: int, limit: int) -> list[KeyValue]:
        args = (group.encode(), after.encode(), now, limit)
        return _decode_pairs(self._db.run(PAGE_AFTER, args, every, retry=True))

    def groups_page(
        self, lo: str, hi: str | bytes, after: str | None, now: int, limit: int
    ) -> list[str]:
        form, top = range_args(hi)
        low = lo.encode()
        if after is None:
            args = (low, top, low, now, limit)
            rows = self._db.run(GROUPS_FIRST[form], args, every, retry=True)
        else:
            args = (low, top, after.encode(), now, limit)
            rows = self._db.run(GROUPS_AFTER[form], args, every, retry=True)
        return [_text(row[0]) for row in rows]

    def dump(self, now: int) -> Iterator[Row]:
        # One statement is one snapshot; a server-side cursor reads it in bounded pieces.
        for group, key, value, expires in self._db.stream(EXPORT, (now,), _DUMP_ROWS):
            yield Row(_text(group), _text(key), _text(value), expires)

    # -- writes ---------------------------------------------------------------------------------
    def put(self, group: str, key: str, value: str, expires: int | None) -> None:
        self._db.run(SET, (group.encode(), key.encode(), value.encode(), expires), nothing)

    def put_free(self, group: str, key: str, value: str, expires: int | None) -> bool:
        gate = self.gate
        if not gate.enter(True, group, key):
            return False
        try:
            self.put(group, key, value, expires)
        finally:
            gate.leave()
        return True

    def put_now(self, group: str, key: str, value: str, expires: int | None) -> bool:
        return False  # every write waits for the server

    def put_many(self, rows: Iterable[tuple[str, str, str, int | None]]) -> None:
        # NOTE: one statement cannot change a row twice (ON CONFLICT refuses), so a key given
        # twice keeps its last row, as a run of single upserts would. The rows go in the
        # table's key order (bytea compares as bytes do) when ``key_ordered_batches``: two
        # calls given the same keys in other orders would otherwise each hold rows the other
        # waits for, a deadlock.
        latest: dict[tuple[bytes, bytes], tuple[bytes, int | None]] = {}
        for group, key, value, expires in rows:
            latest[(group.encode(), key.encode())] = (value.encode(), expires)
        items = sorted(latest.items()) if self.key_ordered_batches else list(latest.items())
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            groups = [gk[0] for gk, _ in chunk]
            keys = [gk[1] for gk, _ in chunk]
            values = [ve[0] for _, ve in chunk]
            expiries = [ve[1] for _, ve in chunk]
            self._db.run(SET_MANY, (groups, keys, values, expiries), nothing)

    def delete(self, group: str, key: str) -> bool:
        return bool(self._db.run(DELETE, (group.encode(), key.encode()), changed))

    def delete_expired(self, group: str, key: str, now: int) -> bool:
        return bool(self._db.run(DELETE_EXPIRED, (group.encode(), key.encode(), now), changed))

    def delete_group(self, group: str) -> bool:
        return bool(self._db.run(DELETE_GROUP, (group.encode(),), changed))

    def delete_range(self, lo: str, hi: str | bytes) -> list[str]:
        form, top = range_args(hi)
        rows = self._db.run(DELETE_RANGE[form], (lo.encode(), top), every)
        return [_text(row[0]) for row in rows]

    def purge(self, lo: str, hi: str | bytes, now: int) -> list[tuple[str, str]]:
        # Only one client purges at a time: the others wait, then find nothing left to remove.
        form, top = range_args(hi)
        own = self._db.state.slot is None
        if own:
            self._db.begin()
        try:
            self._db.run(LOCK, (self._purge_key,), nothing)
            rows = self._db.run(PURGE[form], (lo.encode(), top, now), every)
            if self._counted and not lo and top == b"":  # a purge of the whole store
                self._db.run(FOLD, (), nothing)
        except BaseException:
            if own:
                self._db.rollback()
            raise
        if own:
            self._db.commit()
        return [(_text(group), _text(key)) for group, key in rows]

    # -- quota support --------------------------------------------------------------------------
    def row_size(self, group: str, key: str) -> tuple[int, Any] | None:
        row = self._db.run(ROW_SIZE, (group.encode(), key.encode()), one)
        return None if row is None else (int(row[0]), row[1])

    def range_totals(self, lo: str, hi: str | bytes, now: int) -> list[Totals]:
        form, top = range_args(hi)
        rows = self._db.run(TOTALS[form], (lo.encode(), top, now), every)
        return [Totals(_text(group), int(keys), int(size)) for group, keys, size in rows]

    def range_expiring(self, lo: str, hi: str | bytes, now: int) -> list[tuple[str, str, int, int]]:
        form, top = range_args(hi)
        rows = self._db.run(EXPIRING[form], (lo.encode(), top, now), every)
        return [(_text(g), _text(k), int(size), int(exp)) for g, k, size, exp in rows]

    def version(self, namespace: str) -> object:
        # The changes of the namespace by everyone but this client's quota-locked writes (see
        # postgres_sql), read when the lock was taken: it moves exactly when a ledger built
        # and kept up to date by this client's checked writes has gone stale.
        locked = self._db.state.locked
        token = locked.get(namespace) if locked else None
        if token is not None:
            return token
        if not self._counted:  # no counters: a ledger must be rebuilt at every check
            return object()
        return int(self._db.run(CHANGES, (namespace.encode(), self._writer), one)[0])

    def lock_namespace(self, namespace: str) -> None:
        state = self._db.state
        if state.locked and namespace in state.locked:  # held until the transaction ends
            return
        key = lock_key(self._key_salt + "namespace\0" + namespace)
        if self._counted:
            args = (key, self._writer, namespace)
            token: object = int(self._db.run(LOCK_NAMESPACE, args, one)[0])
        else:
            self._db.run(LOCK, (key,), nothing)
            token = None
        if state.depth:
            if state.locked is None:
                state.locked = {}
            state.locked[namespace] = token

    # -- atomic read-modify-write (inside begin() ... commit()) ---------------------------------
    def get_for_update(self, group: str, key: str) -> tuple[Any, Any] | None:
        # NOTE: SELECT ... FOR UPDATE cannot lock a row that does not exist yet, so the key
        # itself is locked (an advisory lock held until the transaction ends).
        self._db.run(LOCK, (lock_key(self._key_salt + "key\0" + group + "\0" + key),), nothing)
        return self.get(group, key)

    def set_expiry(self, group: str, key: str, expires: int | None) -> bool:
        return bool(self._db.run(SET_EXPIRY, (expires, group.encode(), key.encode()), changed))

    # -- maintenance ----------------------------------------------------------------------------
    def stats(self, now: int) -> StoreStats:
        keys, expired, groups, size, table = self._db.run(STATS, (now, now, now, now), one)
        return StoreStats(int(keys), int(expired), int(groups), int(size), int(table), 0)

    def check(self) -> list[str]:
        # PostgreSQL keeps its own pages consistent; what can be wrong here is what gostore
        # reads: a row that is not UTF-8 text. Reading every row once finds it.
        try:
            self._db.run(CHECK, (), nothing)
        except DatabaseError as exc:
            return [exc.reason]
        return []

    def vacuum(self) -> None:
        if self.readonly:
            raise DatabaseError(READ_ONLY)
        if self._db.state.depth:
            raise DatabaseError("VACUUM cannot run inside a transaction")
        self._db.run("VACUUM entries", (), nothing)

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
        return self._db.state.depth

    def begin(self) -> None:
        self._db.begin()

    def commit(self) -> None:
        self._db.commit()

    def rollback(self) -> None:
        self._db.rollback()


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
