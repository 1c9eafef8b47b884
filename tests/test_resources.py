"""Resources: opening and closing many stores (file and memory, with watchers, callbacks and
the purge thread) leaves no extra thread and no open file descriptor behind."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import pytest

import gostore
from gostore import StoreClosedError

STORES = 1000


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _use(store: gostore.Store, i: int) -> None:
    watcher = store.watch("g", "*", buffer=2)
    store.watch("*", "*")  # left open on purpose: close() must close it
    store.on_change(lambda event: None)
    store.set("g", f"k{i}", "v")
    store.set_with_ttl("g", "short", "v", -1)
    assert watcher.get_nowait() is not None
    store.scoped("t", gostore.QuotaConfig(max_keys=3)).set("g", "k", "v")
    with store.transaction() as tx:
        tx.set("g", "tx", "v")


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_opening_and_closing_many_stores_leaves_no_threads_or_descriptors(
    tmp_path: Path, kind: str
) -> None:
    gc.collect()
    threads, fds = threading.active_count(), _fds()
    for i in range(STORES // 2):
        path = ":memory:" if kind == "memory" else str(tmp_path / f"s{i % 10}.db")
        # synchronous="off": fsync time says nothing about leaks and would dominate the run.
        store = gostore.Store(path, purge_interval=0.001 if i % 2 else 60, synchronous="off")
        _use(store, i)
        store.close()
        store.close()  # idempotent
        with pytest.raises(StoreClosedError):
            store.get("g", "k")
    gc.collect()
    assert threading.active_count() == threads
    assert _fds() == fds


def test_context_manager_close_stops_the_purge_thread_and_closes_watchers(tmp_path: Path) -> None:
    threads, fds = threading.active_count(), _fds()
    with gostore.Store(tmp_path / "ctx.db", purge_interval=0.001) as store:
        watcher = store.watch("*", "*")
        assert threading.active_count() == threads + 1
    assert watcher.closed
    assert threading.active_count() == threads
    assert _fds() == fds


def test_failed_opens_leave_no_threads_or_descriptors(tmp_path: Path) -> None:
    threads, fds = threading.active_count(), _fds()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 500)
    for i in range(100):
        with pytest.raises(gostore.StoreError):
            gostore.Store(garbage if i % 2 else tmp_path / "no-dir" / "x.db", purge_interval=1)
    gc.collect()
    assert threading.active_count() == threads
    assert _fds() == fds
