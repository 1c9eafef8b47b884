"""The PostgreSQL engine's SQL text and its schema: the ``entries`` table, and the namespace
change counters that keep quota checks from scanning a namespace at every write.

Group, key and value are ``bytea`` holding UTF-8: PostgreSQL ``text`` cannot hold NUL, and
``bytea`` compares bytewise, which is SQLite's BINARY order, so ordering and prefix ranges
behave as on SQLite. ``expires_at`` is Unix ms.

Namespace change counters: ``entries_namespaces`` holds, per namespace (the part of a group
name before its first ``:``), how many times its rows changed. Triggers on ``entries`` bump it
in the transaction of the write, whoever writes (any gostore client, scoped or not, and any
other program), once per statement and namespace. A quota ledger is valid while the counter of
its namespace stays put, so a checked write reads one small row set instead of counting the
namespace. Three details make the counter exact and cheap:

* A counter is split into rows by writer and server backend, so that concurrent writers never
  wait for each other on a counter row. The namespace's count is the sum of its rows.
* A gostore client that holds its lock on a namespace (the quota check's advisory lock) tags
  its writes there with its own writer id, and reads the sum of the *other* writers' rows: its
  own checked writes are already in its ledger, and every other change moves the sum. Rows
  are never decremented, so the sum only grows while anyone else writes.
* Deleting a row that had already expired (by the server's clock) changes no live total, so
  the purge and the lazy delete do not bump. ``TRUNCATE`` bumps the ``:`` row, which is no
  namespace (a namespace never contains ``:``) and is counted by every namespace.

Rows of backends that have ended are folded into one row per namespace (writer ``''``,
backend ``0``) by the purge, which keeps every other writer's sum unchanged.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import psycopg
from psycopg import sql as pgsql

from . import DatabaseError

__all__ = (
    "GET",
    "LOCK",
    "Schema",
    "lock_key",
    "prepare_schema",
    "range_args",
    "ranged",
    "stale_functions",
)

# -- the entries table ---------------------------------------------------------------------------
LIVE = "(expires_at IS NULL OR expires_at > %b)"
# NOTE: created only when missing, by name: even with IF NOT EXISTS, CREATE INDEX locks the
# table first, and would wait at every open for every write transaction and for autovacuum.
_CREATE = {
    "entries": "CREATE TABLE IF NOT EXISTS entries ("
    "group_name bytea NOT NULL, entry_key bytea NOT NULL, entry_value bytea NOT NULL, "
    "expires_at bigint, PRIMARY KEY (group_name, entry_key))",
    # The purge scans only the rows that have an expiry.
    "entries_expires_at": "CREATE INDEX IF NOT EXISTS entries_expires_at ON entries (expires_at) "
    "WHERE expires_at IS NOT NULL",
}
_RELATIONS_FOUND = (
    "SELECT relname FROM pg_class WHERE relnamespace = "
    "(SELECT oid FROM pg_namespace WHERE nspname = current_schema()) AND relname = ANY(%s)"
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

# -- namespace change counters -------------------------------------------------------------------
_CREATE["entries_namespaces"] = (
    "CREATE TABLE IF NOT EXISTS entries_namespaces (namespace bytea NOT NULL, "
    "writer text NOT NULL, backend integer NOT NULL, changes bigint NOT NULL, "
    "PRIMARY KEY (namespace, writer, backend))"
)
# NOTE: two steps, so that a write outside every namespace costs next to nothing and a batch
# bumps each namespace once: row triggers, filtered in C by their WHEN clause, note the rows'
# namespaces in a transaction-local setting (hex, each once); a statement trigger writes the
# counters and empties the note. The note lives and dies with the statement's (sub)transaction.
_NOTE = """
CREATE OR REPLACE FUNCTION {schema}.gostore_entries_note() RETURNS trigger
LANGUAGE plpgsql AS $body$
DECLARE
    noted text := coalesce(current_setting('gostore.touched', true), '');
    g bytea;
    item text;
