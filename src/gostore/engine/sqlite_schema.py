"""The SQLite engine's SQL text, connection pragmas, and schema creation/migration
(go-store's file format). The raw-APSW benchmark baselines run these very statements.

The table layout is go-store's, byte for byte, so either library opens the other's files::

    entries(group_name TEXT NOT NULL, entry_key TEXT NOT NULL, entry_value TEXT NOT NULL,
            expires_at INTEGER, PRIMARY KEY (group_name, entry_key))

``expires_at`` is Unix milliseconds or NULL. Every value is bound with ``?``.
"""

from __future__ import annotations

import os
import random
import time
import urllib.parse

import apsw

from . import DEFAULT_CACHE_SIZE_MB, DEFAULT_MMAP_SIZE_MB

# A row is live when it has no expiry or expires strictly after "now" (Unix ms).
LIVE = "(expires_at IS NULL OR expires_at > ?)"

CREATE_ENTRIES = """CREATE TABLE IF NOT EXISTS entries (
    group_name  TEXT NOT NULL,
    entry_key   TEXT NOT NULL,
    entry_value TEXT NOT NULL,
    expires_at  INTEGER,
    PRIMARY KEY (group_name, entry_key)
)"""

# -- single-row reads and writes -------------------------------------------------------------
GET = "SELECT entry_value, expires_at FROM entries WHERE group_name = ? AND entry_key = ?"
EXISTS = f"SELECT 1 FROM entries WHERE group_name = ? AND entry_key = ? AND {LIVE}"
# NOTE: an upsert, as go-store writes it; a plain set clears any TTL.
SET = (
    "INSERT INTO entries (group_name, entry_key, entry_value, expires_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (group_name, entry_key) DO UPDATE SET "
    "entry_value = excluded.entry_value, expires_at = excluded.expires_at"
)
DELETE = "DELETE FROM entries WHERE group_name = ? AND entry_key = ?"
# The lazy delete re-checks the expiry so it never removes a row another process just renewed.
DELETE_EXPIRED_KEY = (
    "DELETE FROM entries WHERE group_name = ? AND entry_key = ? "
    "AND expires_at IS NOT NULL AND expires_at <= ?"
)
DELETE_GROUP = "DELETE FROM entries WHERE group_name = ?"

# -- group reads -----------------------------------------------------------------------------
COUNT = f"SELECT COUNT(*) FROM entries WHERE group_name = ? AND {LIVE}"

