"""The change feed on PostgreSQL: a table of every committed change to ``entries``, kept by a
trigger, with LISTEN/NOTIFY to wake the other clients' readers.

The trigger lives in the database, so a change is recorded whoever makes it: this store,
another ``Store`` on any machine, or another program's plain SQL. It records an insert or
update as ``SET`` and a delete as ``DELETE``, marks the row with the writer's ``origin`` (the
session setting ``gostore.origin``, which only gostore's connections have) and notifies the
feed's channel with that origin as payload, so a store's reader ignores its own commits.
Writes of gostore's own that mean more (a whole group, an expiry) rewrite what the trigger
recorded in the same transaction, as on SQLite. The objects are in ``postgres_feed_sql``.

NOTE on commit order: ``seq`` comes from a sequence, and a sequence hands out numbers when a
row is written, not when its transaction commits, so a reader that has seen ``seq`` 8 could
miss a 7 that commits later. Every statement that writes ``entries`` therefore takes a
transaction-level advisory lock (one per schema) in a statement trigger, before it touches a
row or takes a number: a transaction that writes holds it until it commits, so recording
transactions commit one at a time in ``seq`` order, and every ``seq`` below a visible one is
committed (or rolled back, a gap never filled). Readers stay plain ``seq > N`` queries, and a
writer knows its own numbers inside its transaction, which the facade needs to number its
events when it writes. Taken before the rows, the lock never waits while its taker holds a row
(when the row trigger took it, a set holding its row deadlocked with a transaction holding the
lock and wanting that row). The price: writes serialise on the server like SQLite's writers
do, a transaction holding the lock from its first write to its commit (a single ``set`` holds
it for one statement and its commit; benchmarks/RESULTS.md has the cost), and two transactions
that each wait for a lock the other holds (the feed's, a quota's, an atomic operation's key)
are ended by the server's deadlock detection. The alternatives keep writers concurrent
but move the cost elsewhere: a reader bounded by the oldest running transaction
(``pg_snapshot_xmin``) stalls behind any long transaction of the whole cluster and numbers
nothing until commit, and a commit-time sequence (a deferred constraint trigger) also leaves
the numbers unknown until commit, where the facade has already published them.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import psycopg

from . import DatabaseError, EngineOptions, FeedRow
from .postgres import PostgresEngine
from .postgres_conn import every, nothing, one
from .postgres_errors import reason
from .postgres_feed_sql import DELETE, DELETE_GROUP, EXPIRE, SET, FeedSQL, lock_key_for
from .postgres_sql import LOCK, Schema, stale_functions

__all__ = ("PostgresFeedEngine", "PostgresFeedListener")

_KINDS = (SET, DELETE, DELETE_GROUP, EXPIRE)
#: the longest a listener blocks without a notification (wake() ends it at once)
LISTEN_WAIT = 1.0


def _text(value: Any) -> str:
    """A recorded group, key or value as ``str``: other programs may store any bytes."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _rows(raw: Iterable[Any]) -> list[FeedRow]:
    return [
        FeedRow(
            int(seq),
            kind if kind in _KINDS else SET,
            _text(group),
            _text(key),
            _text(value),
            (at_ms or 0) / 1000.0,
        )
        for seq, kind, group, key, value, at_ms, *_ in raw
    ]


def _others(raw: list[Any], since: int, limit: int) -> tuple[list[FeedRow], int]:
    head = raw.pop()[0]  # the newest seq, in the same snapshot
    rows = _rows(raw)
    if len(rows) == limit:  # more may follow this page
        return rows, rows[-1].seq
    return rows, max(since, int(head or 0))


class _Written(threading.local):
    """What the calling thread's latest write outside a transaction recorded."""

    first: int | None = None  # its first seq (None: unknown, e.g. written in a transaction)
    last: int | None = None  # its last seq


