"""Large groups: get_all reads them in key ranges from one snapshot, and set_many streams its
input, so neither holds a second copy of the group in memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import apsw
import pytest

import gostore
from gostore._core import core_of
from gostore.engine import sqlite_schema as sql

BIG = 50_000  # well past the size read in one statement


def _entries(n: int, tag: str = "v") -> dict[str, str]:
    return {f"key{i:07d}": f"{tag}-{i}" for i in range(n)}


@pytest.mark.parametrize("where", ["memory", "file"])
def test_get_all_of_a_large_group_returns_every_live_entry(tmp_path: Path, where: str) -> None:
    path = ":memory:" if where == "memory" else str(tmp_path / "big.db")
    with gostore.Store(path, purge_interval=0) as store:
        entries = _entries(BIG)
        store.set_many("g", entries)
        store.set_many("g", {f"key{i:07d}x": "gone" for i in range(0, BIG, 7)}, ttl=-1)
        store.set("f", "other", "group")
        assert store.get_all("g") == entries


def test_get_all_of_a_large_group_inside_a_transaction_sees_its_own_writes() -> None:
    with gostore.Store(purge_interval=0) as store:
        store.set_many("g", _entries(BIG))
        with store.transaction() as tx:
            tx.set("g", "key0040000", "changed")
            tx.delete("g", "key0000001")
            found = tx.get_all("g")
        assert found["key0040000"] == "changed"
        assert "key0000001" not in found
        assert len(found) == BIG - 1


def test_get_all_of_a_large_group_reads_one_snapshot_while_another_connection_commits(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "snap.db")
    with (
        gostore.Store(path, purge_interval=0) as store,
        gostore.Store(path, purge_interval=0) as other,
    ):
        entries = _entries(BIG)
        store.set_many("g", entries)
        engine: Any = core_of(store).engine
        store.count("g")  # opens the reader connection that reads of this thread use
        ranges = []

        class CommitBetweenRanges:
            """A reader cursor that lets the other store commit after the first range."""

            def __init__(self, cursor: Any) -> None:
                self.cursor = cursor
                self.connection = cursor.connection

            def execute(self, statement: str, *args: Any) -> Any:
                if statement == sql.RANGE_BLOB:
                    ranges.append(statement)
                    if len(ranges) == 1:  # after the first range: change both ends of the group
                        other.delete("g", "key0000000")
                        other.set("g", f"key{BIG - 1:07d}", "changed")
                return self.cursor.execute(statement, *args)

        idle = engine._readers.idle
        cursors = list(idle)
        idle[:] = [CommitBetweenRanges(cursor) for cursor in cursors]
        try:
            assert store.get_all("g") == entries
        finally:
            idle[:] = cursors
        assert len(ranges) >= 2
        assert store.get("g", f"key{BIG - 1:07d}") == "changed"


def test_get_all_of_a_large_group_with_a_foreign_blob_row_decodes_it(tmp_path: Path) -> None:
    path = str(tmp_path / "foreign.db")
    with gostore.Store(path, purge_interval=0) as store:
        store.set_many("g", _entries(BIG))
    conn = apsw.Connection(path)
    conn.execute(
        "UPDATE entries SET entry_value = CAST('blob' AS BLOB) WHERE entry_key = ?", ("key0030000",)
    )
    conn.close()
    with gostore.Store(path, purge_interval=0) as store:
        found = store.get_all("g")
    assert found["key0030000"] == "blob"
    assert len(found) == BIG


def test_get_all_of_a_large_group_peaks_near_the_size_of_its_result() -> None:
    with gostore.Store(purge_interval=0) as store:
        store.set_many("g", _entries(200_000))
        tracemalloc.start()
        try:
            found = store.get_all("g")
            kept, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(found) == 200_000
        assert peak <= 1.1 * kept


def test_set_many_with_a_bad_entry_late_in_the_mapping_writes_nothing() -> None:
    with gostore.Store(purge_interval=0) as store:
        store.set("g", "key0000001", "before")
        entries: dict[str, Any] = _entries(10_000, "new")
        entries["zz-last"] = 42
        with pytest.raises(TypeError, match=r"store\.set_many"):
            store.set_many("g", entries)
        assert store.get_all("g") == {"key0000001": "before"}
        store.set_many("g", {"a": "1"})  # the store is usable afterwards
        assert store.get("g", "a") == "1"


def test_set_many_does_not_copy_its_input() -> None:
    with gostore.Store(purge_interval=0) as store:
        entries = _entries(200_000)
        tracemalloc.start()
        try:
            store.set_many("g", entries)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # A list of 200,000 row tuples alone would take over 16 MB.
        assert peak < 2_000_000
        assert store.count("g") == 200_000


def test_set_many_with_a_watcher_still_sends_every_event() -> None:
    with gostore.Store(purge_interval=0) as store:
        watcher = store.watch("g", "*", buffer=100)
        store.set_many("g", {"a": "1", "b": "2"})
        got = sorted(watcher.get(timeout=1).key for _ in range(2))
        assert got == ["a", "b"]
