"""Store(path, readonly=True): never writes to the file, refuses every write with a clear
StoreError, and reads what other processes commit meanwhile."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import apsw
import pytest

from gostore import QuotaConfig, Store, StoreError

from .conftest import FakeClock


def fingerprint(path: Path) -> tuple[str, int, int]:
    """The file's content hash, mtime and size."""
    stat = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_mtime_ns, stat.st_size


@pytest.fixture
def seeded_db(db_path: Path) -> Path:
    with Store(db_path, purge_interval=0) as store:
        store.set_many("config", {"colour": "blue", "size": "10"})
        store.set("users", "alice", "admin")
        store.set_with_ttl("sessions", "s1", "token", 3600)
    return db_path


def test_readonly_store_serves_every_read(seeded_db: Path) -> None:
    with Store(seeded_db, readonly=True) as store:
        assert store.readonly
        assert store.get("config", "colour") == "blue"
        assert store.get_all("config") == {"colour": "blue", "size": "10"}
        assert store.groups() == ["config", "sessions", "users"]
        assert store.count_all() == 4
        assert store.exists("users", "alice")
        assert store.ttl("sessions", "s1") == pytest.approx(3600, abs=5)
        assert [kv.key for kv in store.all("config")] == ["colour", "size"]
        assert store.stats().keys == 4
        assert store.check() == []


def test_readonly_open_read_and_close_leave_the_file_unchanged(
    seeded_db: Path, clock: FakeClock
) -> None:
    with Store(seeded_db, purge_interval=0) as writer:
        writer.set_with_ttl("sessions", "short", "token", 1)
    before = fingerprint(seeded_db)
    time.sleep(0.01)  # an mtime written now would differ
    clock.advance(2)  # "short" has expired: a normal get would delete it
    with Store(seeded_db, readonly=True, purge_interval=0.01) as store:
        with pytest.raises(KeyError):
            store.get("sessions", "short")
        store.get_all("config")
        store.stats()
        store.check()
        time.sleep(0.05)  # a purge thread, had one started, would have run by now
    assert fingerprint(seeded_db) == before


def test_readonly_store_starts_no_purge_thread(seeded_db: Path) -> None:
    with Store(seeded_db, readonly=True, purge_interval=0.01):
        names = [thread.name for thread in threading.enumerate()]
    assert not any(name.startswith("gostore-purge") for name in names)


WRITES: dict[str, Callable[[Store], object]] = {
    "set": lambda s: s.set("g", "k", "v"),
    "set_with_ttl": lambda s: s.set_with_ttl("g", "k", "v", 10),
    "set_many": lambda s: s.set_many("g", {"k": "v"}),
    "set_many_empty": lambda s: s.set_many("g", {}),
    "delete_present": lambda s: s.delete("config", "colour"),
    "delete_absent": lambda s: s.delete("g", "absent"),
    "delete_group": lambda s: s.delete_group("config"),
    "delete_prefix": lambda s: s.delete_prefix("conf"),
    "purge_expired": lambda s: s.purge_expired(),
    "import_entries": lambda s: s.import_entries([("g", "k", "v", None)]),
    "incr": lambda s: s.incr("g", "n"),
    "add_absent": lambda s: s.add("g", "k", "v"),
    "add_present": lambda s: s.add("config", "colour", "v"),
    "compare_and_set": lambda s: s.compare_and_set("config", "colour", "red", "v"),
    "pop_absent": lambda s: s.pop("g", "absent", None),
    "touch": lambda s: s.touch("config", "colour", 10),
    "transaction": lambda s: s.transaction().__enter__(),
    "vacuum": lambda s: s.vacuum(),
    "checkpoint": lambda s: s.checkpoint(),
    "scoped_set": lambda s: s.scoped("ns").set("g", "k", "v"),
    "scoped_quota_set": lambda s: s.scoped("ns", QuotaConfig(max_keys=5)).set("g", "k", "v"),
    "scoped_incr": lambda s: s.scoped("ns", QuotaConfig(max_keys=5)).incr("g", "k"),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_every_write_method_of_a_readonly_store_raises_store_error(
    seeded_db: Path, write: Callable[[Store], object]
) -> None:
    before = fingerprint(seeded_db)
    with Store(seeded_db, readonly=True) as store:
        with pytest.raises(StoreError, match=r"read-only \(opened with readonly=True\)"):
            write(store)
        assert store.get_all("config") == {"colour": "blue", "size": "10"}
    assert fingerprint(seeded_db) == before


def test_readonly_write_error_names_the_operation_and_key(seeded_db: Path) -> None:
    with Store(seeded_db, readonly=True) as store, pytest.raises(StoreError) as caught:
        store.set("config", "colour", "red")
    assert str(caught.value).startswith("store.set group='config' key='colour': ")


def test_readonly_open_of_a_file_needing_migration_raises_and_changes_nothing(
    db_path: Path,
) -> None:
    conn = apsw.Connection(str(db_path))
    conn.execute("CREATE TABLE kv (grp TEXT, key TEXT, value TEXT)")
    conn.execute("INSERT INTO kv VALUES ('g', 'k', 'v')")
    conn.close()
    before = fingerprint(db_path)
    with pytest.raises(StoreError, match="never changes the schema"):
        Store(db_path, readonly=True)
    assert fingerprint(db_path) == before
    with Store(db_path, purge_interval=0) as store:  # a normal open migrates it
        assert store.get("g", "k") == "v"


def test_readonly_open_of_a_missing_file_raises_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"store\.open"):
        Store(tmp_path / "missing.db", readonly=True)
    assert list(tmp_path.iterdir()) == []


def test_readonly_memory_store_is_refused() -> None:
    with pytest.raises(StoreError, match="in-memory database cannot be opened read-only"):
        Store(":memory:", readonly=True)


def test_readonly_must_be_a_bool(seeded_db: Path) -> None:
    with pytest.raises(TypeError, match="readonly must be bool"):
        Store(seeded_db, readonly="yes")  # type: ignore[arg-type]


_WRITER = textwrap.dedent(
    """
    import sys, time
    import gostore
    with gostore.Store(sys.argv[1], purge_interval=0) as store:
        for n in range(1, 301):
            with store.transaction() as tx:
                tx.set("pair", "a", str(n))
                tx.set("pair", "b", str(n))
            time.sleep(0.002)
    """
)


def test_readonly_store_reads_while_another_process_writes(seeded_db: Path) -> None:
    with Store(seeded_db, readonly=True) as store:
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(seeded_db)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        seen: list[int] = []
        try:
            while writer.poll() is None:
                pair = store.get_all("pair")  # one statement: one snapshot
                if pair:
                    assert pair["a"] == pair["b"]  # it sees whole transactions only
                    seen.append(int(pair["a"]))
        finally:
            if writer.poll() is None:
                writer.kill()
            _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()[-2000:]
        assert seen and seen == sorted(seen)
        assert store.get_all("pair") == {"a": "300", "b": "300"}


def test_readonly_store_on_a_file_without_write_permission(seeded_db: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    seeded_db.chmod(0o444)
    with Store(seeded_db, readonly=True) as store:
        assert store.get("config", "colour") == "blue"