class PostgresFeedEngine(PostgresEngine):
    """:class:`~gostore.engine.FeedEngine` on PostgreSQL: the plain engine, recording changes.

    Every write method that changes ``entries`` is overridden here so that, outside a
    transaction, it remembers the seqs it recorded (the facade numbers its events with
    :meth:`feed_written`); a new write method must do the same.
    """

    feed = True
    #: NOTE: batches keep the order given: the facade numbers their events in that order, and
    #: with the feed every writing statement takes the feed's lock before its rows, so two
    #: batches cannot deadlock on rows whatever their order.
    key_ordered_batches = False

    def __init__(self, url: str, options: EngineOptions) -> None:
        #: marks this store's change rows; random, so stores of many processes differ
        self.origin = random.randrange(1, 2**62)
        self._written = _Written()
        self._sql: FeedSQL | None = None
        super().__init__(url, options)
        assert self._sql is not None
        self.sql: FeedSQL = self._sql
        # every seq up to here is this store's own or was delivered (see feed_pending)
        self._contiguous: int = self.feed_last_seq()
        self._contiguous_lock: threading.Lock = threading.Lock()

    def session_options(self) -> str:
        return f"-c gostore.origin={self.origin}"

    def extend_schema(self, conn: psycopg.Connection[Any], schema: Schema) -> None:
        # NOTE: the feed's trigger is an AFTER ROW trigger of its own next to the namespace
        # counters' (postgres_sql); neither reads nor writes what the other keeps.
        sql = FeedSQL(schema.name)
        with conn.transaction():
            present = conn.execute(sql.exists).fetchone()
            if not (present and present[0]) and self.readonly:
                raise DatabaseError(
                    f"cannot open {self.target!r}: the change feed is not set up in "
                    f"schema {schema.name!r}, or lacks parts this gostore version needs; "
                    "open it once without readonly=True"
                )
            # NOTE: only when something is missing or not this version's: CREATE OR REPLACE
            # TRIGGER locks entries, and would wait at every open for every writer.
            if not self.readonly and (
                not (present and present[0]) or stale_functions(conn, sql.functions)
            ):
                conn.execute(LOCK, (lock_key_for(schema.name + "\0create"),))
                for statement in sql.create:
                    conn.execute(statement)
        self._sql = sql

    def _run(
        self,
        statement: str,
        args: tuple[Any, ...],
        fetch: Callable[[psycopg.Cursor[Any]], Any],
        *,
        retry: bool = False,
    ) -> Any:
        return self.connections.run(statement, args, fetch, retry=retry)

    # -- the feed (reads synchronise themselves) ------------------------------------------------
    def feed_read(self, since: int, limit: int) -> list[FeedRow]:
        return _rows(self._run(self.sql.read, (since, limit), every, retry=True))

    def feed_others(self, since: int, limit: int) -> tuple[list[FeedRow], int]:
        args = (since, str(self.origin), limit)
        return _others(self._run(self.sql.read_others, args, every, retry=True), since, limit)

    def feed_last_seq(self) -> int:
        return int(self._run(self.sql.last_seq, (), one, retry=True)[0])

    def feed_trimmed(self) -> int:
        return int(self._run(self.sql.trimmed, (), one, retry=True)[0])

    def feed_written(self) -> int:
        if self.depth:  # the feed's lock is this transaction's: the newest rows are its own
            last = self.feed_last_seq()
            self._written.last = last
            return last
        written = self._written.last
        return self.feed_last_seq() if written is None else written

    def feed_pending(self) -> bool:
        # NOTE: nothing is pending when the write being delivered took the seq right after
        # every seq known to be this store's own or delivered; otherwise another connection
        # recorded in between and the facade reads it first. After that catch-up everything
        # through this write's last seq is delivered or own.
        written = self._written
        first, last = written.first, written.last
        written.first = None
        with self._contiguous_lock:
            pending = first is None or first != self._contiguous + 1
            if last is not None and last > self._contiguous:
                self._contiguous = last
        return pending

    def feed_trim(self, before_ms: int) -> int:
        sql = self.sql
        with self.lock, self._recording():
            self._run(sql.hold, (), one)  # no change may be recorded while the feed is cut
            kept = self._run(sql.first_kept, (before_ms,), one)
            if kept is not None:
                removed = self._run(sql.trim_before, (kept[0],), every)
            else:
                removed = self._run(sql.trim_all, (), every)
            if removed:
                newest = max(max(row[0] for row in removed), self.feed_trimmed())
                self._run(sql.clear_trimmed, (), nothing)
                self._run(sql.set_trimmed, (newest,), nothing)
        return len(removed)

    def feed_listen(self) -> PostgresFeedListener:
        return PostgresFeedListener(self)

    # -- writes ---------------------------------------------------------------------------------
    def begin(self) -> None:
        if not self.depth:
            self._written.first = None  # a transaction's events are checked at delivery
        super().begin()

    def _wrote(self, seq: int) -> None:
        if not self.depth:
            self._written.first = self._written.last = seq
        else:
            self._written.last = seq

    def put(self, group: str, key: str, value: str, expires: int | None) -> None:
        args = (group.encode(), key.encode(), value.encode(), expires)
        self._wrote(int(self._run(self.sql.put, args, one)[0]))

    def delete(self, group: str, key: str) -> bool:
        seq = int(self._run(self.sql.delete, (group.encode(), key.encode()), one)[0])
        if seq:
            self._wrote(seq)
        return bool(seq)

    def put_many(self, rows: Iterable[tuple[str, str, str, int | None]]) -> None:
        # One recorded change per row given, in order (the facade has an event for each): a
        # key given again starts a new statement instead of being folded into the first.
        batch: dict[tuple[str, str], tuple[str, str, str, int | None]] = {}
        for row in rows:
            if (row[0], row[1]) in batch:
                super().put_many(batch.values())
                batch = {}
            batch[(row[0], row[1])] = row
        if batch:
            super().put_many(batch.values())
        self._written.last = None

    def set_expiry(self, group: str, key: str, expires: int | None) -> bool:
        with self._recording():
            return super().set_expiry(group, key, expires)

    def delete_group(self, group: str) -> bool:
        sql = self.sql
        with self._recording():
            # NOTE: the feed's lock in a statement of its own first. This records one
            # DELETE_GROUP, "every row of the group is gone", so the DELETE must see every row
            # committed before it; but a statement's snapshot is taken as it starts, before
            # its trigger waits for the lock, and a row inserted by a transaction committing
            # during that wait would survive, after a SET the feed numbers before the
            # DELETE_GROUP. (No deadlock: every write takes the lock before its rows. Per-row
            # records, a purge's or another program's, say just what the statement did.)
            # Holding it, every row recorded after the newest seq is this transaction's.
            before = int(self._run(sql.hold, (), one)[0])
            removed = super().delete_group(group)
            if removed:
                self._run(sql.forget, (before,), nothing)
                self._run(sql.record_group, (group.encode(), str(self.origin)), nothing)
        return removed

    def delete_range(self, lo: str, hi: str | bytes) -> list[str]:
        sql = self.sql
        with self._recording():
            before = int(self._run(sql.hold, (), one)[0])  # the feed's lock first: see delete_group
            if not super().delete_range(lo, hi):
                return []
            # In the order recorded, so the caller's events line up with the rows written.
            groups = [_text(row[0]) for row in self._run(sql.recorded_groups, (before,), every)]
            self._run(sql.forget, (before,), nothing)
            for group in dict.fromkeys(groups):
                self._run(sql.record_group, (group.encode(), str(self.origin)), nothing)
        return groups

    def purge(self, lo: str, hi: str | bytes, now: int) -> list[tuple[str, str]]:
        sql = self.sql
        with self._recording(mark=True) as before:
            if not super().purge(lo, hi, now):
                return []
            self._run(sql.mark_expired, (before,), nothing)
            rows = self._run(sql.recorded_keys, (before,), every)
        return [(_text(group), _text(key)) for group, key in rows]

    def delete_expired(self, group: str, key: str, now: int) -> bool:
        # NOTE: as the plain engine, the lazy delete never waits: not for the row (SKIP LOCKED)
        # and not for the feed's lock either (the purge removes the row later).
        with self._recording():
            row = self._run(self.sql.try_hold, (), one)
            if row[0] is None or not super().delete_expired(group, key, now):
                return False
            before = int(row[0])
            self._run(self.sql.mark_expired, (before,), nothing)
        return True

    @contextlib.contextmanager
    def _recording(self, *, mark: bool = False) -> Iterator[int | None]:
        """Run the block in a transaction (joining an open one), so a write and the rewrite of
        what its trigger recorded commit together. ``mark``: yield what the feed's fix-up
        statements bind to find the rows the block's statements record (see FeedSQL).

        NOTE: the block takes no lock of its own: each of its writing statements takes the
        feed's lock (the statement trigger) before its rows, as every write does."""
        own = not self.depth
        if own:
            self.begin()
        try:
            before: int | None = None  # the transaction's first recorded seq decides
            if mark and not own:
                before = self._run(self.sql.mark, (), one)[0]
            yield before
            written = self._run(self.sql.written, (), one) if own else None
        except BaseException:
            if own:
                self.rollback()
            raise
        if own:
            self.commit()
            assert written is not None
            self._written.last, self._written.first = written