# NOTE: batch decoding. A whole group comes back from one sqlite3_step as two UTF-8 blobs,
# keys and values joined by the byte 0xFF, which valid UTF-8 never contains; the count lets
# the decoder detect a foreign row whose text is not valid UTF-8 (go-store can write any
# bytes) and fall back to row-by-row reads. One step instead of one per row is what makes
# get_all faster than iterating an APSW cursor. The unordered form lets SQLite aggregate
# straight off the primary-key index; the ordered forms walk that index in key order.
# NOTE: the second column counts the rows whose key and value are both non-NULL. A row written
# by another program may hold NULL, which group_concat skips: together with a BLOB holding 0xFF
# (one part too many) the parts would line up wrongly, so such a group is read row by row. With
# no NULL, any stray 0xFF makes the part count differ from COUNT(*), which the decoder detects.
_TEXT_ROWS = "min(COUNT(entry_key), COUNT(entry_value))"
GROUP_BLOB = (
    f"SELECT COUNT(*), {_TEXT_ROWS}, CAST(group_concat(entry_key, X'FF') AS BLOB), "
    "CAST(group_concat(entry_value, X'FF') AS BLOB) "
    f"FROM entries WHERE group_name = ? AND {LIVE}"
)
_ORDERED_BLOB = (
    f"SELECT COUNT(*), {_TEXT_ROWS}, CAST(group_concat(entry_key, X'FF') AS BLOB), "
    "CAST(group_concat(entry_value, X'FF') AS BLOB) FROM ("
    "SELECT entry_key, entry_value FROM entries WHERE group_name = ? AND {where} AND " + LIVE
    + " ORDER BY entry_key LIMIT ? {offset})"
)
PAGE_AFTER_BLOB = _ORDERED_BLOB.format(where="entry_key > ?", offset="")
PAGE_OFFSET_BLOB = _ORDERED_BLOB.format(where="1", offset="OFFSET ?")
# A large group in key ranges: KEY_AT finds where a range of ``?`` rows starting at a key ends
# (from the key index alone); the ranges are read with GROUP_BLOB's unordered aggregate.
KEY_AT = (
    "SELECT entry_key FROM entries WHERE group_name = ? AND entry_key >= ? "
    "ORDER BY entry_key LIMIT 1 OFFSET ?"
)
RANGE_BLOB = GROUP_BLOB + " AND entry_key >= ? AND entry_key < ?"
TAIL_BLOB = GROUP_BLOB + " AND entry_key >= ?"
# The row-by-row fallback for the forms above.
GROUP_ROWS = f"SELECT entry_key, entry_value FROM entries WHERE group_name = ? AND {LIVE}"
PAGE_AFTER_ROWS = (
    f"SELECT entry_key, entry_value FROM entries WHERE group_name = ? AND entry_key > ? "
    f"AND {LIVE} ORDER BY entry_key LIMIT ?"
)
PAGE_OFFSET_ROWS = (
    f"SELECT entry_key, entry_value FROM entries WHERE group_name = ? AND {LIVE} "
    "ORDER BY entry_key LIMIT ? OFFSET ?"
)
GET_MANY_ROW = f"SELECT entry_value FROM entries WHERE group_name = ? AND entry_key = ? AND {LIVE}"

# -- prefix reads and writes: ``group_name >= lo AND group_name < hi`` ------------------------
# NOTE: a prefix is literal (no LIKE wildcards) and may hold NUL, so it becomes a range on the
# primary-key index; ``hi`` is bound as an empty BLOB when there is no upper bound, because in
# SQLite every TEXT sorts before every BLOB.
IN_RANGE = "group_name >= ? AND group_name < ?"
COUNT_PREFIX = f"SELECT COUNT(*) FROM entries WHERE {IN_RANGE} AND {LIVE}"
_GROUPS_PAGE = (
    "SELECT DISTINCT group_name FROM entries WHERE " + IN_RANGE + " AND group_name {after} ? AND "
    + LIVE + " ORDER BY group_name LIMIT ?"
)
GROUPS_FIRST = _GROUPS_PAGE.format(after=">=")  # the prefix itself may be a group name
GROUPS_AFTER = _GROUPS_PAGE.format(after=">")
# A namespace's live totals, for the quota ledger: per group, then the rows that will expire.
NAMESPACE_TOTALS = (
    "SELECT group_name, COUNT(*), SUM(octet_length(entry_key) + octet_length(entry_value)) "
    f"FROM entries WHERE {IN_RANGE} AND {LIVE} GROUP BY group_name"
)
NAMESPACE_EXPIRING = (
    "SELECT group_name, entry_key, octet_length(entry_key) + octet_length(entry_value), "
    f"expires_at FROM entries WHERE {IN_RANGE} AND expires_at IS NOT NULL AND expires_at > ?"
)
ROW_SIZE = (
    "SELECT octet_length(entry_key) + octet_length(entry_value), expires_at FROM entries "
    "WHERE group_name = ? AND entry_key = ?"
)
DATA_VERSION = "PRAGMA data_version"
DELETE_PREFIX_RETURNING = f"DELETE FROM entries WHERE {IN_RANGE} RETURNING group_name"

# -- expiry ----------------------------------------------------------------------------------
PURGE_RANGE = f"DELETE FROM entries WHERE {IN_RANGE} AND expires_at IS NOT NULL AND expires_at <= ?"
PURGE_RANGE_RETURNING = PURGE_RANGE + " RETURNING group_name, entry_key"

