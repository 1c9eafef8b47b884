"""File stores read on a bounded pool of read-only connections; a thread in its own transaction
reads on the writer; memory stores keep one connection."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

import gostore
from gostore import StoreClosedError, StoreError
from gostore._core import core_of
from gostore.engine.sqlite_readers import MAX_READERS

TIMEOUT = 10.0


def _engine(store: gostore.Store) -> Any:
    return core_of(store).engine


def test_a_memory_store_keeps_one_connection() -> None:
    with gostore.Store(":memory:", purge_interval=0) as store:
        store.set("g", "k", "v")
        assert store.get("g", "k") == "v"
        assert _engine(store)._readers is None


def test_reads_in_the_own_transaction_see_its_writes_and_other_threads_do_not(
    tmp_path: Path,
) -> None:
    with gostore.Store(str(tmp_path / "s.db"), purge_interval=0) as store:
        store.set("g", "k", "old")
        seen: dict[str, Any] = {}

        def other() -> None:
            seen["get"] = store.get("g", "k")
            seen["count"] = store.count("g")
            seen["all"] = store.get_all("g")
            seen["page"] = store.get_page("g")
            seen["many"] = store.get_many("g", ["k", "new"])
            seen["exists"] = store.exists("g", "new")

        with store.transaction() as tx:
            tx.set("g", "k", "mine")
            tx.set("g", "new", "1")
            thread = threading.Thread(target=other)
            thread.start()
            thread.join(TIMEOUT)
            assert not thread.is_alive()  # the reads did not wait for the block
            assert store.get("g", "k") == "mine"
            assert store.count("g") == 2
            assert tx.get_all("g") == {"k": "mine", "new": "1"}
        assert seen["get"] == "old"
        assert seen["count"] == 1
        assert seen["all"] == {"k": "old"}
        assert [tuple(kv) for kv in seen["page"]] == [("k", "old")]
        assert seen["many"] == {"k": "old"}
        assert seen["exists"] is False
        assert store.get_all("g") == {"k": "mine", "new": "1"}


def test_a_poisoned_transaction_refuses_its_own_reads_but_not_other_threads(
    tmp_path: Path,
) -> None:
    with gostore.Store(str(tmp_path / "p.db"), purge_interval=0) as store:
        store.set("g", "k", "v")
        engine = _engine(store)
        seen: list[str] = []
        with pytest.raises(StoreError), store.transaction() as tx:
            tx.set("g", "k", "mine")
            engine._use(engine._refuse)  # as a failed statement does
            engine._poisoned_at, engine._poison = 1, gostore.engine.DatabaseError("boom")
            with pytest.raises(StoreError, match="failed earlier"):
                tx.get("g", "k")
            thread = threading.Thread(target=lambda: seen.append(store.get("g", "k")))
            thread.start()
            thread.join(TIMEOUT)
        assert seen == ["v"]
        assert store.get("g", "k") == "v"


def test_more_threads_than_readers_share_the_bounded_pool(tmp_path: Path) -> None:
    with gostore.Store(str(tmp_path / "b.db"), purge_interval=0) as store:
        store.set_many("g", {f"k{i}": str(i) for i in range(100)})
        errors: list[BaseException] = []
        start = threading.Barrier(3 * MAX_READERS)

        def read() -> None:
            try:
                start.wait(TIMEOUT)
                for i in range(300):
                    assert store.get("g", f"k{i % 100}") == str(i % 100)
                    assert store.count("g") == 100
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(3 * MAX_READERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT * 3)
        assert errors == []
        assert len(_engine(store)._readers._conns) <= MAX_READERS


def test_close_closes_every_reader(tmp_path: Path) -> None:
    store = gostore.Store(str(tmp_path / "c.db"), purge_interval=0)
    store.set("g", "k", "v")
    threads = [threading.Thread(target=store.get, args=("g", "k")) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    conns = list(_engine(store)._readers._conns)
    assert conns
    store.close()
    for conn in conns:
        with pytest.raises(Exception, match="closed"):
            conn.execute("SELECT 1")
    with pytest.raises(StoreClosedError):
        store.get("g", "k")


def test_a_read_only_store_reads_on_readers(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    with gostore.Store(path, purge_interval=0) as writer:
        writer.set("g", "k", "v")
        with gostore.Store(path, purge_interval=0, readonly=True) as store:
            assert store.get("g", "k") == "v"
            assert store.get_all("g") == {"k": "v"}
            assert _engine(store)._readers._conns


def test_a_change_feed_store_reads_on_readers_and_records_its_writes(tmp_path: Path) -> None:
    with gostore.Store(str(tmp_path / "f.db"), purge_interval=0, change_feed=True) as store:
        store.set("g", "k", "v")
        assert store.get("g", "k") == "v"
        assert _engine(store)._readers._conns
        assert [c.key for c in store.changes(0)] == ["k"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_never_uses_the_parents_readers(tmp_path: Path) -> None:
    with gostore.Store(str(tmp_path / "k.db"), purge_interval=0) as store:
        store.set("g", "k", "v")
        assert store.get("g", "k") == "v"
        readers = list(_engine(store)._readers._conns)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                store.get("g", "k")
                code = 1
            except StoreError:
                pass
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert store.get("g", "k") == "v"  # the parent's readers still work
        assert _engine(store)._readers._conns == readers
