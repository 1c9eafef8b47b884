"""Files and rows written by other tools (go-store, the sqlite3 shell, a script): whatever they
hold, gostore returns ``str`` values or raises a StoreError that names the group and key, never
a raw driver or decoding error, and never a silently wrong value.

Rows are crafted with APSW directly, as another tool would write them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import gostore
from gostore import NotFoundError, StoreError

from .conftest import CLOCK_START_MS, FakeClock

ENTRIES_WITHOUT_NOT_NULL = """CREATE TABLE entries (
    group_name  TEXT NOT NULL,
    entry_key   TEXT NOT NULL,
    entry_value TEXT,
    expires_at  INTEGER,
    PRIMARY KEY (group_name, entry_key)
)"""

GO_STORE_ENTRIES = """CREATE TABLE entries (
    group_name  TEXT NOT NULL,
    entry_key   TEXT NOT NULL,
    entry_value TEXT NOT NULL,
    expires_at  INTEGER,
    PRIMARY KEY (group_name, entry_key)
)"""


def _craft(path: Path, *statements: str, encoding: str | None = None) -> None:
    conn = apsw.Connection(str(path))
    try:
        if encoding is not None:
            conn.execute(f"PRAGMA encoding='{encoding}'")
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def _open(path: Path) -> gostore.Store:
    return gostore.Store(path, purge_interval=0)


# -- UTF-16 databases ------------------------------------------------------------------------
UTF16_GROUPS = {
    "one": {"colour": "blue"},
    "one-wide": {"name": "青い ü"},
    "two": {"a": "1", "b": "zwei ü"},
    "many": {"a": "1", "b": "zwei ü", "c": "日本", "d": ""},
}


@pytest.fixture(params=["UTF-16le", "UTF-16be"])
def utf16_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[gostore.Store]:
    """A file whose entries table was created under a UTF-16 text encoding, with go-store's
    schema, holding groups of one, two and several rows."""
    path = tmp_path / "utf16.db"
    rows = ", ".join(
        f"('{group}', '{key}', '{value}', NULL)"
        for group, entries in UTF16_GROUPS.items()
        for key, value in entries.items()
    )
    _craft(path, GO_STORE_ENTRIES, f"INSERT INTO entries VALUES {rows}", encoding=request.param)
    with _open(path) as store:
        yield store


@pytest.mark.parametrize("group", list(UTF16_GROUPS))
def test_utf16_database_reads_return_correct_text(utf16_store: gostore.Store, group: str) -> None:
    expected = UTF16_GROUPS[group]
    ordered = sorted(expected.items())
    store = utf16_store
    for key, value in expected.items():
        assert store.get(group, key) == value
    assert store.get_all(group) == expected
    assert [tuple(kv) for kv in store.all(group)] == ordered
    assert [tuple(kv) for kv in store.get_page(group)] == ordered
    assert [tuple(kv) for kv in store.get_page(group, 0, 1)] == ordered[:1]
    template = "|".join(f"{{{{ {key} }}}}" for key in expected)
    assert store.render(template, group, strict=True) == "|".join(expected.values())
    assert store.groups() == sorted(UTF16_GROUPS)


def test_utf16_database_written_by_gostore_reads_back(utf16_store: gostore.Store) -> None:
    store = utf16_store
    store.set("fresh", "k", "wert ü")
    assert store.get_all("fresh") == {"k": "wert ü"}
    assert [tuple(kv) for kv in store.all("fresh")] == [("k", "wert ü")]
    assert store.render("{{ k }}", "fresh") == "wert ü"


# -- values that are not valid TEXT ----------------------------------------------------------
def _store_with_rows(path: Path, schema: str, *rows: str) -> gostore.Store:
    _craft(path, schema, *(f"INSERT INTO entries VALUES {row}" for row in rows))
    return _open(path)


GroupRead = Callable[[gostore.Store, str], object]
GROUP_READS: dict[str, GroupRead] = {
    "get_all": lambda store, group: store.get_all(group),
    "all": lambda store, group: [tuple(kv) for kv in store.all(group)],
    "get_page": lambda store, group: [tuple(kv) for kv in store.get_page(group)],
    "render": lambda store, group: store.render("{{ a }}|{{ b }}", group),
}


@pytest.mark.parametrize("rows_in_group", [1, 2])
def test_blob_value_holding_utf8_reads_as_the_same_str_everywhere(
    tmp_path: Path, rows_in_group: int
) -> None:
    """A BLOB value (go-store and other tools may bind []byte) that is valid UTF-8 is read as
    that text by get, get_many and every group read alike, never as bytes."""
    rows = ["('g', 'a', X'68c3a9', NULL)"]  # b"h\xc3\xa9" is "hé"
    if rows_in_group == 2:
        rows.append("('g', 'b', 'text', NULL)")
    expected = {"a": "hé", "b": "text"} if rows_in_group == 2 else {"a": "hé"}
    with _store_with_rows(tmp_path / "blob.db", GO_STORE_ENTRIES, *rows) as store:
        assert store.get("g", "a") == "hé"
        assert type(store.get("g", "a")) is str
        assert store.get_many("g", ["a"]) == {"a": "hé"}
        assert store.get_all("g") == expected
        assert all(type(v) is str for v in store.get_all("g").values())
        assert [tuple(kv) for kv in store.all("g")] == sorted(expected.items())
        assert [tuple(kv) for kv in store.get_page("g")] == sorted(expected.items())
        assert store.render("{{ a }}", "g") == "hé"


@pytest.mark.parametrize("stored_as", ["text", "blob"])
@pytest.mark.parametrize("rows_in_group", [1, 2])
def test_value_that_is_not_utf8_raises_store_error_naming_group_and_key(
    tmp_path: Path, stored_as: str, rows_in_group: int
) -> None:
    """Bytes that are not UTF-8 (b"h\\xffi"), stored as TEXT or as a BLOB: get and get_many
    raise a StoreError naming the group and key; group reads raise a StoreError naming the
    group. Never a raw UnicodeDecodeError, never bytes, never a guessed decode."""
    bad = "CAST(X'68ff69' AS TEXT)" if stored_as == "text" else "X'68ff69'"
    rows = [f"('g', 'a', {bad}, NULL)"]
    if rows_in_group == 2:
        rows.append("('g', 'b', 'fine', NULL)")
    with _store_with_rows(tmp_path / "bad.db", GO_STORE_ENTRIES, *rows) as store:
        with pytest.raises(StoreError) as caught:
            store.get("g", "a")
        assert not isinstance(caught.value, NotFoundError)
        assert caught.value.group == "g" and caught.value.key == "a"
        assert "group='g'" in str(caught.value) and "key='a'" in str(caught.value)
        with pytest.raises(StoreError) as caught:
            store.get_many("g", ["a"])
        assert caught.value.group == "g"
        for name, read in GROUP_READS.items():
            with pytest.raises(StoreError) as caught:
                read(store, "g")
            assert caught.value.group == "g", name
        if rows_in_group == 2:
            assert store.get("g", "b") == "fine"  # the valid row next to it still reads


@pytest.mark.parametrize("read", list(GROUP_READS.values()), ids=list(GROUP_READS))
def test_null_value_next_to_a_value_with_byte_ff_is_never_decoded_silently_wrong(
    tmp_path: Path, read: GroupRead
) -> None:
    """A table without NOT NULL (another tool's schema) holds a NULL value and a value with the
    byte 0xFF. Joining the group skips the NULL, so the batch splits into the right number of
    parts and decodes as {"a": "x", "b": "y"}: a wrong answer. The 0xFF value is not UTF-8,
    so the only right answer is a StoreError naming the group."""
    rows = ["('g', 'a', NULL, NULL)", "('g', 'b', CAST(X'78ff79' AS TEXT), NULL)"]
    with _store_with_rows(tmp_path / "null.db", ENTRIES_WITHOUT_NOT_NULL, *rows) as store:
        with pytest.raises(StoreError) as caught:
            read(store, "g")
        assert caught.value.group == "g"


def test_null_value_is_never_returned_as_none_and_get_agrees_with_get_all(
    tmp_path: Path,
) -> None:
    """A NULL value (possible only under another tool's schema) is read consistently: get gives
    a str that get_all also gives, or get raises NotFoundError and get_all leaves the key out,
    or both raise StoreError. Never None."""
    rows = ["('g', 'a', NULL, NULL)", "('g', 'b', 'ok', NULL)"]
    with _store_with_rows(tmp_path / "null.db", ENTRIES_WITHOUT_NOT_NULL, *rows) as store:
        try:
            value: object = store.get("g", "a")
        except NotFoundError:
            assert store.get_all("g") == {"b": "ok"}
        except StoreError:
            with pytest.raises(StoreError):
                store.get_all("g")
        else:
            assert type(value) is str, f"get returned {value!r}"
            assert store.get_all("g") == {"a": value, "b": "ok"}


# -- expires_at that is not an integer -------------------------------------------------------
@pytest.mark.parametrize("expires", ["'soon'", "X'01'"], ids=["text", "blob"])
def test_expires_at_that_is_not_a_number_raises_store_error_naming_group_and_key(
    tmp_path: Path, clock: FakeClock, expires: str
) -> None:
    """expires_at holding TEXT or a BLOB has no meaning as a time: get raises a StoreError
    naming the group and key (never a raw TypeError from comparing it with now)."""
    rows = [f"('g', 'k', 'v', {expires})"]
    with _store_with_rows(tmp_path / "exp.db", GO_STORE_ENTRIES, *rows) as store:
        with pytest.raises(StoreError) as caught:
            store.get("g", "k")
        assert not isinstance(caught.value, NotFoundError)
        assert caught.value.group == "g" and caught.value.key == "k"


def test_expires_at_that_is_a_real_number_counts_as_milliseconds(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A REAL expires_at (another tool wrote a float) is Unix milliseconds like an INTEGER one,
    in get as in the group reads."""
    rows = [
        f"('g', 'live', 'v', {CLOCK_START_MS + 60_000}.5)",
        f"('g', 'gone', 'v', {CLOCK_START_MS - 60_000}.5)",
    ]
    with _store_with_rows(tmp_path / "exp.db", GO_STORE_ENTRIES, *rows) as store:
        assert store.get("g", "live") == "v"
        assert store.get_all("g") == {"live": "v"}
        with pytest.raises(NotFoundError):
            store.get("g", "gone")
        clock.advance(61)
        with pytest.raises(NotFoundError):
            store.get("g", "live")
        assert store.get_all("g") == {}


# -- files gostore must refuse without touching them -----------------------------------------
def _snapshot(path: Path) -> tuple[list[Any], dict[str, list[Any]]]:
    """The schema and every table's rows, read with APSW directly."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        schema = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name"
        ).fetchall()
        rows = {
            str(name): list(conn.execute(f'SELECT * FROM "{name}" ORDER BY rowid').fetchall())
            for (kind, name, _, _) in schema
            if kind == "table"
        }
    finally:
        conn.close()
    return list(schema), rows


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _open_is_refused_and_changes_nothing(path: Path, journal_mode: str) -> StoreError:
    before = _snapshot(path)
    digest = _digest(path)
    with pytest.raises(StoreError) as caught:
        _open(path).close()
    assert "store.open" in str(caught.value)
    assert _snapshot(path) == before, "the refused open changed the file's schema or rows"
    if journal_mode == "wal":
        # Already in WAL mode, so an open that changes nothing leaves every byte as it was.
        assert _digest(path) == digest
    return caught.value


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_file_with_an_unrelated_entries_table_is_refused_and_left_unchanged(
    tmp_path: Path, journal_mode: str
) -> None:
    path = tmp_path / "other.db"
    _craft(
        path,
        f"PRAGMA journal_mode={journal_mode}",
        "CREATE TABLE entries(x, y)",
        "INSERT INTO entries VALUES (1, 'one'), (2, 'two')",
    )
    error = _open_is_refused_and_changes_nothing(path, journal_mode)
    assert "entries" in str(error)
    # The other tool's table still works as it did.
    _craft(path, "INSERT INTO entries (x, y) VALUES (3, 'three')")


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_legacy_kv_rows_with_null_value_refuse_the_open_and_change_nothing(
    tmp_path: Path, journal_mode: str
) -> None:
    """A legacy kv row with a NULL value cannot become an entries row (entry_value is NOT
    NULL). Rather than drop it silently, the open raises a StoreError naming the row and the
    file keeps its kv table, rows and schema exactly as they were."""
    path = tmp_path / "legacy.db"
    _craft(
        path,
        f"PRAGMA journal_mode={journal_mode}",
        "CREATE TABLE kv (grp TEXT, key TEXT, value TEXT)",
        "INSERT INTO kv VALUES ('g', 'kept', '1'), ('g', 'nullvalue', NULL)",
    )
    error = _open_is_refused_and_changes_nothing(path, journal_mode)
    assert "nullvalue" in str(error)


def test_legacy_kv_rows_without_null_still_migrate(tmp_path: Path) -> None:
    """The refusal above is only for NULL values: an ordinary legacy table still migrates."""
    path = tmp_path / "legacy.db"
    _craft(
        path,
        "CREATE TABLE kv (grp TEXT, key TEXT, value TEXT)",
        "INSERT INTO kv VALUES ('g', 'a', '1'), ('g', 'b', '')",
    )
    with _open(path) as store:
        assert store.get_all("g") == {"a": "1", "b": ""}
