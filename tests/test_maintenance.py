"""Maintenance: backup, checkpoint, vacuum, check and stats."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import apsw
import pytest

import gostore
from gostore import Store, StoreError, StoreStats

from .conftest import FakeClock


# -- backup --------------------------------------------------------------------------------------
def test_backup_copies_every_entry_and_opens_as_a_store(file_store: Store, tmp_path: Path) -> None:
    file_store.set_many("config", {"colour": "blue", "size": "10"})
    file_store.set_with_ttl("sessions", "s1", "token", 3600)
    dest = tmp_path / "copy.db"
    file_store.backup(dest)
    with Store(dest, purge_interval=0) as copy:
        assert copy.get_all("config") == {"colour": "blue", "size": "10"}
        assert copy.ttl("sessions", "s1") == pytest.approx(3600, abs=5)
        assert copy.check() == []


def test_backup_of_a_memory_store_writes_a_file(store: Store, tmp_path: Path) -> None:
    store.set("g", "k", "v")
    store.backup(str(tmp_path / "copy.db"))
    with Store(tmp_path / "copy.db", purge_interval=0) as copy:
        assert copy.get("g", "k") == "v"


def test_backup_includes_committed_writes_of_the_same_store(
    file_store: Store, tmp_path: Path
) -> None:
    file_store.set("g", "first", "1")
    file_store.backup(tmp_path / "one.db")
    file_store.set("g", "second", "2")
    file_store.backup(tmp_path / "two.db")
    with Store(tmp_path / "one.db") as one, Store(tmp_path / "two.db") as two:
        assert one.get_all("g") == {"first": "1"}
        assert two.get_all("g") == {"first": "1", "second": "2"}


def test_backup_to_an_existing_file_raises_and_leaves_it_alone(
    file_store: Store, tmp_path: Path
) -> None:
    dest = tmp_path / "taken.db"
    dest.write_bytes(b"precious")
    with pytest.raises(StoreError, match=r"store\.backup: .*already exists"):
        file_store.backup(dest)
    assert dest.read_bytes() == b"precious"


def test_backup_into_a_missing_directory_raises_store_error(
    file_store: Store, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match=r"store\.backup: cannot create"):
        file_store.backup(tmp_path / "no" / "such" / "dir.db")


def test_backup_inside_a_transaction_raises(file_store: Store, tmp_path: Path) -> None:
    with file_store.transaction(), pytest.raises(StoreError, match="inside an open transaction"):
        file_store.backup(tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()


def test_backup_dest_must_be_a_path(file_store: Store) -> None:
    with pytest.raises(TypeError, match="dest must be str"):
        file_store.backup(3)  # type: ignore[arg-type]


_PAIR_WRITER = textwrap.dedent(
    """
    import os, sys
    import gostore
    with gostore.Store(sys.argv[1], purge_interval=0) as store:
        n = 0
        while not os.path.exists(sys.argv[2]):
            n += 1
            with store.transaction() as tx:
                tx.set("pair", "a", str(n))
                tx.set_many("bulk", {f"k{i}": str(n) for i in range(50)})
                tx.set("pair", "b", str(n))
        print(n)
    """
)


def test_backup_is_consistent_while_other_threads_and_processes_write(
    file_store: Store, tmp_path: Path
) -> None:
    import threading

    file_store.set_many("seed", {f"k{i}": "x" * 200 for i in range(2000)})  # a few hundred pages
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", _PAIR_WRITER, str(file_store.path), str(stop)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    halt = threading.Event()

    def thread_writer() -> None:
        n = 0
        while not halt.is_set():
            n += 1
            file_store.set("thread", "n", str(n))

    thread = threading.Thread(target=thread_writer)
    thread.start()
    try:
        while not file_store.exists("pair", "b"):  # the writer process is running
            assert writer.poll() is None, writer.communicate()[1].decode()[-2000:]
        copies = []
        for i in range(5):
            dest = tmp_path / f"copy{i}.db"
            file_store.backup(dest)
            copies.append(dest)
    finally:
        halt.set()
        thread.join()
        stop.touch()
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err.decode()[-2000:]
    assert int(out) > 0
    for dest in copies:
        with Store(dest, purge_interval=0) as copy:
            assert copy.check() == []
            pair = copy.get_all("pair")
            bulk = copy.get_all("bulk")
            assert pair.get("a") == pair.get("b")  # whole transactions only
            assert set(bulk.values()) <= {pair.get("a")}
            assert copy.count("seed") == 2000


# -- checkpoint ----------------------------------------------------------------------------------
def test_checkpoint_passive_copies_the_log_and_truncate_empties_it(file_store: Store) -> None:
    file_store.set_many("g", {f"k{i}": "v" * 100 for i in range(200)})
    frames, done = file_store.checkpoint()
    assert frames > 0 and done == frames  # nobody else reads: everything is copied
    assert file_store.stats().wal_bytes > 0
    assert file_store.checkpoint("truncate") == (0, 0)
    assert file_store.stats().wal_bytes == 0
    assert file_store.get("g", "k199") == "v" * 100


@pytest.mark.parametrize("mode", ["passive", "full", "restart", "truncate"])
def test_checkpoint_accepts_each_mode(file_store: Store, mode: str) -> None:
    file_store.set("g", "k", "v")
    frames, done = file_store.checkpoint(mode)  # type: ignore[arg-type]
    assert 0 <= done <= frames or (frames, done) == (0, 0)


def test_checkpoint_of_a_memory_store_returns_zeros(store: Store) -> None:
    store.set("g", "k", "v")
    assert store.checkpoint() == (0, 0)


def test_checkpoint_rejects_an_unknown_mode(file_store: Store) -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        file_store.checkpoint("PASSIVE; DROP TABLE entries")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        file_store.checkpoint(1)  # type: ignore[arg-type]


def test_checkpoint_inside_a_transaction_raises(file_store: Store) -> None:
    with file_store.transaction(), pytest.raises(StoreError, match="inside an open transaction"):
        file_store.checkpoint()


# -- vacuum --------------------------------------------------------------------------------------
def test_vacuum_returns_free_pages_to_the_os_and_keeps_the_data(file_store: Store) -> None:
    file_store.set_many("big", {f"k{i}": "x" * 1000 for i in range(2000)})
    file_store.set("keep", "k", "v")
    file_store.delete_group("big")
    file_store.checkpoint("truncate")
    before = os.path.getsize(file_store.path)
    file_store.vacuum()
    after = os.path.getsize(file_store.path)
    assert after < before / 4
    assert file_store.stats().wal_bytes == 0
    assert file_store.get_all("keep") == {"k": "v"}
    assert file_store.check() == []


def test_vacuum_of_a_memory_store_keeps_the_data(store: Store) -> None:
    store.set("g", "k", "v")
    store.vacuum()
    assert store.get("g", "k") == "v"


def test_vacuum_inside_a_transaction_raises(file_store: Store) -> None:
    with file_store.transaction(), pytest.raises(StoreError, match="inside an open transaction"):
        file_store.vacuum()


# -- check ---------------------------------------------------------------------------------------
def test_check_of_a_healthy_store_is_empty(file_store: Store, store: Store) -> None:
    file_store.set("g", "k", "v")
    assert file_store.check() == []
    assert store.check() == []


def _corrupt_index_entry(path: Path, key: bytes) -> None:
    """Change ``key`` in the primary-key index only: the table row keeps it (its record is
    followed by the value "vvv...", an index entry by the rowid)."""
    data = bytearray(path.read_bytes())
    changed = 0
    start = 0
    while (at := data.find(key, start)) >= 0:
        if data[at + len(key) : at + len(key) + 1] != b"v":
            data[at + 1] = ord("9")
            changed += 1
        start = at + 1
    assert changed, "index entry not found"
    path.write_bytes(bytes(data))


def test_check_of_a_corrupted_file_lists_the_problems(db_path: Path) -> None:
    with Store(db_path, purge_interval=0) as store:
        store.set_many("g", {f"k{i:05d}": "v" * 50 for i in range(5000)})
    _corrupt_index_entry(db_path, b"k02483")
    with Store(db_path, purge_interval=0) as store:
        problems = store.check()
    assert problems
    assert any("missing from index" in problem for problem in problems)


def test_check_reports_damage_that_stops_the_check(db_path: Path) -> None:
    with Store(db_path, purge_interval=0) as store:
        store.set_many("g", {f"k{i:05d}": "v" * 50 for i in range(5000)})
    conn = apsw.Connection(str(db_path))
    pages = conn.execute("PRAGMA page_count").fetchall()[0][0]
    size = conn.execute("PRAGMA page_size").fetchall()[0][0]
    conn.close()
    with open(db_path, "r+b") as file:
        file.seek(size * (pages // 2) + 100)
        file.write(b"\xff" * 600)
    with Store(db_path, purge_interval=0) as store:
        assert store.check() != []


# -- stats ---------------------------------------------------------------------------------------
def test_stats_counts_live_and_expired_rows_groups_and_utf8_bytes(
    file_store: Store, clock: FakeClock
) -> None:
    file_store.set("a", "k", "é")  # 1 + 2 bytes
    file_store.set("a", "kk", "vv")  # 2 + 2
    file_store.set("b", "€", "x")  # 3 + 1
    file_store.set_with_ttl("c", "gone", "soon", 1)
    clock.advance(2)
    stats = file_store.stats()
    assert isinstance(stats, StoreStats)
    assert (stats.keys, stats.expired, stats.groups, stats.bytes) == (3, 1, 2, 11)
    assert stats.file_bytes == os.path.getsize(file_store.path)
    assert stats.wal_bytes == os.path.getsize(file_store.path + "-wal")


def test_stats_of_an_empty_and_a_memory_store(store: Store, file_store: Store) -> None:
    assert store.stats() == StoreStats(0, 0, 0, 0, 0, 0)
    assert file_store.stats()[:4] == (0, 0, 0, 0)
    assert file_store.stats().file_bytes > 0


def test_store_stats_is_exported_and_named() -> None:
    assert gostore.StoreStats._fields == (
        "keys", "expired", "groups", "bytes", "file_bytes", "wal_bytes"
    )


def test_maintenance_on_a_closed_store_raises_store_closed_error(
    file_store: Store, tmp_path: Path
) -> None:
    file_store.close()
    for call in (
        file_store.stats, file_store.check, file_store.vacuum, file_store.checkpoint,
        lambda: file_store.backup(tmp_path / "copy.db"),
    ):
        with pytest.raises(gostore.StoreClosedError):
            call()


# -- large-database options ----------------------------------------------------------------------
def test_cache_and_mmap_options_reach_the_connection(db_path: Path) -> None:
    with Store(db_path, purge_interval=0, cache_size_mb=8, mmap_size_mb=0) as store:
        store.set("g", "k", "v")
        assert store.get("g", "k") == "v"
    with Store(db_path, purge_interval=0, cache_size_mb=0.5, mmap_size_mb=16) as store:
        assert store.get("g", "k") == "v"


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("cache_size_mb", -1, ValueError),
        ("mmap_size_mb", float("nan"), ValueError),
        ("cache_size_mb", "64", TypeError),
        ("mmap_size_mb", True, TypeError),
    ],
)
def test_cache_and_mmap_options_are_checked(
    db_path: Path, option: str, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=option):
        Store(db_path, **{option: value})  # type: ignore[arg-type]
    assert not db_path.exists()
