"""The change feed on SQLite: a table of every committed change to ``entries``, kept by triggers.

The triggers live in the database file, so a change is recorded whoever makes it: this store,
another ``Store``, another process, go-store or the sqlite3 shell. They use only SQL every
SQLite has (``julianday``), since go-store's connection must be able to run them::

    gostore_changes(seq INTEGER PRIMARY KEY, kind, group_name, entry_key, entry_value,
                    at_ms, origin)
    gostore_changes_trimmed(seq)     -- the newest seq the retention removed (one row)

A trigger records an insert or update as ``SET`` and a delete as ``DELETE``. Writes of
gostore's own that mean more (a whole group, an expiry) rewrite what the triggers recorded
in the same transaction, so every reader sees the type the writer's watchers saw. Each
connection of a store marks the rows it caused with its ``origin`` (a TEMP trigger, which
only that connection has), so the store's background reader can skip the changes the store
already delivered itself.

``seq`` is the rowid, so a new row takes the largest plus one. It is never reused because
the newest row is never removed once committed: the retention always keeps it, and the rows a
rewrite replaces were never committed. (AUTOINCREMENT would guarantee the same by updating
``sqlite_sequence`` on every insert, which measured as about three times the cost of a set.)
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from typing import Any

import apsw

from . import DatabaseError, EngineOptions, FeedRow
from . import sqlite_schema as sql
from .sqlite import SQLiteEngine
from .sqlite_schema import failure_reason as _reason

__all__ = ("SQLiteFeedEngine", "SQLiteFeedListener")

SET, DELETE, DELETE_GROUP, EXPIRE = 0, 1, 2, 3

# Unix milliseconds in SQL any SQLite version runs (unixepoch('subsec') needs 3.42).
NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"

# NOTE: no NOT NULL or type constraints: a write by another program must never fail because
# of the feed, whatever it stores.
CREATE = (
    """CREATE TABLE IF NOT EXISTS gostore_changes (
    seq         INTEGER PRIMARY KEY,
    kind        INTEGER,
    group_name  TEXT,
    entry_key   TEXT,
    entry_value TEXT,
    at_ms       INTEGER,
    origin      INTEGER
)""",
    "CREATE TABLE IF NOT EXISTS gostore_changes_trimmed (seq INTEGER)",
    f"""CREATE TRIGGER IF NOT EXISTS gostore_changes_insert AFTER INSERT ON entries BEGIN
    INSERT INTO gostore_changes (kind, group_name, entry_key, entry_value, at_ms)
    VALUES ({SET}, NEW.group_name, NEW.entry_key, NEW.entry_value, {NOW_MS});
END""",
    # An update that moves a row to another group or key deletes the old one.
    f"""CREATE TRIGGER IF NOT EXISTS gostore_changes_update AFTER UPDATE ON entries BEGIN
    INSERT INTO gostore_changes (kind, group_name, entry_key, entry_value, at_ms)
    SELECT {DELETE}, OLD.group_name, OLD.entry_key, '', {NOW_MS}
    WHERE OLD.group_name IS NOT NEW.group_name OR OLD.entry_key IS NOT NEW.entry_key;
    INSERT INTO gostore_changes (kind, group_name, entry_key, entry_value, at_ms)
    VALUES ({SET}, NEW.group_name, NEW.entry_key, NEW.entry_value, {NOW_MS});
END""",
    f"""CREATE TRIGGER IF NOT EXISTS gostore_changes_delete AFTER DELETE ON entries BEGIN
    INSERT INTO gostore_changes (kind, group_name, entry_key, entry_value, at_ms)
    VALUES ({DELETE}, OLD.group_name, OLD.entry_key, '', {NOW_MS});
END""",
)
TABLES = ("gostore_changes", "gostore_changes_trimmed")
TRIGGERS = ("gostore_changes_insert", "gostore_changes_update", "gostore_changes_delete")

# The TEMP trigger exists on this connection only: every change row it causes gets its origin.
MARK_ORIGIN = """CREATE TEMP TRIGGER IF NOT EXISTS gostore_changes_origin
AFTER INSERT ON main.gostore_changes BEGIN
    UPDATE main.gostore_changes SET origin = {origin} WHERE seq = NEW.seq;
