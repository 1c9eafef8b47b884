"""Files made by the real go-store (tests/data/go-store/; its README says how each was made).

gostore reads every row of a file go-store wrote exactly as go-store left it, and migrating each
legacy layout gives exactly the rows (and table) go-store's own migration gives. Each
``*.rows.jsonl`` lists every row of its file, expired ones included. Fixtures are copied to
``tmp_path`` before opening, even to read them: opening a file in WAL mode, even read-only,
creates -wal and -shm files beside it, and gostore's open may migrate it.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from gostore import KeyValue, NotFoundError, Store

from .conftest import FakeClock

DATA = Path(__file__).parent / "data" / "go-store"
WRITTEN = "written-by-go-store.db"
LEGACY = sorted(
    path.name for path in DATA.glob("legacy-*.db") if ".migrated-by-go-store" not in path.name
)

Row = tuple[str, str, str, "int | None"]  # group, key, value, expires_at (Unix ms or None)


def listed_rows(name: str) -> list[Row]:
    """The rows ``name.rows.jsonl`` lists, in its order (group, then key)."""
    path = DATA / name.replace(".db", ".rows.jsonl")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        rows.append((entry["group"], entry["key"], entry["value"], entry["expires_at"]))
    return rows


def file_rows(path: Path) -> list[Row]:
    """Every row of the ``entries`` table, read with plain SQL, ordered like the listings."""
    connection = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [
            (group, key, value, expires_at)
            for group, key, value, expires_at in connection.execute(
                "SELECT group_name, entry_key, entry_value, expires_at FROM entries "
                "ORDER BY group_name, entry_key"
            )
        ]
    finally:
        connection.close()


def schema(path: Path) -> tuple[list[str], list[tuple[object, ...]]]:
    """The file's table names and the columns of ``entries`` (cid, name, type, notnull, default,
    pk): what a migration leaves behind, whatever CREATE or ALTER text produced it."""
    connection = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        columns = [tuple(row) for row in connection.execute("PRAGMA table_info(entries)")]
        return tables, columns
    finally:
        connection.close()


def copied(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copyfile(DATA / name, target)
    return target


# -- reading what go-store wrote ------------------------------------------------------------------


def test_each_listing_holds_every_row_of_its_file(tmp_path: Path) -> None:
    # The listings are what the tests below compare gostore with, so they must be the files.
    for name in [WRITTEN, *(n.replace(".db", ".migrated-by-go-store.db") for n in LEGACY)]:
        assert file_rows(copied(tmp_path, name)) == listed_rows(name), name


@pytest.fixture
def written(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[Store, list[Row], list[Row]]]:
    """go-store's file opened by gostore, with the clock one minute after go-store wrote it;
    yields the store, the rows live then and the rows expired then."""
    rows = listed_rows(WRITTEN)
    # The shortest TTL in the file is 1 ms, so its expiry is (within 1 ms) when it was written.
    written_at = min(expires_at for *_, expires_at in rows if expires_at is not None)
    clock.now = written_at + 60_000
    live = [row for row in rows if row[3] is None or row[3] > clock.now]
    expired = [row for row in rows if row[3] is not None and row[3] <= clock.now]
    with Store(copied(tmp_path, WRITTEN), purge_interval=0) as store:
        yield store, live, expired


def test_reads_every_live_row_go_store_wrote_exactly(
    written: tuple[Store, list[Row], list[Row]],
) -> None:
    store, live, _ = written
    assert len(live) > 10_000  # the 10,000 bulk keys and the special cases
    assert any(expires_at is not None for *_, expires_at in live), "a live row with a TTL"
    by_group: dict[str, dict[str, str]] = defaultdict(dict)
    for group, key, value, _expires_at in live:
        assert store.get(group, key) == value, (group, key)
        by_group[group][key] = value
    for group, entries in by_group.items():
        assert store.get_all(group) == entries, group
        assert list(store.all(group)) == [KeyValue(k, entries[k]) for k in sorted(entries)]
        assert store.count(group) == len(entries), group
    assert store.count_all() == len(live)


def test_lists_the_groups_go_store_wrote_by_any_prefix(
    written: tuple[Store, list[Row], list[Row]],
) -> None:
    store, live, _ = written
    groups = sorted({group for group, *_ in live})
    assert store.groups() == groups
    # The group names hold LIKE wildcards (pct%_grp), differ only by case (Case, case) or are
    # empty: each one as a prefix selects exactly the groups that start with it.
    for prefix in groups:
        assert store.groups(prefix) == [g for g in groups if g.startswith(prefix)], prefix


def test_rows_go_store_wrote_that_have_expired_are_not_found(
    written: tuple[Store, list[Row], list[Row]],
) -> None:
    store, live, expired = written
    assert ("session", "dead", "no") in [row[:3] for row in expired]
    live_keys = {(group, key) for group, key, *_ in live}
    for group, key, _value, _expires_at in expired:
        assert not store.exists(group, key)
        with pytest.raises(NotFoundError):
            store.get(group, key)
        if (group, key) not in live_keys:
            assert key not in store.get_all(group)


# -- migrating go-store's legacy layouts ----------------------------------------------------------


@pytest.mark.parametrize("legacy", LEGACY)
def test_migrating_a_legacy_file_gives_exactly_go_stores_migration(
    tmp_path: Path, legacy: str
) -> None:
    go_migrated = copied(tmp_path, legacy.replace(".db", ".migrated-by-go-store.db"))
    path = copied(tmp_path, legacy)
    with Store(path, purge_interval=0):
        pass
    assert file_rows(path) == listed_rows(go_migrated.name)
    assert schema(path) == schema(go_migrated)


def test_every_legacy_layout_is_covered() -> None:
    assert LEGACY == [
        "legacy-kv-and-old-entries.db",
        "legacy-kv-plain.db",
        "legacy-kv-ttl.db",
    ]
    for legacy in LEGACY:
        assert (DATA / legacy.replace(".db", ".migrated-by-go-store.db")).is_file()