BEGIN
    FOREACH g IN ARRAY CASE TG_OP WHEN 'INSERT' THEN ARRAY[NEW.group_name]
        WHEN 'DELETE' THEN ARRAY[OLD.group_name] ELSE ARRAY[OLD.group_name, NEW.group_name] END
    LOOP
        IF position(':'::bytea IN g) > 0 THEN
            item := 'x' || encode(substring(g FROM 1 FOR position(':'::bytea IN g) - 1), 'hex');
            IF position(',' || item || ',' IN ',' || noted) = 0 THEN
                noted := noted || item || ',';
            END IF;
        END IF;
    END LOOP;
    PERFORM set_config('gostore.touched', noted, true);
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$body$
"""
# NOTE: SECURITY DEFINER, so a role that may write entries need not be granted the counters
# table; with a fixed search_path, as such a function must have, and the table named in full.
_BUMP = """
CREATE OR REPLACE FUNCTION {schema}.gostore_entries_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    noted text := coalesce(current_setting('gostore.touched', true), '');
    held bytea;
    tag text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        noted := noted || 'x3a,';
    END IF;
    IF noted = '' THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('gostore.touched', '', true);
    held := convert_to(coalesce(current_setting('gostore.namespaces', true), ''), 'UTF8');
    tag := coalesce(current_setting('gostore.writer', true), '');
    INSERT INTO {table} AS c (namespace, writer, backend, changes)
    SELECT ns, CASE WHEN position(':'::bytea || ns || ':'::bytea IN held) > 0
                    THEN tag ELSE '' END, pg_backend_pid(), 1
    FROM (SELECT DISTINCT decode(substr(item, 2), 'hex')
          FROM unnest(string_to_array(rtrim(noted, ','), ',')) AS t(item)) AS n(ns)
    ON CONFLICT (namespace, writer, backend) DO UPDATE SET changes = c.changes + 1;
    RETURN NULL;
END
$body$
"""
# NOTE: one round trip for the lock and the token. In READ COMMITTED each statement of a
# volatile function takes a new snapshot, so the token is read after the lock is granted and
# sees every commit of the previous holder.
_LOCK_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.gostore_lock_namespace(lock_key bigint, tag text, ns text)
RETURNS bigint LANGUAGE plpgsql AS $body$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    PERFORM set_config('gostore.writer', tag, true);
    PERFORM set_config('gostore.namespaces', coalesce(nullif(current_setting(
        'gostore.namespaces', true), ''), ':') || ns || ':', true);
    RETURN (SELECT coalesce(sum(changes), 0) FROM {table}
            WHERE namespace IN (convert_to(ns, 'UTF8'), ':'::bytea) AND writer <> tag);
END
$body$
"""
_IN_NAMESPACE = "position(':'::bytea IN {row}.group_name) > 0"
_NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
_TRIGGERS = {
    "entries_namespaces_insert": "BEFORE INSERT ON entries FOR EACH ROW WHEN ({new}) "
    "EXECUTE FUNCTION {note}()",
    "entries_namespaces_update": "BEFORE UPDATE ON entries FOR EACH ROW WHEN ({old} OR {new}) "
    "EXECUTE FUNCTION {note}()",
    # Removing a row that had already expired changes no live total.
    "entries_namespaces_delete": "BEFORE DELETE ON entries FOR EACH ROW WHEN ({old} AND "
    f"(OLD.expires_at IS NULL OR OLD.expires_at > {_NOW_MS})) EXECUTE FUNCTION {{note}}()",
    "entries_namespaces_bump": "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON entries "
    "FOR EACH STATEMENT EXECUTE FUNCTION {bump}()",
}
_TRIGGERS_FOUND = (
    "SELECT tgname FROM pg_trigger WHERE tgrelid = 'entries'::regclass AND NOT tgisinternal"
)
_FUNCTIONS_FOUND = (
    "SELECT proname, prosrc, prosecdef, proconfig FROM pg_proc WHERE pronamespace = "
    "(SELECT oid FROM pg_namespace WHERE nspname = current_schema()) AND proname = ANY(%s)"
)
#: the quota check's lock on a namespace, which tags this client's writes there as its own,
#: and the namespace's change token read once the lock is held
LOCK_NAMESPACE = "SELECT gostore_lock_namespace(%b::bigint, %b::text, %b::text)"
#: the changes of a namespace by every writer but this client (and every TRUNCATE)
CHANGES = (
    "SELECT coalesce(sum(changes), 0) FROM entries_namespaces "
    "WHERE namespace IN (%b::bytea, ':'::bytea) AND writer <> %b::text"
)
#: fold the rows of backends that have ended into one row per namespace
FOLD = (
    "WITH gone AS (DELETE FROM entries_namespaces AS c WHERE backend <> 0 AND NOT EXISTS "
    "(SELECT 1 FROM pg_stat_activity AS a WHERE a.pid = c.backend) "
    "RETURNING namespace, changes) "
    "INSERT INTO entries_namespaces AS c (namespace, writer, backend, changes) "
    "SELECT namespace, '', 0, sum(changes) FROM gone GROUP BY namespace "
    "ON CONFLICT (namespace, writer, backend) DO UPDATE SET changes = c.changes + excluded.changes"
)