END"""

LAST_SEQ = "SELECT max(seq) FROM gostore_changes"
# This connection's newest change: read from the end, it passes only the changes other
# connections committed since.
LAST_OWN = "SELECT seq FROM gostore_changes WHERE origin = ? ORDER BY seq DESC LIMIT 1"
TRIMMED = "SELECT max(seq) FROM gostore_changes_trimmed"
READ = (
    "SELECT seq, kind, group_name, entry_key, entry_value, at_ms "
    "FROM gostore_changes WHERE seq > ? ORDER BY seq LIMIT ?"
)
# Other connections' changes, and (last row, one snapshot) the newest seq: the reader then
# moves past this connection's own changes without reading them again.
READ_OTHERS = (
    "SELECT * FROM (SELECT seq, kind, group_name, entry_key, entry_value, at_ms, 0 "
    "FROM gostore_changes WHERE seq > ?1 AND origin IS NOT ?2 ORDER BY seq LIMIT ?3) "
    "UNION ALL SELECT max(seq), NULL, NULL, NULL, NULL, NULL, 1 FROM gostore_changes"
)
# Fix-ups of what the triggers recorded for this transaction's latest statement (seq > ?).
RECORDED_GROUPS = "SELECT group_name FROM gostore_changes WHERE seq > ? ORDER BY seq"
RECORDED_KEYS = "SELECT group_name, entry_key FROM gostore_changes WHERE seq > ? ORDER BY seq"
FORGET = "DELETE FROM gostore_changes WHERE seq > ?"
RECORD_GROUP = (
    "INSERT INTO gostore_changes (kind, group_name, entry_key, entry_value, at_ms) "
    f"VALUES ({DELETE_GROUP}, ?, '', '', {NOW_MS})"
)
MARK_EXPIRED = f"UPDATE gostore_changes SET kind = {EXPIRE} WHERE seq > ?"
# Retention removes a prefix of the feed: every row before the first one young enough. A clock
# that stepped back leaves a few old rows after it, never a hole in what remains.
FIRST_KEPT = "SELECT seq FROM gostore_changes WHERE at_ms >= ? ORDER BY seq LIMIT 1"
TRIM_BEFORE = "DELETE FROM gostore_changes WHERE seq < ? RETURNING seq"
TRIM_ALL = (
    "DELETE FROM gostore_changes WHERE seq < (SELECT max(seq) FROM gostore_changes) RETURNING seq"
)
CLEAR_TRIMMED = "DELETE FROM gostore_changes_trimmed"
SET_TRIMMED = "INSERT INTO gostore_changes_trimmed (seq) VALUES (?)"


def enable(conn: apsw.Connection) -> None:
    """Create the feed's tables and triggers when missing, in one write transaction."""
    cursor = conn.cursor()
    names = {row[0] for row in cursor.execute("SELECT name FROM sqlite_schema")}
    if names.issuperset(TABLES + TRIGGERS):
        return
    cursor.execute(sql.BEGIN)
    try:
        for statement in CREATE:
            cursor.execute(statement)
        cursor.execute(sql.COMMIT)
    except BaseException:
        if not conn.getautocommit():
            cursor.execute(sql.ROLLBACK)
        raise


def _text(value: Any) -> str:
    """A recorded group, key or value as ``str``: other programs may store BLOBs or numbers."""
    if type(value) is str:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _others(raw: list[Any], since: int, limit: int) -> tuple[list[FeedRow], int]:
    head = raw.pop()[0]  # the newest seq, in the same snapshot
    rows = _rows([row[:6] for row in raw])
    if len(rows) == limit:  # more may follow this page
        return rows, rows[-1].seq
    return rows, max(since, head or 0)


def _rows(raw: list[Any]) -> list[FeedRow]:
    return [
        FeedRow(
            seq,
            kind if kind in (SET, DELETE, DELETE_GROUP, EXPIRE) else SET,
            _text(group),
            _text(key),
            _text(value),
            (at_ms or 0) / 1000.0,
        )
        for seq, kind, group, key, value, at_ms in raw
    ]


