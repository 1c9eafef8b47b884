"""A transaction block is all-or-nothing even when SQLite itself rolls the transaction back.

On some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM, a trigger's RAISE(ROLLBACK)...)
SQLite ends the whole transaction, not only the failing statement. A gostore transaction that
carries on after such an error must not write the rest of its block in autocommit: every later
call in the block fails with a StoreError saying the transaction was rolled back, nothing of the
block is committed, and no event is sent for it. Two causes are used: a real full disk (a 1 MiB
tmpfs) and a trigger written into the file by another tool, which needs no mount.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import apsw
import pytest

import gostore
from gostore import EventType, NotFoundError, StoreError, Transaction

from .conftest import drain, mounted_tmpfs

ROLLED_BACK = re.compile(r"roll(ed)?[ -]?back|abort", re.IGNORECASE)

FailingWrite = Callable[[gostore.Store, Transaction], None]


def _write_big_value(store: gostore.Store, tx: Transaction) -> None:
    tx.set("a", "big", "z" * 3_000_000)  # 3 MB on a 1 MiB filesystem


def _write_poison(store: gostore.Store, tx: Transaction) -> None:
    tx.set("a", "poison", "v")


def _set_many_big(store: gostore.Store, tx: Transaction) -> None:
    tx.set_many("a", {"big": "z" * 3_000_000, "other": "o"})


def _set_many_poison(store: gostore.Store, tx: Transaction) -> None:
    tx.set_many("a", {"poison": "v", "other": "o"})


def _nested_big(store: gostore.Store, tx: Transaction) -> None:
    with store.transaction() as inner:
        inner.set("a", "big", "z" * 3_000_000)


def _nested_poison(store: gostore.Store, tx: Transaction) -> None:
    with store.transaction() as inner:
        inner.set("a", "poison", "v")


@pytest.fixture
def full_disk_store(tmp_path: Path) -> Iterator[gostore.Store]:
    """A file store on a 1 MiB tmpfs: a 3 MB value fails with SQLITE_FULL.

    Its page cache is SQLite's default 2 MB, so the 3 MB value spills to the file during the
    statement and fails there (inside the block); a larger cache would hold it until COMMIT.
    """
    with mounted_tmpfs(tmp_path / "mnt", "1m") as mnt:
        store = gostore.Store(mnt / "full.db", purge_interval=0, cache_size_mb=2)
        try:
            yield store
        finally:
            store.close()


@pytest.fixture
def trigger_store(tmp_path: Path) -> Iterator[gostore.Store]:
    """A file store whose entries table carries another tool's triggers: writing the key
    "poison" runs RAISE(ROLLBACK) (SQLite ends the whole transaction), writing "refused" runs
    RAISE(ABORT) (SQLite undoes only that statement)."""
    path = tmp_path / "trigger.db"
    gostore.Store(path, purge_interval=0).close()
    conn = apsw.Connection(str(path))
    conn.execute(
        "CREATE TRIGGER poison BEFORE INSERT ON entries WHEN NEW.entry_key = 'poison' "
        "BEGIN SELECT RAISE(ROLLBACK, 'poison refused by a trigger'); END"
    )
    conn.execute(
        "CREATE TRIGGER refused BEFORE INSERT ON entries WHEN NEW.entry_key = 'refused' "
        "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
    )
    conn.close()
    with gostore.Store(path, purge_interval=0) as store:
        yield store


def _check_block_is_all_or_nothing(store: gostore.Store, fail: FailingWrite) -> None:
    events: list[gostore.Event] = []
    store.on_change(events.append)
    watcher = store.watch("a", "*", buffer=64)
    store.set("a", "before", "0")
    drain(watcher)
    events.clear()

    try:
        with store.transaction() as tx:
            tx.set("a", "x", "1")
            # The application catches the failure and carries on, as it may for any StoreError.
            with pytest.raises(StoreError):
                fail(store, tx)
            later_calls: list[Callable[[], object]] = [
                lambda: tx.set("a", "y", "2"),
                lambda: tx.get("a", "x"),
                lambda: tx.get_all("a"),
                lambda: tx.delete("a", "before"),
            ]
            for later in later_calls:
                with pytest.raises(StoreError, match=ROLLED_BACK) as caught:
                    later()
                assert not isinstance(caught.value, NotFoundError), caught.value
    except StoreError:
        pass  # leaving the block may report the rollback again; it must be a StoreError

    assert store.get_all("a") == {"before": "0"}, "part of a rolled-back block was committed"
    assert drain(watcher) == [], "a watcher got events of a rolled-back block"
    assert events == [], "a callback got events of a rolled-back block"

    # The store keeps working, and a committed transaction sends exactly its own events.
    with store.transaction() as tx:
        tx.set("a", "after", "3")
        tx.delete("a", "before")
    assert store.get_all("a") == {"after": "3"}
    expected = [(EventType.SET, "after", "3"), (EventType.DELETE, "before", "")]
    assert [(e.type, e.key, e.value) for e in drain(watcher)] == expected
    assert [(e.type, e.key, e.value) for e in events] == expected


@pytest.mark.parametrize(
    "fail",
    [_write_big_value, _set_many_big, _nested_big],
    ids=["set", "set_many", "nested-transaction"],
)
def test_full_disk_inside_transaction_rolls_back_the_whole_block(
    full_disk_store: gostore.Store, fail: FailingWrite
) -> None:
    # The failure really is the full disk, not something else.
    with pytest.raises(StoreError, match=r"(?i)full"):
        full_disk_store.set("probe", "big", "z" * 3_000_000)
    _check_block_is_all_or_nothing(full_disk_store, fail)


@pytest.mark.parametrize(
    "fail",
    [_write_poison, _set_many_poison, _nested_poison],
    ids=["set", "set_many", "nested-transaction"],
)
def test_sqlite_rollback_inside_transaction_rolls_back_the_whole_block(
    trigger_store: gostore.Store, fail: FailingWrite
) -> None:
    _check_block_is_all_or_nothing(trigger_store, fail)


def test_nested_transaction_failure_raises_only_gostore_errors(
    trigger_store: gostore.Store,
) -> None:
    """No raw APSW error ("no such savepoint") escapes a nested transaction whose savepoint
    SQLite already discarded with the whole transaction."""
    try:
        with trigger_store.transaction() as tx:
            tx.set("a", "x", "1")
            try:
                with trigger_store.transaction() as inner:
                    inner.set("a", "poison", "v")
            except StoreError:
                pass
    except StoreError:
        pass
    except apsw.Error as exc:  # pragma: no cover - the failure this test reports
        pytest.fail(f"a raw APSW error escaped: {type(exc).__name__}: {exc}")
    assert trigger_store.get_all("a") == {}


def test_statement_rollback_inside_transaction_commits_what_succeeded_with_its_events(
    trigger_store: gostore.Store,
) -> None:
    """RAISE(ABORT) undoes only its statement and SQLite keeps the transaction open: the block
    may go on, and whatever ends up committed is exactly what the events report (all of the
    successful writes, or none of them if the block is refused as a whole)."""
    events: list[gostore.Event] = []
    store = trigger_store
    store.on_change(events.append)
    watcher = store.watch("a", "*", buffer=64)
    try:
        with store.transaction() as tx:
            tx.set("a", "x", "1")
            with pytest.raises(StoreError, match="refused by a trigger"):
                tx.set("a", "refused", "v")
            tx.set("a", "y", "2")
    except StoreError:
        pass
    committed = store.get_all("a")
    assert committed in ({"x": "1", "y": "2"}, {})
    sent = [(e.type, e.key, e.value) for e in drain(watcher)]
    assert sent == [(EventType.SET, k, v) for k, v in sorted(committed.items())]
    assert [(e.type, e.key, e.value) for e in events] == sent