class PostgresFeedListener:
    """The background reader's own connection: LISTENs on the feed's channel (a commit that
    recorded changes notifies it) and reads the feed."""

    def __init__(self, engine: PostgresFeedEngine) -> None:
        self._engine = engine
        self._origin = str(engine.origin)
        self._sql = engine.sql
        self._pending = False
        self._woken = False
        self._wake_r, self._wake_w = os.pipe()
        self._conn: psycopg.Connection[Any] | None = None
        try:
            self._connect()
        except BaseException:
            self._close_pipe()
            raise

    def _connect(self) -> None:
        conn = self._engine.connections.take()  # a connection of the engine's, kept for good
        try:
            conn.add_notify_handler(self._notified)
            conn.execute(f'LISTEN "{self._sql.channel}"')
        except psycopg.Error as exc:
            self._engine.connections.release(conn)
            raise DatabaseError(reason(exc)) from exc
        self._conn = conn

    def _notified(self, notify: psycopg.Notify) -> None:
        if notify.payload != self._origin:  # this store's own commits are delivered already
            self._pending = True

    def wait(self, timeout: float) -> bool:
        """Wait for a commit of another connection (at most :data:`LISTEN_WAIT` seconds, or
        ``timeout`` when longer); True when one may have happened since the last call."""
        if self._woken:
            return False
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._reconnect()
            return True  # what was committed while no one listened is read now
        if self._pending:
            self._pending = False
            return True
        conn = self._conn
        try:
            ready, _, _ = select.select(
                [conn.fileno(), self._wake_r], [], [], max(timeout, LISTEN_WAIT)
            )
        except (OSError, ValueError) as exc:  # the socket went away under us
            raise DatabaseError(f"the connection to the server failed: {exc}") from exc
        if self._woken or self._wake_r in ready:
            return False
        if ready:
            pgconn = conn.pgconn
            try:
                pgconn.consume_input()
            except psycopg.Error as exc:
                raise DatabaseError(reason(exc)) from exc
            while (notify := pgconn.notifies()) is not None:
                if notify.extra.decode("utf-8", "replace") != self._origin:
                    self._pending = True
        pending, self._pending = self._pending, False
        return pending

    def _reconnect(self) -> None:
        old, self._conn = self._conn, None
        if old is not None:
            self._engine.connections.release(old)
        self._connect()

    def read(self, since: int, limit: int) -> tuple[list[FeedRow], int]:
        conn = self._conn
        if conn is None:
            raise DatabaseError("the change feed's listening connection is closed")
        try:
            raw = conn.execute(
                self._sql.read_others, (since, self._origin, limit), binary=True
            ).fetchall()
        except psycopg.Error as exc:
            raise DatabaseError(reason(exc)) from exc
        return _others(raw, since, limit)

    def wake(self) -> None:
        """Make a waiting :meth:`wait` return now (before :meth:`close`, from another thread)."""
        self._woken = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        self._woken = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # ends the LISTEN with the session
            self._engine.connections.release(conn)
        self._close_pipe()

    def _close_pipe(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
