"""The change feed's objects and statements on PostgreSQL (see ``postgres_feed``).

Every name is qualified with the schema of the store's ``entries`` table when the objects are
created, so a trigger fired by a client whose ``search_path`` differs still records into the
feed next to the table it changed::

    gostore_changes(seq bigint PRIMARY KEY, kind, group_name, entry_key, entry_value,
                    at_ms, origin)
    gostore_changes_seq                  -- the sequence seq comes from
    gostore_changes_trimmed(seq)         -- the newest seq the retention removed (one row)
    gostore_record()                     -- the row trigger function on entries; it keeps
                                            the transaction's first seq in gostore.feed_first
    gostore_feed_lock()                  -- the statement trigger function: the feed's lock
    gostore_put(), gostore_delete()      -- a write and the seq it was recorded with
    gostore_feed_hold(), gostore_feed_try_hold()  -- take the feed's lock; the newest seq
"""

from __future__ import annotations

import hashlib

__all__ = ("FeedSQL", "channel_for", "lock_key_for")

SET, DELETE, DELETE_GROUP, EXPIRE = 0, 1, 2, 3

NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
#: the setting in which the trigger keeps the first seq its transaction recorded
FIRST = "gostore.feed_first"
#: the seq after which the rows of a statement are its own: a seq bound as a parameter (the
#: newest one before it, the transaction having recorded already) or else, NULL bound, the
#: one before the transaction's first
_AFTER = f"seq > coalesce(%b::bigint, nullif(current_setting('{FIRST}', true), '')::bigint - 1)"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def channel_for(schema: str) -> str:
    """The NOTIFY channel of the feed of ``schema`` (every client derives the same name)."""
    return "gostore_changes_" + hashlib.blake2b(schema.encode(), digest_size=8).hexdigest()