# -- statements --------------------------------------------------------------------------------
GET = "SELECT entry_value, expires_at FROM entries WHERE group_name = %b AND entry_key = %b"
EXISTS = f"SELECT 1 FROM entries WHERE group_name = %b AND entry_key = %b AND {LIVE}"
GET_MANY = (
    "SELECT entry_key, entry_value FROM entries WHERE group_name = %b "
    f"AND entry_key = ANY(%b::bytea[]) AND {LIVE}"
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
COUNT = f"SELECT count(*) FROM entries WHERE group_name = %b AND {LIVE}"
ENTRIES = f"SELECT entry_key, entry_value FROM entries WHERE group_name = %b AND {LIVE}"
PAGE = (
    f"SELECT entry_key, entry_value FROM entries WHERE group_name = %b AND {LIVE} "
    "ORDER BY entry_key LIMIT %b::bigint OFFSET %b::bigint"
)
PAGE_AFTER = (
    "SELECT entry_key, entry_value FROM entries WHERE group_name = %b AND entry_key > %b "
    f"AND {LIVE} ORDER BY entry_key LIMIT %b::bigint"
)
ROW_SIZE = (
    "SELECT octet_length(entry_key) + octet_length(entry_value), expires_at FROM entries "
    "WHERE group_name = %b AND entry_key = %b"
)
LOCK = "SELECT pg_advisory_xact_lock(%b::bigint)"
SET_EXPIRY = "UPDATE entries SET expires_at = %b WHERE group_name = %b AND entry_key = %b"
STATS = (
    f"SELECT count(*) FILTER (WHERE {LIVE}), count(*) FILTER (WHERE NOT {LIVE}), "
    f"count(DISTINCT group_name) FILTER (WHERE {LIVE}), "
    f"COALESCE(sum(length(entry_key) + length(entry_value)) FILTER (WHERE {LIVE}), 0), "
    "pg_total_relation_size('entries') FROM entries"
)
CHECK = (
    "SELECT count(*) FROM entries WHERE convert_from(group_name, 'UTF8') IS NULL "
    "OR convert_from(entry_key, 'UTF8') IS NULL OR convert_from(entry_value, 'UTF8') IS NULL"
)


def ranged(template: str) -> tuple[str, str]:
    """``template`` with ``{range}`` as ``lo <= group_name < hi`` and as ``lo <= group_name``
    (a prefix with no upper bound); both bind ``lo`` then ``hi``, the second ignoring it."""
    return (
        template.format(range="group_name >= %b AND group_name < %b"),
        template.format(range="group_name >= %b AND %b::bytea IS NOT NULL"),
    )


COUNT_RANGE = ranged(f"SELECT count(*) FROM entries WHERE {{range}} AND {LIVE}")
GROUPS_FIRST = ranged(
    "SELECT DISTINCT group_name FROM entries WHERE {range} AND group_name >= %b AND "
    f"{LIVE} ORDER BY group_name LIMIT %b::bigint"
)
GROUPS_AFTER = ranged(
    "SELECT DISTINCT group_name FROM entries WHERE {range} AND group_name > %b AND "
    f"{LIVE} ORDER BY group_name LIMIT %b::bigint"
)
DELETE_RANGE = ranged("DELETE FROM entries WHERE {range} RETURNING group_name")
PURGE = ranged(
    "DELETE FROM entries WHERE {range} AND expires_at IS NOT NULL AND expires_at <= %b "
    "RETURNING group_name, entry_key"
)
TOTALS = ranged(
    "SELECT group_name, count(*), sum(octet_length(entry_key) + octet_length(entry_value)) "
    f"FROM entries WHERE {{range}} AND {LIVE} GROUP BY group_name"
)
EXPIRING = ranged(
    "SELECT group_name, entry_key, octet_length(entry_key) + octet_length(entry_value), "
    "expires_at FROM entries WHERE {range} AND expires_at IS NOT NULL AND expires_at > %b"
)
EXPORT = (
    "SELECT group_name, entry_key, entry_value, expires_at FROM entries "
    f"WHERE {LIVE} ORDER BY group_name, entry_key"
)


def range_args(hi: str | bytes) -> tuple[int, bytes]:
    """Which form of a ranged statement, and the ``hi`` to bind (``b""``: no upper bound)."""
    if isinstance(hi, bytes):
        return 1, hi
    return 0, hi.encode()


class Schema(NamedTuple):
    """What :func:`prepare_schema` found."""

    #: the schema holding ``entries`` (the first of the search path)
    name: str
    #: the namespace change counters are maintained (only a read-only store, which never
    #: checks a quota, can find a table without them)
    counted: bool


def prepare_schema(conn: psycopg.Connection[Any], target: str, readonly: bool) -> Schema:
    """Create what is missing of the table and its counters (one client at a time), replace
    counter functions that differ from this version's, and check the table's columns. When
    all is in place, as at every open but the first, nothing is written and no lock taken.
    Raises :class:`psycopg.Error` as the server reports it."""
    with conn.transaction():
        row = conn.execute("SELECT current_schema()").fetchone()
        schema = str(row[0]) if row and row[0] else ""
        functions = _functions(conn, schema)
        outdated = not readonly and _outdated(conn, functions)  # read-only creates nothing
        if outdated:  # create what is still missing once the lock is held
            conn.execute(LOCK, (lock_key("gostore\0create entries"),))
            relations = _names(conn, _RELATIONS_FOUND, list(_CREATE))
            for name, statement in _CREATE.items():
                if name not in relations:
                    conn.execute(statement)
        columns = dict(conn.execute(_COLUMNS).fetchall())
        wrong = {n: columns.get(n) for n, kind in _EXPECTED.items() if columns.get(n) != kind}
        if wrong:
            raise DatabaseError(
                f"cannot open {target!r}: its table 'entries' has columns {columns}, not "
                "gostore's (group_name bytea, entry_key bytea, entry_value bytea, expires_at "
                "bigint); refusing to use it"
            )
        if outdated:
            _create_counters(conn, schema, functions)
        counted = set(_TRIGGERS) <= _names(conn, _TRIGGERS_FOUND)
    return Schema(schema, counted)


class _Function(NamedTuple):
    """A counter function as ``pg_proc`` holds it: what tells whether it is this version's."""

    source: str
    security_definer: bool
    config: list[str] | None


#: the counter functions' CREATE statements (templates: see _functions), by name
_FUNCTIONS = {
    template.partition("(")[0].rpartition(".")[2]: template
    for template in (_NOTE, _BUMP, _LOCK_FUNCTION)
}


def _functions(conn: psycopg.Connection[Any], schema: str) -> dict[str, str]:
    """The counter functions' CREATE statements for ``schema``, by name."""
    names = {
        "schema": pgsql.Identifier(schema).as_string(conn),
        "table": pgsql.Identifier(schema, "entries_namespaces").as_string(conn),
    }
    return {name: template.format(**names) for name, template in _FUNCTIONS.items()}


def _described(statement: str) -> _Function:
    """What ``pg_proc`` holds once ``statement`` (CREATE OR REPLACE FUNCTION, its body quoted
    as ``AS $tag$ ... $tag$``) has run."""
    tag = statement[statement.index(" AS $") + 4 :].partition("\n")[0].strip()
    head, source, _ = statement.split(tag)
    setting = head.partition(" SET ")[2].partition(" AS ")[0]
    config = [setting.replace(" = ", "=", 1)] if setting else None
    return _Function(source, "SECURITY DEFINER" in head, config)


def _outdated(conn: psycopg.Connection[Any], functions: dict[str, str]) -> bool:
    """Whether anything is missing, or a counter function is not this version's."""
    return (
        _names(conn, _RELATIONS_FOUND, list(_CREATE)) != set(_CREATE)
        or not set(_TRIGGERS) <= _names(conn, _TRIGGERS_FOUND)
        or bool(stale_functions(conn, functions))
    )


def _names(conn: psycopg.Connection[Any], query: str, *args: Any) -> set[str]:
    return {str(row[0]) for row in conn.execute(query, args or None)}


def stale_functions(conn: psycopg.Connection[Any], functions: dict[str, str]) -> list[str]:
    """Of ``functions`` (CREATE OR REPLACE FUNCTION statements by name, for the schema of
    ``entries``), those missing there or differing from their statement."""
    rows = conn.execute(_FUNCTIONS_FOUND, (list(functions),))
    found = {row[0]: _Function(*row[1:]) for row in rows}
    return [name for name, text in functions.items() if found.get(name) != _described(text)]


def _create_counters(conn: psycopg.Connection[Any], schema: str, functions: dict[str, str]) -> None:
    for name in stale_functions(conn, functions):
        conn.execute(functions[name].encode())
    triggers = _names(conn, _TRIGGERS_FOUND)
    parts = {
        "new": _IN_NAMESPACE.format(row="NEW"),
        "old": _IN_NAMESPACE.format(row="OLD"),
        "note": pgsql.Identifier(schema, "gostore_entries_note").as_string(conn),
        "bump": pgsql.Identifier(schema, "gostore_entries_changed").as_string(conn),
    }
    for name, definition in _TRIGGERS.items():
        if name not in triggers:
            conn.execute(f"CREATE TRIGGER {name} {definition.format(**parts)}".encode())


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name``."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