class SQLiteFeedEngine(SQLiteEngine):
    """:class:`~gostore.engine.FeedEngine` on SQLite: the plain engine, recording changes."""

    feed = True

    def __init__(self, path: str, options: EngineOptions) -> None:
        super().__init__(path, options)
        #: marks this connection's change rows; random, so stores of many processes differ
        self.origin = random.randrange(1, 2**62)
        self._options = options
        self._version: object = None  # data_version when feed_pending() last looked
        try:
            enable(self._conn)
            self._conn.execute(MARK_ORIGIN.format(origin=self.origin))
        except apsw.Error as exc:
            self._conn.close()
            raise DatabaseError(f"cannot open {path!r}: {self._reason(exc)}") from exc

    # -- the feed (reads synchronise themselves) ------------------------------------------------
    def feed_read(self, since: int, limit: int) -> list[FeedRow]:
        return _rows(self._fetch(READ, (since, limit)))

    def feed_others(self, since: int, limit: int) -> tuple[list[FeedRow], int]:
        return _others(self._fetch(READ_OTHERS, (since, self.origin, limit)), since, limit)

    def feed_last_seq(self) -> int:
        return int(self._fetch(LAST_SEQ, ())[0][0] or 0)

    def feed_written(self) -> int:
        # NOTE: not the newest seq of the file: a write outside a transaction has committed by
        # now, and another connection may have written since.
        rows = self._fetch(LAST_OWN, (self.origin,))
        return int(rows[0][0]) if rows else 0

    def feed_trimmed(self) -> int:
        return int(self._fetch(TRIMMED, ())[0][0] or 0)

    def feed_pending(self) -> bool:
        if self._memory:
            return False
        version = self.data_version()
        pending = version != self._version
        self._version = version
        return pending

    def feed_trim(self, before_ms: int) -> int:
        with self.lock, self._recording():
            kept = self._fetch(FIRST_KEPT, (before_ms,))
            if kept:
                removed = self._fetch(TRIM_BEFORE, (kept[0][0],))
            else:
                removed = self._fetch(TRIM_ALL, ())
            if removed:
                newest = max(max(row[0] for row in removed), self.feed_trimmed())
                self._fetch(CLEAR_TRIMMED, ())
                self._fetch(SET_TRIMMED, (newest,))
        return len(removed)

    def feed_listen(self) -> SQLiteFeedListener:
        return SQLiteFeedListener(self.target, self._options.busy_timeout, self.origin)

    # -- writes whose meaning the triggers cannot see -------------------------------------------
    @contextlib.contextmanager
    def _recording(self) -> Iterator[int]:
        """Run the block in a transaction (joining an open one), so a write and the rewrite
        of what its triggers recorded commit together; yields the last seq before it."""
        if self.depth:
            yield self.feed_last_seq()
            return
        self.begin()
        try:
            yield self.feed_last_seq()
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def delete_group(self, group: str) -> bool:
        with self._recording() as before:
            removed = super().delete_group(group)
            if removed:
                self._fetch(FORGET, (before,))
                self._fetch(RECORD_GROUP, (group,))
        return removed

    def delete_range(self, lo: str, hi: str | bytes) -> list[str]:
        with self._recording() as before:
            if not super().delete_range(lo, hi):
                return []
            # In the order recorded, so the caller's events line up with the rows written.
            groups = [row[0] for row in self._fetch(RECORDED_GROUPS, (before,))]
            self._fetch(FORGET, (before,))
            for group in dict.fromkeys(groups):
                self._fetch(RECORD_GROUP, (group,))
        return groups

    def purge(self, lo: str, hi: str | bytes, now: int) -> list[tuple[str, str]]:
        with self._recording() as before:
            if not super().purge(lo, hi, now):
                return []
            self._fetch(MARK_EXPIRED, (before,))
            return [(g, k) for g, k in self._fetch(RECORDED_KEYS, (before,))]

    def delete_expired(self, group: str, key: str, now: int) -> bool:
        if self.depth or not self.shared:
            with self._recording() as before:
                return self._expired(group, key, now, before)
        # NOTE: as the plain engine: the lazy delete never waits for another connection's lock.
        self._conn.set_busy_handler(None)
        try:
            with self._recording() as before:
                return self._expired(group, key, now, before)
        finally:
            self._conn.set_busy_handler(self._busy_handler)

    def _expired(self, group: str, key: str, now: int, before: int) -> bool:
        if not self._changed(sql.DELETE_EXPIRED_KEY, (group, key, now)):
            return False
        self._fetch(MARK_EXPIRED, (before,))
        return True


class SQLiteFeedListener:
    """The background reader's own connection: notices commits of other connections with
    ``PRAGMA data_version`` (a read of shared memory, no system call) and reads the feed."""

    def __init__(self, path: str, busy_timeout: float, origin: int) -> None:
        self._origin = origin
        self._busy_timeout = busy_timeout
        self._woken = False
        try:
            self._conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE)
            self._conn.set_busy_handler(sql.BusyWaiter(busy_timeout))
            self._cur = self._conn.cursor()
            self._version = self._cur.execute(sql.DATA_VERSION).fetchall()[0][0]
        except apsw.Error as exc:
            raise DatabaseError(f"cannot open {path!r}: {_reason(exc, busy_timeout)}") from exc

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when another connection committed since the
        last call (False at once after :meth:`close`)."""
        # NOTE: a plain sleep costs the idle store about half the CPU of Event.wait(timeout);
        # close() waits for at most one interval instead.
        time.sleep(timeout)
        if self._woken:
            return False
        try:
            version = self._cur.execute(sql.DATA_VERSION).fetchall()[0][0]
        except apsw.Error as exc:
            raise DatabaseError(_reason(exc, self._busy_timeout)) from exc
        changed = version != self._version
        self._version = version
        return bool(changed)

    def read(self, since: int, limit: int) -> tuple[list[FeedRow], int]:
        try:
            raw = self._cur.execute(READ_OTHERS, (since, self._origin, limit)).fetchall()
            return _others(raw, since, limit)
        except apsw.Error as exc:
            raise DatabaseError(_reason(exc, self._busy_timeout)) from exc

    def wake(self) -> None:
        """Make a waiting :meth:`wait` return now (before :meth:`close`, from another thread)."""
        self._woken = True

    def close(self) -> None:
        self._woken = True
        self._conn.close()
