"""Reads that must keep working: groups larger than SQLite's string limit, and an expired key
whose lazy delete cannot run (another connection holds the write lock, or the file is on a
read-only filesystem).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

import gostore
from gostore import NotFoundError

from .conftest import FakeClock, mounted_tmpfs, remount_read_only

SOAK = os.environ.get("GOSTORE_SOAK", "").strip() == "1"


# -- groups larger than SQLite's length limit ------------------------------------------------
LOWERED_LIMIT = 1_000_000  # bytes; stands in for SQLite's default SQLITE_MAX_LENGTH of 1e9
VALUE_SIZE = 100_000
VALUES = 30  # 3 MB in all: each value is far below the limit, the group together three times it


def _lower_length_limit(path: Path, limit: int) -> int:
    """Lower SQLITE_LIMIT_LENGTH on every open connection to ``path``; returns how many.

    NOTE: the store's connection is private, but APSW lists every open connection; a limit of
    1 MB makes a 3 MB group behave as a group over 1 GB does under SQLite's default limit.
    """
    lowered = 0
    for conn in apsw.connections():
        if conn.filename == str(path):
            conn.limit(apsw.SQLITE_LIMIT_LENGTH, limit)
            lowered += 1
    return lowered


@pytest.fixture
def big_group_store(tmp_path: Path) -> Iterator[tuple[gostore.Store, dict[str, str]]]:
    path = (tmp_path / "big.db").resolve()
    entries = {f"k{i:03}": chr(ord("A") + i % 26) * VALUE_SIZE for i in range(VALUES)}
    with gostore.Store(path, purge_interval=0) as store:
        assert _lower_length_limit(path, LOWERED_LIMIT) >= 1
        store.set_many("big", entries)
        yield store, entries


def test_group_larger_than_sqlite_length_limit_reads_with_get_all(
    big_group_store: tuple[gostore.Store, dict[str, str]],
) -> None:
    store, entries = big_group_store
    assert store.count("big") == VALUES  # the parts that already worked
    assert store.get("big", "k001") == entries["k001"]
    assert store.get_all("big") == entries


def test_group_larger_than_sqlite_length_limit_reads_with_all(
    big_group_store: tuple[gostore.Store, dict[str, str]],
) -> None:
    """all() is lazy, so a group whose page of rows exceeds the limit must still iterate."""
    store, entries = big_group_store
    assert [tuple(kv) for kv in store.all("big")] == sorted(entries.items())
    assert [tuple(kv) for kv in store.get_page("big", 0, VALUES)] == sorted(entries.items())


def test_group_larger_than_sqlite_length_limit_renders(
    big_group_store: tuple[gostore.Store, dict[str, str]],
) -> None:
    store, entries = big_group_store
    rendered = store.render("{{ k000[:3] }}{{ k029 | length }}", "big")
    assert rendered == entries["k000"][:3] + str(len(entries["k029"]))


@pytest.mark.slow
@pytest.mark.skipif(not SOAK, reason="writes and reads 1 GB: set GOSTORE_SOAK=1 to run it")
def test_group_over_one_gigabyte_reads_under_sqlites_default_limit(tmp_path: Path) -> None:
    """The real case, with SQLite's default limit: 1,001 values of 1 MB (the smallest group
    that reproduces it holds just over 1e9 bytes, whatever the number of rows)."""
    megabyte = 1_000_000
    with gostore.Store(tmp_path / "huge.db", purge_interval=0, synchronous="off") as store:
        for i in range(1_001):
            store.set("huge", f"k{i:04}", chr(ord("A") + i % 26) * megabyte)
        assert store.count("huge") == 1_001
        everything = store.get_all("huge")
        assert len(everything) == 1_001 and len(everything["k1000"]) == megabyte
        del everything
        count = 0
        for kv in store.all("huge"):
            assert len(kv.value) == megabyte
            count += 1
        assert count == 1_001
        assert store.render("{{ k0000[:2] }}", "huge") == "AA"


# -- an expired key is not found, whatever happens to its lazy delete ------------------------
def test_get_of_expired_key_is_not_found_while_another_connection_holds_the_write_lock(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "locked.db"
    with gostore.Store(path, purge_interval=0, busy_timeout=0.2) as store:
        store.set_with_ttl("g", "expired", "v", 1)
        store.set("g", "live", "still here")
        clock.advance(2)
        other = apsw.Connection(str(path))
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(NotFoundError):
                store.get("g", "expired")
            with pytest.raises(NotFoundError):
                store.get_fields("g", "expired")  # reads through get() too
            assert store.get("g", "live") == "still here"
        finally:
            other.execute("ROLLBACK")
            other.close()
        with pytest.raises(NotFoundError):
            store.get("g", "expired")


def test_get_of_expired_key_is_not_found_on_a_read_only_filesystem(
    tmp_path: Path, clock: FakeClock
) -> None:
    with mounted_tmpfs(tmp_path / "mnt", "1m") as mnt:
        path = mnt / "ro.db"
        with gostore.Store(path, purge_interval=0) as store:
            store.set_with_ttl("g", "expired", "v", 1)
            store.set("g", "live", "still here")
        remount_read_only(mnt)
        clock.advance(2)
        with gostore.Store(path, purge_interval=0) as store:
            with pytest.raises(NotFoundError):
                store.get("g", "expired")
            with pytest.raises(NotFoundError):
                store.get("g", "expired")  # a second read, after the failed delete
            assert store.get("g", "live") == "still here"
            assert store.get_all("g") == {"live": "still here"}