# -- atomic operations and maintenance --------------------------------------------------------
SET_EXPIRY = "UPDATE entries SET expires_at = ? WHERE group_name = ? AND entry_key = ?"
# NOTE: one pass over the table; octet_length() reads a TEXT column's length from the record
# header without loading or decoding the value (SQLite 3.43+).
STATS = (
    "SELECT IFNULL(SUM(live), 0), IFNULL(SUM(NOT live), 0), "
    "COUNT(DISTINCT CASE WHEN live THEN group_name END), "
    "IFNULL(SUM(CASE WHEN live THEN octet_length(entry_key) + octet_length(entry_value) END), 0) "
    "FROM (SELECT group_name, entry_key, entry_value, "
    "(expires_at IS NULL OR expires_at > ?) AS live FROM entries)"
)
INTEGRITY_CHECK = "PRAGMA integrity_check"
VACUUM = "VACUUM"

# -- export (the CLI): every live row with its expiry, so TTLs survive export/import ---------
EXPORT = (
    "SELECT group_name, entry_key, entry_value, expires_at FROM entries "
    f"WHERE {LIVE} ORDER BY group_name, entry_key"
)

# -- transactions ----------------------------------------------------------------------------
# NOTE: every write transaction is BEGIN IMMEDIATE: a deferred transaction that reads first and
# upgrades to a write can fail with BUSY without waiting for the busy timeout.
BEGIN = "BEGIN IMMEDIATE"
BEGIN_READ = "BEGIN"  # deferred: a read snapshot, no write lock
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"

SYNCHRONOUS_LEVELS = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}

MEMORY = ":memory:"


def _table_columns(cursor: apsw.Cursor, table: str) -> list[str]:
    return [row[1] for row in cursor.execute(f"PRAGMA table_info({table})")]


def _set_wal(conn: apsw.Connection, busy_timeout: float) -> None:
    # NOTE: switching to WAL needs an exclusive lock. The busy handler covers most waits, but a
    # second process creating the same file at the same moment can still get BUSY; retry until
    # the busy timeout runs out, as the caller asked us to wait that long.
    deadline = time.monotonic() + busy_timeout
    delay = 0.001
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchall()[0][0]
        except apsw.BusyError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            continue
        if str(mode).lower() != "wal" and not conn.readonly("main"):
            raise apsw.CantOpenError(f"could not switch to WAL (journal_mode={mode})")
        return


class SchemaError(Exception):
    """The file holds tables gostore cannot use or migrate without losing data."""


_ENTRIES_COLUMNS = {"group_name", "entry_key", "entry_value"}
_KV_COLUMNS = {"grp", "key", "value"}


