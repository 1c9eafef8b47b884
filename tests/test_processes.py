"""Several processes on one database file: concurrent writers and readers, a lock held past
busy_timeout, and a Store inherited through fork().

Children are separate interpreters (subprocess), never forks of a process holding a Store,
except in the one test that checks what a forked child gets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import apsw
import pytest

import gostore
from gostore import StoreError

HELPER = str(Path(__file__).parent / "helpers" / "child.py")
SOAK = os.environ.get("GOSTORE_SOAK", "").strip() == "1"
WRITERS, READERS = 4, 2
SHARED_KEYS = 8


def _spawn(*args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, HELPER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin
    )


def _finish(child: subprocess.Popen[bytes], stdin: bytes | None = None) -> list[str]:
    out, err = child.communicate(stdin, timeout=120)
    assert child.returncode == 0, f"child failed ({child.returncode}): {err.decode()[-2000:]}"
    return out.decode().split()


def _writers_and_readers(db: Path, writes_each: int) -> tuple[int, int]:
    gostore.Store(db, purge_interval=0).close()  # create the schema once, before the race
    stop = db.parent / "stop"
    readers = [_spawn("reader", str(db), str(stop)) for _ in range(READERS)]
    writers = [_spawn("writer", str(db), f"w{i}", str(writes_each)) for i in range(WRITERS)]
    acks = [_finish(w) for w in writers]
    stop.touch()
    reads = sum(int(_finish(r)[0]) for r in readers)

    with gostore.Store(db, purge_interval=0) as store:
        log = store.get_all("log")
        shared = store.get_all("shared")
    for i, acked in enumerate(acks):
        assert [int(seq) for seq in acked] == list(range(writes_each))  # no call failed
        for seq in range(writes_each):
            assert f"w{i}-{seq}" in log, f"acknowledged write w{i}-{seq} is missing"
    # Each shared key holds the last value some writer wrote to it: nothing older survives.
    for key, value in shared.items():
        last_per_writer = set()
        for i in range(WRITERS):
            seqs = [
                s
                for s in range(writes_each)
                if key
                in {f"k{s % SHARED_KEYS}"}
                | ({f"k{(s + 3) % SHARED_KEYS}"} if s % 3 == 1 else set())
            ]
            if seqs:
                last_per_writer.add(f"w{i}-{max(seqs)}")
        assert value in last_per_writer
    assert len(log) == WRITERS * writes_each
    return WRITERS * writes_each, reads


def test_concurrent_processes_keep_every_acknowledged_write(tmp_path: Path) -> None:
    writes, reads = _writers_and_readers(tmp_path / "shared.db", 150)
    assert writes == 600 and reads > 0


@pytest.mark.slow
@pytest.mark.skipif(not SOAK, reason="long soak: set GOSTORE_SOAK=1 to run it")
def test_concurrent_processes_soak_keep_every_acknowledged_write(tmp_path: Path) -> None:
    writes, reads = _writers_and_readers(tmp_path / "shared.db", 5000)
    assert writes == 20_000 and reads > 0


def test_lock_held_past_busy_timeout_gives_store_error_not_a_hang(tmp_path: Path) -> None:
    db = tmp_path / "locked.db"
    with gostore.Store(db, purge_interval=0) as setup:
        setup.set("g", "k", "committed")
    holder = _spawn("holder", str(db), stdin=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        with gostore.Store(db, purge_interval=0, busy_timeout=0.2) as store:
            outcome: list[BaseException | None] = []

            def write() -> None:
                try:
                    store.set("g", "k", "blocked")
                    outcome.append(None)
                except BaseException as exc:
                    outcome.append(exc)

            worker = threading.Thread(target=write)
            worker.start()
            worker.join(60)  # a hang guard, far beyond busy_timeout
            assert not worker.is_alive(), "a write blocked by another process never returned"
            error = outcome[0]
            assert isinstance(error, StoreError)
            assert isinstance(error.__cause__, apsw.BusyError)
            assert "store.set" in str(error) and "locked" in str(error)
            # WAL readers are not blocked by the other process's write lock.
            assert store.get("g", "k") == "committed"
    finally:
        _finish(holder, b"\n")  # let the holder commit and exit
    with gostore.Store(db, purge_interval=0) as store:
        assert store.get("g", "k") == "committed"
        assert store.get("held", "k") == "v"


def test_store_used_in_forked_child_raises_store_error_and_parent_keeps_working(
    tmp_path: Path,
) -> None:
    with gostore.Store(tmp_path / "fork.db", purge_interval=0) as store:
        store.set("g", "k", "parent")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                os.close(read_end)
                try:
                    store.get("g", "k")
                    message = "no error"
                except StoreError as exc:
                    message = f"{type(exc).__name__}: {exc}"
                except BaseException as exc:
                    message = f"unexpected {type(exc).__name__}: {exc}"
                os.write(write_end, message.encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            message = pipe.read().decode()
        os.waitpid(pid, 0)
        assert message.startswith("StoreError:") and "fork" in message and "new Store" in message
        store.set("g", "k2", "after fork")
        assert store.get_all("g") == {"k": "parent", "k2": "after fork"}