def lock_key_for(schema: str) -> int:
    """The advisory-lock key of the feed of ``schema``: signed 64 bits."""
    digest = hashlib.blake2b(f"gostore\0feed\0{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class FeedSQL:
    """The statements of the feed of one schema."""

    def __init__(self, schema: str) -> None:
        s = _quote(schema) + "."
        self.schema = schema
        self.channel = channel_for(schema)
        key = lock_key_for(schema)
        table = f"{s}gostore_changes"
        seq = f"{s}gostore_changes_seq"
        self.table = table
        insert = f"INSERT INTO {table} (kind, group_name, entry_key, entry_value, at_ms, origin)"
        # NOTE: no NOT NULL or type constraints and no casts of the origin setting: a write by
        # another program must never fail because of the feed, whatever it stores or sets.
        self.create = (
            f"CREATE SEQUENCE IF NOT EXISTS {seq}",
            f"""CREATE TABLE IF NOT EXISTS {table} (
    seq         bigint PRIMARY KEY DEFAULT nextval('{seq}'),
    kind        integer,
    group_name  bytea,
    entry_key   bytea,
    entry_value bytea,
    at_ms       bigint,
    origin      text
)""",
            f"CREATE TABLE IF NOT EXISTS {s}gostore_changes_trimmed (seq bigint)",
            # The feed's lock is held before the seq is taken (gostore_feed_lock below, at the
            # start of the statement): see postgres_feed's NOTE on commit order.
            f"""CREATE OR REPLACE FUNCTION {s}gostore_record() RETURNS trigger
LANGUAGE plpgsql AS $gostore$
DECLARE
    origin text := current_setting('gostore.origin', true);
    first_seq bigint;
    taken bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        {insert} VALUES ({DELETE}, OLD.group_name, OLD.entry_key, ''::bytea, {NOW_MS}, origin)
            RETURNING seq INTO first_seq;
    ELSE
        IF TG_OP = 'UPDATE' THEN
            -- an update that moves a row to another group or key deletes the old one
            IF OLD.group_name IS DISTINCT FROM NEW.group_name
                    OR OLD.entry_key IS DISTINCT FROM NEW.entry_key THEN
                {insert} VALUES ({DELETE}, OLD.group_name, OLD.entry_key, ''::bytea, {NOW_MS},
                                 origin) RETURNING seq INTO first_seq;
            END IF;
        END IF;
        {insert} VALUES ({SET}, NEW.group_name, NEW.entry_key, NEW.entry_value, {NOW_MS},
                         origin) RETURNING seq INTO taken;
        first_seq := coalesce(first_seq, taken);
    END IF;
    -- the transaction's first seq: gostore finds the rows its statements recorded from it
    IF coalesce(current_setting('{FIRST}', true), '') = '' THEN
        PERFORM set_config('{FIRST}', first_seq::text, true);
    END IF;
    PERFORM pg_notify('{self.channel}', coalesce(origin, ''));
    RETURN NULL;
END
$gostore$""",
            f"""CREATE OR REPLACE TRIGGER gostore_changes
AFTER INSERT OR UPDATE OR DELETE ON {s}entries FOR EACH ROW EXECUTE FUNCTION {s}gostore_record()""",
            # Every writing statement takes the feed's lock before it touches a row, so no
            # writer holds a row while it waits for the lock: one that did (the row trigger
            # took the lock) deadlocked with a transaction holding the lock and wanting that
            # row. The two triggers are created together, and an open that finds one missing
            # creates it again.
            f"""CREATE OR REPLACE FUNCTION {s}gostore_feed_lock() RETURNS trigger
LANGUAGE plpgsql AS $gostore$
BEGIN
    PERFORM pg_advisory_xact_lock({key});
    RETURN NULL;
END
$gostore$""",
            f"""CREATE OR REPLACE TRIGGER gostore_changes_lock
BEFORE INSERT OR UPDATE OR DELETE ON {s}entries
FOR EACH STATEMENT EXECUTE FUNCTION {s}gostore_feed_lock()""",
            # A set and a delete in one statement that also returns the seq recorded: the row
            # trigger has run when the function's own statement ends.
            f"""CREATE OR REPLACE FUNCTION {s}gostore_put(g bytea, k bytea, v bytea, e bigint)
RETURNS bigint LANGUAGE plpgsql AS $gostore$
BEGIN
    INSERT INTO {s}entries (group_name, entry_key, entry_value, expires_at)
    VALUES (g, k, v, e) ON CONFLICT (group_name, entry_key) DO UPDATE
    SET entry_value = excluded.entry_value, expires_at = excluded.expires_at;
    RETURN currval('{seq}');
END
$gostore$""",
            f"""CREATE OR REPLACE FUNCTION {s}gostore_delete(g bytea, k bytea)
RETURNS bigint LANGUAGE plpgsql AS $gostore$
BEGIN
    DELETE FROM {s}entries WHERE group_name = g AND entry_key = k;
    IF FOUND THEN
        RETURN currval('{seq}');
    END IF;
    RETURN 0;
END
$gostore$""",
            # Each statement of a PL/pgSQL function sees what committed before it started, so
            # the newest seq is read after the lock is held: every later row is this
            # transaction's own.
            f"""CREATE OR REPLACE FUNCTION {s}gostore_feed_hold() RETURNS bigint
LANGUAGE plpgsql AS $gostore$
BEGIN
    PERFORM pg_advisory_xact_lock({key});
    RETURN coalesce((SELECT max(seq) FROM {table}), 0);
END
$gostore$""",
            f"""CREATE OR REPLACE FUNCTION {s}gostore_feed_try_hold() RETURNS bigint
LANGUAGE plpgsql AS $gostore$
BEGIN
    IF NOT pg_try_advisory_xact_lock({key}) THEN
        RETURN NULL;
    END IF;
    RETURN coalesce((SELECT max(seq) FROM {table}), 0);
END
$gostore$""",
        )
        prefix = f"CREATE OR REPLACE FUNCTION {s}"
        #: the functions' CREATE statements by name (replaced at open when they differ)
        self.functions = {
            statement[len(prefix) :].partition("(")[0]: statement
            for statement in self.create
            if statement.startswith(prefix)
        }
        self.exists = (
            f"SELECT to_regclass('{table}') IS NOT NULL "
            f"AND to_regclass('{s}gostore_changes_trimmed') IS NOT NULL "
            f"AND to_regprocedure('{s}gostore_feed_try_hold()') IS NOT NULL "
            "AND (SELECT count(*) = 2 FROM pg_trigger WHERE tgname IN ('gostore_changes', "
            f"'gostore_changes_lock') AND tgrelid = '{s}entries'::regclass)"
        )
        self.put = f"SELECT {s}gostore_put(%b, %b, %b, %b::bigint)"
        self.delete = f"SELECT {s}gostore_delete(%b, %b)"
        self.hold = f"SELECT {s}gostore_feed_hold()"
        self.try_hold = f"SELECT {s}gostore_feed_try_hold()"
        self.last_seq = f"SELECT coalesce(max(seq), 0) FROM {table}"
        # The newest seq and the transaction's first (NULL when it recorded nothing).
        self.written = (
            f"SELECT coalesce(max(seq), 0), nullif(current_setting('{FIRST}', true), '')::bigint "
            f"FROM {table}"
        )
        # The newest seq when this transaction has recorded (and so holds the feed's lock);
        # NULL before its first recorded change.
        self.mark = (
            f"SELECT CASE WHEN coalesce(current_setting('{FIRST}', true), '') <> '' "
            f"THEN (SELECT coalesce(max(seq), 0) FROM {table}) END"
        )
        self.trimmed = f"SELECT coalesce(max(seq), 0) FROM {s}gostore_changes_trimmed"
        columns = "seq, kind, group_name, entry_key, entry_value, at_ms"
        self.read = f"SELECT {columns} FROM {table} WHERE seq > %b ORDER BY seq LIMIT %b"
        # Other connections' changes, and (last row, one snapshot) the newest seq: the reader
        # then moves past this store's own changes without reading them again.
        self.read_others = (
            f"(SELECT {columns}, false FROM {table} WHERE seq > %b "
            "AND origin IS DISTINCT FROM %b ORDER BY seq LIMIT %b) "
            f"UNION ALL SELECT max(seq), NULL, NULL, NULL, NULL, NULL, true FROM {table}"
        )
        # Fix-ups of what the trigger recorded for this transaction's latest statement.
        self.recorded_groups = f"SELECT group_name FROM {table} WHERE {_AFTER} ORDER BY seq"
        self.recorded_keys = (
            f"SELECT group_name, entry_key FROM {table} WHERE {_AFTER} ORDER BY seq"
        )
        self.forget = f"DELETE FROM {table} WHERE {_AFTER}"
        self.record_group = (
            f"{insert} VALUES ({DELETE_GROUP}, %b, ''::bytea, ''::bytea, {NOW_MS}, %b)"
        )
        self.mark_expired = f"UPDATE {table} SET kind = {EXPIRE} WHERE {_AFTER}"
        # Retention removes a prefix of the feed, and keeps the newest row (see SQLite's).
        self.first_kept = f"SELECT seq FROM {table} WHERE at_ms >= %b ORDER BY seq LIMIT 1"
        self.trim_before = f"DELETE FROM {table} WHERE seq < %b RETURNING seq"
        self.trim_all = (
            f"DELETE FROM {table} WHERE seq < (SELECT max(seq) FROM {table}) RETURNING seq"
        )
        self.clear_trimmed = f"DELETE FROM {s}gostore_changes_trimmed"
        self.set_trimmed = f"INSERT INTO {s}gostore_changes_trimmed (seq) VALUES (%b)"
