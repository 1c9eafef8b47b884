"""Storage format: go-store's schema, migrations, files shared with Go.

``tests/data/gostore_written.db`` was written by ``tests/data/gen_gostore_db`` (go-store's
statements on database/sql + modernc.org/sqlite); regenerate it with
``cd tests/data/gen_gostore_db && go run . write ../gostore_written.db``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import apsw
import pytest

from gostore import KeyValue, NotFoundError, Store, StoreError

DATA = Path(__file__).parent / "data"
GO_WRITTEN = DATA / "gostore_written.db"
GENERATOR = DATA / "gen_gostore_db"

# NOTE: compiling the Go generator takes minutes on a cold module cache, so the tests that run
# Go are opt-in (GOSTORE_GO_TESTS=1); the committed .db file covers the Go -> gostore direction.
GO_TESTS = os.environ.get("GOSTORE_GO_TESTS", "").strip() == "1" and shutil.which("go") is not None
requires_go = pytest.mark.skipif(not GO_TESTS, reason="set GOSTORE_GO_TESTS=1 (needs `go`)")

# go-store's table: PRAGMA table_info rows (cid, name, type, notnull, default, pk).
GOSTORE_COLUMNS = [
    (0, "group_name", "TEXT", 1, None, 1),
    (1, "entry_key", "TEXT", 1, None, 2),
    (2, "entry_value", "TEXT", 1, None, 0),
    (3, "expires_at", "INTEGER", 0, None, 0),
]

FAR_FUTURE = 4102444800000  # the generator's fixed expiry: 2100-01-01
LONG_AGO = 1000000000000  # the generator's fixed past expiry: 2001-09-09

# What gen_gostore_db writes (kept in step with main.go).
GO_LIVE = {
    "": {"empty group": "x"},
    "config": {"colour": "blue", "size": "10", "": "empty key", "empty value": ""},
    "unicode": {
        "日本語": "中文值",
        "العربية": "مرحبا",
        "emoji 🎉": "😀\U0010ffff",
        "accented é": "ñ ü ø",
    },
    "nul": {"a\x00b": "c\x00d", "\x00": "\x00\x00"},
    "sql": {"'; DROP TABLE entries; --": "1' OR '1'='1"},
    "special": {"tab\tnew\nline": 'quote" back\\slash'},
    "long": {"k" * 10_000: "v" * 10_000},
    "session": {"future": "still here", "relative-future": "relative"},
}
GO_EXPIRED = {("session", "past"), ("session", "relative-past"), ("expired-only", "k")}


def connect(path: Path) -> apsw.Connection:
    return apsw.Connection(str(path))


def schema_of(path: Path) -> dict[str, Any]:
    conn = connect(path)
    try:
        return {
            "tables": sorted(
                r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")
            ),
            "columns": conn.execute("PRAGMA table_info(entries)").fetchall(),
            "indexes": [
                (r[1], r[2], r[3]) for r in conn.execute("PRAGMA index_list(entries)").fetchall()
            ],
        }
    finally:
        conn.close()


def rows_of(path: Path, table: str = "entries") -> list[tuple[Any, ...]]:
    conn = connect(path)
    try:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    finally:
        conn.close()


def build(path: Path, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    """Create a database by hand, outside gostore."""
    conn = connect(path)
    try:
        for statement in statements:
            if isinstance(statement, tuple):
                conn.execute(*statement)
            else:
                conn.execute(statement)
    finally:
        conn.close()


@pytest.fixture
def go_db(tmp_path: Path) -> Path:
    """A private copy: opening a database writes -wal/-shm files beside it."""
    copy = tmp_path / "gostore_written.db"
    shutil.copyfile(GO_WRITTEN, copy)
    return copy


# -- the schema gostore writes -------------------------------------------------------------------
def test_new_file_has_exactly_gostores_schema(db_path: Path) -> None:
    with Store(db_path, purge_interval=0) as s:
        s.set("g", "k", "v")
    schema = schema_of(db_path)
    assert schema["tables"] == ["entries"]
    assert schema["columns"] == GOSTORE_COLUMNS
    # The primary key (group_name, entry_key) is the only index, as in go-store.
    assert schema["indexes"] == [("sqlite_autoindex_entries_1", 1, "pk")]


def test_gostore_schema_matches_the_go_written_file(db_path: Path) -> None:
    with Store(db_path, purge_interval=0):
        pass
    assert schema_of(db_path) == schema_of(GO_WRITTEN)


def test_expiry_is_stored_as_integer_unix_ms(db_path: Path) -> None:
    with Store(db_path, purge_interval=0) as s:
        before = int(time.time() * 1000)
        s.set_with_ttl("g", "k", "v", 60)
        after = int(time.time() * 1000) + 1
    conn = connect(db_path)
    try:
        ((kind, expires),) = conn.execute("SELECT typeof(expires_at), expires_at FROM entries")
    finally:
        conn.close()
    assert kind == "integer"
    assert before + 60_000 <= expires <= after + 60_000


def test_reopening_an_up_to_date_file_changes_nothing(db_path: Path) -> None:
    with Store(db_path, purge_interval=0) as s:
        s.set("g", "k", "v")
    conn = connect(db_path)
    version = conn.execute("PRAGMA schema_version").fetchall()
    conn.close()
    with Store(db_path, purge_interval=0):
        pass
    conn = connect(db_path)
    try:
        assert conn.execute("PRAGMA schema_version").fetchall() == version
    finally:
        conn.close()


# -- migrations ----------------------------------------------------------------------------------
def test_entries_table_without_expires_at_gets_the_column(db_path: Path) -> None:
    build(
        db_path,
        "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, "
        "entry_value TEXT NOT NULL, PRIMARY KEY (group_name, entry_key))",
        ("INSERT INTO entries VALUES (?, ?, ?)", ("config", "colour", "blue")),
        ("INSERT INTO entries VALUES (?, ?, ?)", ("config", "nul\x00", "日本")),
    )
    with Store(db_path, purge_interval=0) as s:
        assert s.get_all("config") == {"colour": "blue", "nul\x00": "日本"}
        s.set_with_ttl("config", "ttl", "v", 60)
        assert s.count("config") == 3
    assert schema_of(db_path)["columns"] == GOSTORE_COLUMNS
    assert ("config", "colour", "blue", None) in rows_of(db_path)


def test_legacy_kv_table_is_copied_into_entries_and_dropped(db_path: Path) -> None:
    build(
        db_path,
        "CREATE TABLE kv (grp TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
        "PRIMARY KEY (grp, key))",
        ("INSERT INTO kv VALUES (?, ?, ?)", ("config", "colour", "blue")),
        ("INSERT INTO kv VALUES (?, ?, ?)", ("config", "size", "10")),
        ("INSERT INTO kv VALUES (?, ?, ?)", ("other", "k\x00", "🎉")),
    )
    with Store(db_path, purge_interval=0) as s:
        assert s.get_all("config") == {"colour": "blue", "size": "10"}
        assert s.get("other", "k\x00") == "🎉"
    assert schema_of(db_path)["tables"] == ["entries"]
    assert schema_of(db_path)["columns"] == GOSTORE_COLUMNS


def test_legacy_kv_with_expires_at_keeps_expiry(db_path: Path) -> None:
    future = int(time.time() * 1000) + 3_600_000
    build(
        db_path,
        "CREATE TABLE kv (grp TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
        "expires_at INTEGER, PRIMARY KEY (grp, key))",
        ("INSERT INTO kv VALUES (?, ?, ?, ?)", ("g", "plain", "a", None)),
        ("INSERT INTO kv VALUES (?, ?, ?, ?)", ("g", "future", "b", future)),
        ("INSERT INTO kv VALUES (?, ?, ?, ?)", ("g", "past", "c", 1000)),
    )
    with Store(db_path, purge_interval=0) as s:
        assert s.get_all("g") == {"plain": "a", "future": "b"}
        assert rows_of(db_path) == sorted(
            [("g", "plain", "a", None), ("g", "future", "b", future), ("g", "past", "c", 1000)],
            key=repr,
        )
        with pytest.raises(NotFoundError):
            s.get("g", "past")
    assert schema_of(db_path)["tables"] == ["entries"]


def test_existing_entries_rows_win_over_legacy_kv_rows(db_path: Path) -> None:
    build(
        db_path,
        "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, "
        "entry_value TEXT NOT NULL, expires_at INTEGER, PRIMARY KEY (group_name, entry_key))",
        "CREATE TABLE kv (grp TEXT, key TEXT, value TEXT, expires_at INTEGER)",
        ("INSERT INTO entries VALUES (?, ?, ?, ?)", ("g", "shared", "from entries", None)),
        ("INSERT INTO kv VALUES (?, ?, ?, ?)", ("g", "shared", "from kv", 1000)),
        ("INSERT INTO kv VALUES (?, ?, ?, ?)", ("g", "only-kv", "legacy", None)),
    )
    with Store(db_path, purge_interval=0) as s:
        assert s.get_all("g") == {"shared": "from entries", "only-kv": "legacy"}
    assert rows_of(db_path) == sorted(
        [("g", "shared", "from entries", None), ("g", "only-kv", "legacy", None)], key=repr
    )
    assert schema_of(db_path)["tables"] == ["entries"]


def test_entries_without_expires_at_and_legacy_kv_migrate_together(db_path: Path) -> None:
    build(
        db_path,
        "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, "
        "entry_value TEXT NOT NULL, PRIMARY KEY (group_name, entry_key))",
        "CREATE TABLE kv (grp TEXT, key TEXT, value TEXT, expires_at INTEGER)",
        ("INSERT INTO entries VALUES (?, ?, ?)", ("g", "a", "new")),
        ("INSERT INTO kv VALUES (?, ?, ?, ?)", ("g", "a", "old", None)),
        ("INSERT INTO kv VALUES (?, ?, ?, ?)", ("g", "b", "legacy", 1000)),
    )
    with Store(db_path, purge_interval=0) as s:
        assert s.get_all("g") == {"a": "new"}
    assert rows_of(db_path) == sorted(
        [("g", "a", "new", None), ("g", "b", "legacy", 1000)], key=repr
    )
    assert schema_of(db_path)["columns"] == GOSTORE_COLUMNS


def test_failed_migration_rolls_back_as_one_transaction(db_path: Path) -> None:
    # A trigger makes the copy fail half-way: nothing of the migration may remain.
    build(
        db_path,
        "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, "
        "entry_value TEXT NOT NULL, PRIMARY KEY (group_name, entry_key))",
        "CREATE TABLE kv (grp TEXT, key TEXT, value TEXT)",
        ("INSERT INTO kv VALUES (?, ?, ?)", ("g", "a", "1")),
        ("INSERT INTO kv VALUES (?, ?, ?)", ("g", "boom", "2")),
        "CREATE TRIGGER boom BEFORE INSERT ON entries WHEN NEW.entry_key = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'boom'); END",
    )
    before = schema_of(db_path)
    with pytest.raises(StoreError) as info:
        Store(db_path, purge_interval=0)
    assert isinstance(info.value.__cause__, apsw.Error)
    assert schema_of(db_path) == before  # no expires_at column, kv still there
    assert rows_of(db_path) == []
    assert rows_of(db_path, "kv") == [("g", "a", "1"), ("g", "boom", "2")]


# -- files written by Go -------------------------------------------------------------------------
def test_go_written_file_opens_with_every_entry_intact(go_db: Path) -> None:
    with Store(go_db, purge_interval=0) as s:
        assert s.groups() == sorted(GO_LIVE)
        for group, entries in GO_LIVE.items():
            assert s.get_all(group) == entries
            assert list(s.all(group)) == [KeyValue(k, entries[k]) for k in sorted(entries)]
            for key, value in entries.items():
                assert s.get(group, key) == value
        assert s.count_all() == sum(map(len, GO_LIVE.values()))


def test_go_written_file_keeps_ttls(go_db: Path) -> None:
    expiry = {(g, k): e for g, k, _, e in rows_of(go_db)}
    assert expiry[("session", "future")] == FAR_FUTURE
    assert expiry[("session", "past")] == LONG_AGO
    assert expiry[("session", "relative-future")] > int(time.time() * 1000) + 40 * 365 * 86_400_000
    assert expiry[("session", "relative-past")] < int(time.time() * 1000)
    with Store(go_db, purge_interval=0) as s:
        for group, key in GO_EXPIRED:
            assert not s.exists(group, key)
        with pytest.raises(NotFoundError):
            s.get("session", "past")
        assert s.purge_expired() == len(GO_EXPIRED) - 1  # "past" went in the lazy delete
        s.set_with_ttl("session", "future", "renewed", 60)
    assert {(g, k) for g, k, _, _ in rows_of(go_db)}.isdisjoint(GO_EXPIRED)


def test_go_written_file_is_wal_and_stays_wal(go_db: Path) -> None:
    with Store(go_db, purge_interval=0) as s:
        s.set("config", "colour", "red")
    conn = connect(go_db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchall() == [("wal",)]
    finally:
        conn.close()


@requires_go
def test_gostore_written_file_reads_back_through_go(db_path: Path) -> None:
    written = {group: dict(entries) for group, entries in GO_LIVE.items()}
    written["ttl"] = {"live": "yes"}
    with Store(db_path, purge_interval=0) as s:
        for group, entries in written.items():
            s.set_many(group, entries)
        s.set_with_ttl("ttl", "live", "yes", 3600)
        s.set_with_ttl("ttl", "dead", "no", -1)
        s.set_with_ttl("dead-group", "k", "v", -1)
    out = subprocess.run(
        ["go", "run", ".", "dump", str(db_path)],
        cwd=GENERATOR,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    seen: dict[str, dict[str, str]] = {}
    for line in out.stdout.splitlines():
        entry = json.loads(line)
        seen.setdefault(entry["group"], {})[entry["key"]] = entry["value"]
    assert seen == written
