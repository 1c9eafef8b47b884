"""store.transaction() — atomic blocks, staged events, same-thread joins,
savepoints, and isolation from other threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gostore import Event, EventType, NotFoundError, Store, StoreClosedError, StoreError

from .conftest import drain

TIMEOUT = 10.0


class Boom(Exception):
    pass


# -- read-your-writes, commit, rollback --------------------------------------------------------
def test_transaction_reads_see_its_own_pending_writes(store: Store) -> None:
    store.set("accounts", "carol", "5")
    with store.transaction() as tx:
        tx.set("accounts", "alice", "10")
        tx.set_many("accounts", {"bob": "20"})
        tx.delete("accounts", "carol")
        assert tx.count("accounts") == 2
        assert tx.get_all("accounts") == {"alice": "10", "bob": "20"}
        assert [kv.key for kv in tx.all("accounts")] == ["alice", "bob"]
        assert tx.get("accounts", "alice") == "10"
        assert tx.exists("accounts", "bob") and not tx.exists("accounts", "carol")
        assert tx.count_all("acc") == 2
        assert tx.groups() == ["accounts"]
        assert tx.get_many("accounts", ["alice", "carol"]) == {"alice": "10"}
        assert tx.get_page("accounts", 1, 1)[0].key == "bob"
        assert tx.render("{{ alice }}+{{ bob }}", "accounts") == "10+20"


def test_transaction_commits_when_the_block_exits_normally(store: Store) -> None:
    with store.transaction() as tx:
        tx.set("g", "a", "1")
        tx.set_with_ttl("g", "b", "2", 60)
    assert store.get_all("g") == {"a": "1", "b": "2"}


def test_transaction_rolls_back_and_propagates_an_exception(store: Store) -> None:
    store.set("g", "kept", "old")
    with pytest.raises(Boom), store.transaction() as tx:
        tx.set("g", "new", "1")
        tx.set("g", "kept", "changed")
        tx.delete_group("other")
        raise Boom
    assert store.get_all("g") == {"kept": "old"}


def test_rollback_undoes_deletes_and_delete_prefix(store: Store) -> None:
    store.set_many("app:a", {"1": "x"})
    store.set("app:b", "2", "y")
    with pytest.raises(Boom), store.transaction() as tx:
        assert tx.delete_prefix("app:") == 2
        tx.delete_group("app:a")
        assert tx.groups() == []
        raise Boom
    assert store.groups() == ["app:a", "app:b"]


def test_transaction_offers_every_read_and_write_method_of_store(store: Store) -> None:
    store.set("g", "words", "a b  c")
    with store.transaction() as tx:
        assert list(tx.get_split("g", "words", " ")) == ["a", "b", "", "c"]
        assert list(tx.get_fields("g", "words")) == ["a", "b", "c"]
        assert list(tx.groups_iter()) == ["g"]
        tx.set_with_ttl("g", "gone", "v", 0)
        assert tx.purge_expired() == 1


# -- events ------------------------------------------------------------------------------------
def test_events_are_staged_and_delivered_only_after_commit(store: Store) -> None:
    watcher = store.watch("*", "*")
    calls: list[Event] = []
    store.on_change(calls.append)
    with store.transaction() as tx:
        tx.set("g", "a", "1")
        tx.delete("g", "a")
        tx.set("g", "b", "2")
        assert watcher.get_nowait() is None
        assert calls == []
    expected = [
        (EventType.SET, "g", "a", "1"),
        (EventType.DELETE, "g", "a", ""),
        (EventType.SET, "g", "b", "2"),
    ]
    assert [(e.type, e.group, e.key, e.value) for e in drain(watcher)] == expected
    assert [(e.type, e.group, e.key, e.value) for e in calls] == expected


def test_rolled_back_transaction_delivers_no_events(store: Store) -> None:
    watcher = store.watch("*", "*")
    calls: list[Event] = []
    store.on_change(calls.append)
    with pytest.raises(Boom), store.transaction() as tx:
        tx.set("g", "a", "1")
        store.set("g", "b", "2")  # the same thread joins the transaction
        raise Boom
    assert watcher.get_nowait() is None
    assert calls == []
    store.set("g", "c", "3")  # nothing stale is staged for the next commit
    assert [e.key for e in drain(watcher)] == ["c"]
    assert [e.key for e in calls] == ["c"]


def test_callbacks_after_commit_run_outside_the_transaction(store: Store) -> None:
    seen: list[str] = []

    def callback(event: Event) -> None:
        if event.group == "g":
            # a write from the callback must commit on its own, not join a finished transaction
            store.set("log", event.key, "seen")
            seen.append(event.key)

    store.on_change(callback)
    with store.transaction() as tx:
        tx.set("g", "a", "1")
    assert seen == ["a"]
    assert store.get("log", "a") == "seen"


# -- threads -----------------------------------------------------------------------------------
# On PostgreSQL other threads do not wait (tests/test_postgres.py checks that rule).
@pytest.mark.sqlite_only
def test_another_thread_waits_until_the_transaction_ends(store: Store) -> None:
    order: list[str] = []
    calling = threading.Event()
    store.on_change(lambda event: order.append(event.key))

    def other() -> None:
        calling.set()
        store.set("g", "other-thread", "v")

    thread = threading.Thread(target=other)
    with pytest.raises(Boom), store.transaction() as tx:
        tx.set("g", "in-tx", "v")
        thread.start()
        assert calling.wait(TIMEOUT)
        thread.join(0.05)  # give it the chance to (wrongly) slip into the transaction
        assert thread.is_alive()
        raise Boom
    thread.join(TIMEOUT)
    # had the other thread's write joined the transaction, the rollback would have removed it
    assert store.get_all("g") == {"other-thread": "v"}
    assert order == ["other-thread"]


# On PostgreSQL the reader does not wait for the block to end (tests/test_postgres.py).
@pytest.mark.sqlite_only
def test_another_thread_sees_the_committed_state_only(store: Store) -> None:
    store.set("g", "k", "old")
    seen: list[str] = []
    calling = threading.Event()

    def reader() -> None:
        calling.set()
        seen.append(store.get("g", "k"))

    thread = threading.Thread(target=reader)
    with store.transaction() as tx:
        tx.set("g", "k", "new")
        thread.start()
        assert calling.wait(TIMEOUT)
        if store.path != ":memory:":
            # A file store's reads run on reader connections: they do not wait for the block
            # and see the last committed state, never the block's uncommitted writes.
            thread.join(TIMEOUT)
            assert seen == ["old"]
        else:
            thread.join(0.05)  # in memory there is one connection: the read waits
            assert seen == []
        tx.set("g", "k", "newest")
    thread.join(TIMEOUT)
    assert seen == ["old"] if store.path != ":memory:" else ["newest"]
    assert store.get("g", "k") == "newest"


@pytest.mark.sqlite_only
def test_another_thread_writing_waits_for_the_block_to_end(store: Store) -> None:
    done = threading.Event()
    calling = threading.Event()

    def writer() -> None:
        calling.set()
        store.set("g", "k", "other")
        done.set()

    thread = threading.Thread(target=writer)
    with store.transaction() as tx:
        tx.set("g", "k", "mine")
        thread.start()
        assert calling.wait(TIMEOUT)
        assert not done.wait(0.05)
        assert tx.get("g", "k") == "mine"
    thread.join(TIMEOUT)
    assert store.get("g", "k") == "other"


def test_same_thread_calling_the_parent_store_joins_the_transaction(store: Store) -> None:
    with pytest.raises(Boom), store.transaction() as tx:
        store.set("g", "via-store", "1")
        assert tx.get("g", "via-store") == "1"
        store.set_many("g", {"many": "2"})
        assert store.count("g") == 2
        raise Boom
    assert store.count("g") == 0

    with store.transaction() as tx:
        store.set("g", "via-store", "1")
        tx.set("g", "via-tx", "2")
    assert store.get_all("g") == {"via-store": "1", "via-tx": "2"}


def test_transaction_object_is_unusable_from_another_thread(store: Store) -> None:
    errors: list[BaseException] = []

    def use(tx: object) -> None:
        try:
            tx.set("g", "k", "v")  # type: ignore[attr-defined]
        except BaseException as exc:
            errors.append(exc)

    with store.transaction() as tx:
        thread = threading.Thread(target=use, args=(tx,))
        thread.start()
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], StoreError)
    assert "thread" in str(errors[0])
    assert store.count("g") == 0


def test_transaction_object_is_unusable_after_the_block(store: Store) -> None:
    with store.transaction() as tx:
        tx.set("g", "k", "v")
    with pytest.raises(StoreError, match="ended"):
        tx.set("g", "k2", "v")
    with pytest.raises(StoreError, match="ended"):
        tx.get("g", "k")
    assert "ended" in repr(tx)


def test_transaction_object_is_unusable_after_a_rollback(store: Store) -> None:
    with pytest.raises(Boom), store.transaction() as tx:
        raise Boom
    with pytest.raises(StoreError):
        tx.count("g")


# -- savepoints ------------------------------------------------------------------------------
def test_nested_transaction_rollback_keeps_the_outer_writes(store: Store) -> None:
    watcher = store.watch("*", "*")
    with store.transaction() as outer:
        outer.set("g", "outer", "1")
        with pytest.raises(Boom), store.transaction() as inner:
            inner.set("g", "inner", "2")
            assert inner.count("g") == 2
            raise Boom
        assert outer.get_all("g") == {"outer": "1"}
        outer.set("g", "after", "3")
    assert store.get_all("g") == {"outer": "1", "after": "3"}
    # the rolled-back savepoint's event is never delivered
    assert [e.key for e in drain(watcher)] == ["outer", "after"]


def test_nested_transaction_commit_is_undone_by_an_outer_rollback(store: Store) -> None:
    with pytest.raises(Boom), store.transaction():
        with store.transaction() as inner:
            inner.set("g", "inner", "1")
        raise Boom
    assert store.count("g") == 0


def test_write_methods_inside_a_transaction_are_savepoints_too(store: Store) -> None:
    # set_many and delete_prefix open their own atomic level; a failure there undoes only it
    with store.transaction() as tx:
        tx.set("g", "kept", "1")
        with pytest.raises(ValueError):
            tx.set_many("g", {"a": "1", "b": "\ud800"})
        assert tx.get_all("g") == {"kept": "1"}
    assert store.get_all("g") == {"kept": "1"}


# -- lifecycle -------------------------------------------------------------------------------
def test_close_inside_a_transaction_raises_and_leaves_the_store_open(store: Store) -> None:
    with store.transaction() as tx:
        tx.set("g", "k", "v")
        with pytest.raises(StoreError, match="transaction"):
            store.close()
    assert not store.closed
    assert store.get("g", "k") == "v"


def test_transaction_on_a_closed_store_raises_store_closed(store: Store) -> None:
    store.close()
    with pytest.raises(StoreClosedError), store.transaction():
        pass


def test_transaction_get_of_expired_key_raises_not_found(store: Store) -> None:
    with store.transaction() as tx:
        tx.set_with_ttl("g", "k", "v", 0)
        with pytest.raises(NotFoundError):
            tx.get("g", "k")


# -- file-backed -----------------------------------------------------------------------------
def test_file_transaction_commit_is_visible_to_another_connection(
    file_store: Store, db_path: Path
) -> None:
    with file_store.transaction() as tx:
        tx.set_many("g", {"a": "1", "b": "2"})
        tx.delete("g", "a")
    with Store(db_path, purge_interval=0) as other:
        assert other.get_all("g") == {"b": "2"}


def test_file_transaction_rollback_leaves_the_file_unchanged(
    file_store: Store, db_path: Path
) -> None:
    file_store.set("g", "kept", "1")
    with pytest.raises(Boom), file_store.transaction() as tx:
        tx.set("g", "new", "2")
        tx.delete("g", "kept")
        raise Boom
    assert file_store.get_all("g") == {"kept": "1"}
    with Store(db_path, purge_interval=0) as other:
        assert other.get_all("g") == {"kept": "1"}


def test_file_transaction_is_not_visible_to_another_connection_until_commit(
    file_store: Store, db_path: Path
) -> None:
    with Store(db_path, purge_interval=0, busy_timeout=5) as other:
        with file_store.transaction() as tx:
            tx.set("g", "k", "v")
            assert other.count("g") == 0  # WAL: readers see the last commit
        assert other.get("g", "k") == "v"


def test_file_nested_transaction_savepoint(file_store: Store) -> None:
    with file_store.transaction() as outer:
        outer.set("g", "outer", "1")
        with pytest.raises(Boom), file_store.transaction() as inner:
            inner.set("g", "inner", "2")
            raise Boom
    assert file_store.get_all("g") == {"outer": "1"}
