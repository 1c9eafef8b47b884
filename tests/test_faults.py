"""Faults: a full disk, a read-only filesystem, and corrupt or truncated files.

The full and read-only cases use a small tmpfs mounted for the test (the suite runs as root,
where file permissions are not enforced, so chmod cannot make a file read-only); they skip
when mounting is not permitted.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

import gostore
from gostore import StoreError


def _mount(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["mount", *args], capture_output=True, check=False)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs, unmounted afterwards."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        result = _mount("-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt))
    except FileNotFoundError:
        pytest.skip("no mount command on this machine")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


def test_full_disk_raises_store_error_keeps_committed_data_and_recovers(tiny_fs: Path) -> None:
    db = tiny_fs / "full.db"
    ballast = tiny_fs / "ballast"
    ballast.write_bytes(b"\0" * 96 * 1024)  # freed later, to give space back
    kept = {f"k{i}": f"value {i}" for i in range(50)}
    with gostore.Store(db, purge_interval=0) as store:
        store.set_many("keep", kept)
        error: StoreError | None = None
        for i in range(1000):
            try:
                store.set("fill", f"f{i}", "x" * 8000)
            except StoreError as exc:
                error = exc
                break
        assert error is not None, "the 512 KiB filesystem never filled up"
        assert isinstance(error.__cause__, apsw.FullError)
        assert "store.set" in str(error) and "full" in str(error)
        # A multi-key write that fails leaves none of its keys behind.
        with pytest.raises(StoreError):
            store.set_many("batch", {f"b{i}": "y" * 8000 for i in range(20)})
        assert store.count("batch") == 0
        assert store.get_all("keep") == kept

        ballast.unlink()  # space comes back
        store.delete_group("fill")
        store.set("after", "k", "written once space returned")
        assert store.get("after", "k") == "written once space returned"
    with gostore.Store(db, purge_interval=0) as reopened:
        assert reopened.get_all("keep") == kept
        assert reopened.get("after", "k") == "written once space returned"


def test_read_only_filesystem_serves_reads_and_refuses_writes(tiny_fs: Path) -> None:
    db = tiny_fs / "ro.db"
    with gostore.Store(db, purge_interval=0) as store:
        store.set_many("g", {"a": "1", "b": "2"})
    result = _mount("-o", "remount,ro", str(tiny_fs))
    if result.returncode != 0:
        pytest.skip(f"cannot remount read-only: {result.stderr.decode().strip()}")
    with gostore.Store(db, purge_interval=0) as store:
        assert store.get_all("g") == {"a": "1", "b": "2"}
        assert store.get("g", "a") == "1"
        assert store.groups() == ["g"]
        writes = [
            lambda: store.set("g", "c", "3"),
            lambda: store.set_many("g", {"c": "3"}),
            lambda: store.delete("g", "a"),
            lambda: store.delete_group("g"),
            lambda: store.purge_expired(),
            lambda: store.scoped("t", gostore.QuotaConfig(max_keys=5)).set("x", "k", "v"),
        ]
        for write in writes:
            with pytest.raises(StoreError, match="read-only") as caught:
                write()
            assert isinstance(caught.value.__cause__, apsw.ReadOnlyError)
        with pytest.raises(StoreError), store.transaction() as tx:
            tx.set("g", "c", "3")
        assert store.get_all("g") == {"a": "1", "b": "2"}


def _valid_database(path: Path, rows: int = 2000) -> bytes:
    with gostore.Store(path, purge_interval=0) as store:
        store.set_many("g", {f"k{i}": "x" * 100 for i in range(rows)})
    return path.read_bytes()


def _open_fails_cleanly(path: Path) -> StoreError:
    threads = threading.active_count()
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(StoreError) as caught:
        gostore.Store(path, purge_interval=1)
    assert isinstance(caught.value.__cause__, apsw.Error)
    assert "store.open" in str(caught.value)
    assert threading.active_count() == threads  # no purge thread left behind
    assert len(os.listdir("/proc/self/fd")) == fds  # no descriptor left open
    return caught.value


def test_file_that_is_not_a_database_fails_at_open(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(os.urandom(16 * 1024))
    error = _open_fails_cleanly(path)
    assert "not a SQLite database" in str(error) or "corrupt" in str(error)


def test_file_with_corrupt_schema_page_fails_at_open(tmp_path: Path) -> None:
    data = bytearray(_valid_database(tmp_path / "good.db"))
    data[100:4096] = os.urandom(4096 - 100)  # page 1 after the header: sqlite_schema
    path = tmp_path / "corrupt.db"
    path.write_bytes(bytes(data))
    _open_fails_cleanly(path)


@pytest.mark.parametrize("keep", [50, 100, 1000, 4096, 8192, "half"])
def test_truncated_database_fails_at_open(tmp_path: Path, keep: int | str) -> None:
    data = _valid_database(tmp_path / "good.db")
    size = len(data) // 2 if keep == "half" else int(keep)
    path = tmp_path / "truncated.db"
    path.write_bytes(data[:size])
    _open_fails_cleanly(path)


def test_unopenable_path_fails_at_open(tmp_path: Path) -> None:
    _open_fails_cleanly(tmp_path / "missing-directory" / "store.db")