def _plan(cursor: apsw.Cursor) -> tuple[bool, bool, bool]:
    """(create entries, add expires_at, absorb kv); raises SchemaError for foreign tables."""
    tables = {row[0] for row in cursor.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    entries_cols = set(_table_columns(cursor, "entries")) if "entries" in tables else set()
    if entries_cols and not _ENTRIES_COLUMNS <= entries_cols:
        raise SchemaError(
            f"its table 'entries' has columns {sorted(entries_cols)}, not go-store's "
            "(group_name, entry_key, entry_value, expires_at); refusing to change it"
        )
    has_legacy = "kv" in tables
    if has_legacy:
        kv_cols = set(_table_columns(cursor, "kv"))
        if not _KV_COLUMNS <= kv_cols:
            raise SchemaError(
                f"its legacy table 'kv' has columns {sorted(kv_cols)}, not (grp, key, value)"
            )
        # NOTE: entries' NOT NULL columns would make INSERT OR IGNORE drop these rows silently.
        nulls = cursor.execute(
            "SELECT grp, key FROM kv WHERE grp IS NULL OR key IS NULL OR value IS NULL LIMIT 6"
        ).fetchall()
        if nulls:
            shown = ", ".join(f"({g!r}, {k!r})" for g, k in nulls[:5])
            raise SchemaError(
                "its legacy table 'kv' has rows with a NULL grp, key or value, which the "
                f"migration would lose: (grp, key) = {shown}{', ...' if len(nulls) > 5 else ''}; "
                "fix or delete them, then open it again"
            )
    return not entries_cols, bool(entries_cols) and "expires_at" not in entries_cols, has_legacy


def needs_migration(conn: apsw.Connection) -> bool:
    """True when opening would change the schema (a read-only open refuses such a file)."""
    return any(_plan(conn.cursor()))


def migrate(conn: apsw.Connection) -> None:
    """Create the ``entries`` table, add a missing ``expires_at``, absorb a legacy ``kv`` table.

    Reads first and writes only when something is missing, so an up-to-date read-only file
    opens. All changes happen in one ``BEGIN IMMEDIATE`` transaction, planned again inside it
    in case another process migrated the file in between.
    """
    cursor = conn.cursor()
    if not any(_plan(cursor)):
        return
    cursor.execute(BEGIN)
    try:
        needs_create, needs_ttl_column, has_legacy = _plan(cursor)
        if needs_create:
            cursor.execute(CREATE_ENTRIES)
        if needs_ttl_column:
            cursor.execute("ALTER TABLE entries ADD COLUMN expires_at INTEGER")
        if has_legacy:
            kv_cols = _table_columns(cursor, "kv")
            expiry = "expires_at" if "expires_at" in kv_cols else "NULL"
            # Existing entries rows win over legacy rows with the same group and key.
            cursor.execute(
                "INSERT OR IGNORE INTO entries (group_name, entry_key, entry_value, expires_at) "
                f"SELECT grp, key, value, {expiry} FROM kv"
            )
            cursor.execute("DROP TABLE kv")
        cursor.execute(COMMIT)
    except BaseException:
        if not conn.getautocommit():
            cursor.execute(ROLLBACK)
        raise


class BusyWaiter:
    """SQLite's busy handler: retry a locked database for up to ``timeout`` seconds.

    NOTE: it replaces sqlite3_busy_timeout(), whose back-off reaches 100 ms sleeps: under
    sustained writes from several processes a waiter sleeping that long keeps missing the lock
    as others take it in between, and can wait out the whole timeout (seen with 4 processes).
    Back-off capped at 8 ms, with jitter so waiters do not march in step, shares the lock
    more fairly at about the same throughput (4-process soak: 7 s, as with the default).
    """

    __slots__ = ("_deadline", "_timeout")

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._deadline = 0.0

    def __call__(self, attempts: int) -> bool:
        now = time.monotonic()
        if attempts == 0:
            self._deadline = now + self._timeout
        elif now >= self._deadline:
            return False
        pause = min(0.001 * (1 << min(attempts, 3)), self._deadline - now)
        time.sleep(pause * (0.5 + random.random()))
        return True


def connect(
    path: str,
    busy_timeout: float,
    synchronous: str,
    *,
    readonly: bool = False,
    cache_size_mb: float = DEFAULT_CACHE_SIZE_MB,
    mmap_size_mb: float = DEFAULT_MMAP_SIZE_MB,
) -> apsw.Connection:
    """Open ``path`` with go-store's pragmas and an up-to-date schema.

    ``readonly`` opens without writing anything: no WAL switch, no migration (a file that
    needs one raises :class:`SchemaError`), no checkpoint when the connection closes.
    On any failure the connection is closed before the exception propagates.
    """
    if readonly:
        flags = apsw.SQLITE_OPEN_READONLY
    else:
        flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
    conn = apsw.Connection(path, flags=flags)
    try:
        # NOTE: the busy timeout comes first, so that everything below waits for other
        # processes instead of failing at once.
        conn.set_busy_handler(BusyWaiter(busy_timeout))
        # Double-quoted strings as identifiers only (SQLite's recommended setting).
        conn.config(apsw.SQLITE_DBCONFIG_DQS_DML, 0)
        conn.config(apsw.SQLITE_DBCONFIG_DQS_DDL, 0)
        if readonly:
            conn = _open_readable(conn, path, busy_timeout)
            set_cache(conn, cache_size_mb, mmap_size_mb)
            return conn
        if path != MEMORY:
            try:
                _set_wal(conn, busy_timeout)
            except apsw.CantOpenError:
                if not _read_only_without_wal(conn, path):
                    raise
                conn.close()
                conn = _open_immutable(path, busy_timeout)
        conn.execute(f"PRAGMA synchronous={SYNCHRONOUS_LEVELS[synchronous]}")
        migrate(conn)
        set_cache(conn, cache_size_mb, mmap_size_mb)
    except BaseException:
        conn.close()
        raise
    return conn


def set_cache(conn: apsw.Connection, cache_size_mb: float, mmap_size_mb: float) -> None:
    """Size the page cache and the memory-mapped I/O window.

    NOTE: with a 2 MB page cache, a lookup in a large file reads most B-tree pages from the OS
    cache again (a copy per page); memory-mapped reads use the OS cache's pages in place, with
    no copy and no private memory. A larger page cache avoids the copies too, but costs
    private memory per connection and measured no faster. https://www.sqlite.org/mmap.html
    """
    conn.execute(f"PRAGMA cache_size=-{int(cache_size_mb * 1024)}")
    conn.execute(f"PRAGMA mmap_size={int(mmap_size_mb * 1024 * 1024)}")


def _open_readable(conn: apsw.Connection, path: str, busy_timeout: float) -> apsw.Connection:
    """Check that a read-only ``conn`` can serve gostore as it is; the connection to use."""
    try:
        _check_readable(conn)
    except apsw.CantOpenError:
        # A WAL file whose -shm cannot be created (a read-only filesystem): as connect() does.
        if not _read_only_without_wal(conn, path):
            raise
        conn.close()
        conn = _open_immutable(path, busy_timeout)
        try:
            _check_readable(conn)
        except BaseException:
            conn.close()
            raise
    return conn


def _check_readable(conn: apsw.Connection) -> None:
    # NOTE: a read-only connection must never checkpoint the WAL into the file when it closes
    # (SQLite does that for the last connection of a database); and it cannot migrate.
    conn.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
    if needs_migration(conn):
        raise SchemaError(
            "it has no up-to-date go-store table, and a read-only open never changes the "
            "schema; open it once without readonly=True to create or migrate it"
        )


def _read_only_without_wal(conn: apsw.Connection, path: str) -> bool:
    """True for a WAL file SQLite can only open read-only and whose -shm cannot be created."""
    wal = path + "-wal"
    return conn.readonly("main") and (not os.path.exists(wal) or os.path.getsize(wal) == 0)


def _open_immutable(path: str, busy_timeout: float) -> apsw.Connection:
    # NOTE: SQLite reads a WAL-mode file only through its -shm index; on a read-only filesystem
    # (or directory) with no -shm, the only way to read it is as immutable. That is safe only
    # when no -wal holds uncommitted pages, which the caller checked. Writes then fail with
    # SQLITE_READONLY. https://www.sqlite.org/wal.html#readonly
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?immutable=1"
    conn = apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    conn.set_busy_timeout(int(busy_timeout * 1000))
    return conn


def failure_reason(exc: BaseException, busy_timeout: float | None = None) -> str:
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
    if isinstance(exc, apsw.TooBigError):
        return "a string or blob is larger than SQLite's length limit (SQLITE_TOOBIG)"
    if isinstance(exc, apsw.ConnectionClosedError):
        return "the database is closed"
    return f"SQLite error {type(exc).__name__}: {exc}"
