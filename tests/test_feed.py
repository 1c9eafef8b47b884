"""The change feed: every change recorded in the database, delivered across connections and
processes, numbered, replayable after a restart, and trimmed by retention."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import pytest

import gostore
from gostore import ChangesExpiredError, Event, EventType, Store, StoreError
from gostore._core import core_of
from gostore.aio import AsyncStore

from .conftest import keep_calling

HELPER = str(Path(__file__).parent / "helpers" / "feed_child.py")
GEN = Path(__file__).parent / "data" / "gen_gostore_db"
GO_TESTS = os.environ.get("GOSTORE_GO_TESTS", "").strip() == "1" and shutil.which("go") is not None
requires_go = pytest.mark.skipif(not GO_TESTS, reason="set GOSTORE_GO_TESTS=1 (needs `go`)")

SET, DELETE, DELETE_GROUP, EXPIRE = EventType


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "feed.db"


def drain(watcher: gostore.Watcher, timeout: float = 0.3) -> list[Event]:
    """Every event that arrives until ``timeout`` passes with none."""
    events = []
    while (event := watcher.get(timeout)) is not None:
        events.append(event)
    return events


def brief(events: list[Event]) -> list[tuple[EventType, str, str, str]]:
    return [(e.type, e.group, e.key, e.value) for e in events]


def schema(path: Path) -> list[tuple[str, str, str]]:
    conn = apsw.Connection(str(path))
    try:
        return sorted(conn.execute("SELECT type, name, sql FROM sqlite_schema").fetchall())
    finally:
        conn.close()


# -- the record -----------------------------------------------------------------------------------
def test_store_without_feed_leaves_the_schema_as_go_store_writes_it(
    db: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain.db"
    conn = apsw.Connection(str(plain))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE entries (group_name TEXT NOT NULL, entry_key TEXT NOT NULL, "
        "entry_value TEXT NOT NULL, expires_at INTEGER, PRIMARY KEY (group_name, entry_key))"
    )
    conn.close()
    before = schema(plain)
    with Store(plain) as store:
        store.set("g", "k", "v")
        store.delete_group("g")
        store.purge_expired()
    assert schema(plain) == before
    with Store(db) as store:
        store.set("g", "k", "v")
    assert sorted(name for _, name, _ in schema(db)) == ["entries", "sqlite_autoindex_entries_1"]


def test_feed_records_each_write_with_the_type_its_watchers_saw(db: Path) -> None:
    with Store(db, change_feed=True, purge_interval=0) as store, store.watch("*", "*") as w:
        store.set("g", "a", "1")
        store.set_with_ttl("g", "b", "2", 60)
        store.delete("g", "a")
        store.delete("g", "absent")  # removes nothing: no event, no record
        store.set_many("m", {"x": "1", "y": "2"})
        store.delete_group("g")
        store.set_with_ttl("t", "lazy", "v", -1)
        with pytest.raises(gostore.NotFoundError):
            store.get("t", "lazy")
        store.set_with_ttl("t", "purged", "v", -1)
        assert store.purge_expired() == 1
        store.set("p1", "k", "v")
        store.set("p2", "k", "v")
        assert store.delete_prefix("p") == 2
        with store.transaction() as tx:
            tx.set("tx", "k", "v")
            tx.delete("tx", "k")
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.set("rolled", "back", "v")
            raise RuntimeError
        seen = drain(w, 0.05)
        recorded = list(store.changes())
    # the watcher saw the write's own time, the record the database's: the rest is equal
    assert [e._replace(timestamp=0) for e in seen] == [e._replace(timestamp=0) for e in recorded]
    assert brief(recorded) == [
        (SET, "g", "a", "1"),
        (SET, "g", "b", "2"),
        (DELETE, "g", "a", ""),
        (SET, "m", "x", "1"),
        (SET, "m", "y", "2"),
        (DELETE_GROUP, "g", "", ""),
        (SET, "t", "lazy", "v"),
        (EXPIRE, "t", "lazy", ""),
        (SET, "t", "purged", "v"),
        (EXPIRE, "t", "purged", ""),
        (SET, "p1", "k", "v"),
        (SET, "p2", "k", "v"),
        (DELETE_GROUP, "p1", "", ""),
        (DELETE_GROUP, "p2", "", ""),
        (SET, "tx", "k", "v"),
        (DELETE, "tx", "k", ""),
    ]
    seqs = [e.seq for e in recorded]
    assert seqs == sorted(set(seqs)) and seqs[0] >= 1
    assert abs(recorded[0].timestamp - time.time()) < 60


def test_changes_since_and_limit_page_through_the_record(db: Path) -> None:
    with Store(db, change_feed=True, purge_interval=0) as store:
        assert store.last_seq() == 0 and list(store.changes()) == []
        for n in range(1200):  # more than one page of the reader
            store.set("g", str(n), str(n))
        last = store.last_seq()
        every = list(store.changes())
        assert [e.value for e in every] == [str(n) for n in range(1200)]
        assert every[-1].seq == last
        middle = every[599].seq
        assert [e.value for e in store.changes(since=middle)] == [str(n) for n in range(600, 1200)]
        assert [e.value for e in store.changes(middle, limit=3)] == ["600", "601", "602"]
        assert list(store.changes(since=last)) == []
        assert list(store.changes(limit=0)) == []
        with pytest.raises(ValueError, match="since must be >= 0"):
            store.changes(since=-1)
        with pytest.raises(TypeError, match="limit must be int"):
            store.changes(limit=1.5)  # type: ignore[arg-type]


def test_event_seq_is_last_and_zero_without_the_feed() -> None:
    assert Event(SET, "g", "k", "v", 1.0) == (SET, "g", "k", "v", 1.0, 0)
    assert Event._fields[-1] == "seq"
    with Store() as store, store.watch("g", "k") as w:
        store.set("g", "k", "v")
        event = w.get(1)
    assert event is not None and event.seq == 0


def test_store_without_feed_refuses_changes_last_seq_and_watch_since() -> None:
    with Store() as store:
        for call in (
            lambda: store.changes(),
            store.last_seq,
            lambda: store.watch("*", "*", since=0),
            lambda: store.scoped("ns").watch("*", "*", since=0),
        ):
            with pytest.raises(StoreError, match=r"change_feed=True"):
                call()


def test_memory_store_records_and_replays_without_a_background_reader() -> None:
    before = {t.name for t in threading.enumerate()}
    with Store(change_feed=True, purge_interval=0) as store:
        assert {t.name for t in threading.enumerate()} == before
        store.set("g", "k", "v")
        with store.watch("g", "*", since=0) as w:
            assert brief(drain(w, 0.01)) == [(SET, "g", "k", "v")]


# -- other connections and programs --------------------------------------------------------------
def test_foreign_insert_update_delete_arrive_as_set_set_delete(db: Path) -> None:
    with Store(db, change_feed=True, purge_interval=0) as store, store.watch("*", "*") as w:
        threads: list[str] = []
        unregister = store.on_change(lambda e: threads.append(threading.current_thread().name))
        conn = apsw.Connection(str(db))
        conn.execute("INSERT INTO entries VALUES ('f', 'k', 'v1', NULL)")
        conn.execute("UPDATE entries SET entry_value = 'v2' WHERE group_name = 'f'")
        conn.execute("UPDATE entries SET entry_key = 'moved' WHERE group_name = 'f'")
        conn.execute("DELETE FROM entries WHERE group_name = 'f'")
        conn.close()
        events = drain(w)
        unregister()
    assert brief(events) == [
        (SET, "f", "k", "v1"),
        (SET, "f", "k", "v2"),
        (DELETE, "f", "k", ""),
        (SET, "f", "moved", "v2"),
        (DELETE, "f", "moved", ""),
    ]
    assert len(threads) == 5 and all(name.startswith("gostore-feed") for name in threads)


def test_other_store_changes_arrive_once_and_own_writes_are_not_delivered_twice(db: Path) -> None:
    with (
        Store(db, change_feed=True, purge_interval=0) as a,
        Store(db, change_feed=True, purge_interval=0) as b,
        a.watch("*", "*") as wa,
        b.watch("*", "*") as wb,
    ):
        a.set("g", "from-a", "1")
        b.set("g", "from-b", "2")
        b.delete_group("g")
        got_a, got_b = drain(wa), drain(wb)
    expected = [(SET, "g", "from-a", "1"), (SET, "g", "from-b", "2"), (DELETE_GROUP, "g", "", "")]
    assert brief(got_a) == brief(got_b) == expected
    assert [e.seq for e in got_a] == [e.seq for e in got_b]


def test_own_write_after_unseen_foreign_write_keeps_the_key_in_order(db: Path) -> None:
    with Store(db, change_feed=True, purge_interval=0) as store, store.watch("g", "k") as w:
        conn = apsw.Connection(str(db))
        # Before the background reader can look (it polls every few ms), write again here.
        conn.execute("INSERT INTO entries VALUES ('g', 'k', 'foreign', NULL)")
        store.set("g", "k", "own")
        conn.close()
        events = drain(w)
    assert [e.value for e in events] == ["foreign", "own"]
    assert events[0].seq < events[1].seq


@pytest.fixture(params=["sqlite-file", "postgresql"])
def feed_target(request: pytest.FixtureRequest, db: Path) -> str:
    """A new database on each engine with a background feed reader."""
    if request.param == "sqlite-file":
        return str(db)
    return str(request.getfixturevalue("pg_fresh_url"))


def _transaction_then(store: Store, step: Callable[[], None]) -> None:
    """Set g/k to "in-tx" in a transaction, and run ``step`` once, in the writing thread,
    right after the commit and before the transaction's events are delivered."""
    engine: Any = core_of(store).engine
    commit = engine.commit

    def commit_then_step() -> None:
        commit()
        if engine.depth == 0 and engine.commit is commit_then_step:
            del engine.commit
            step()

    engine.commit = commit_then_step
    with store.transaction() as tx:
        tx.set("g", "k", "in-tx")


def test_a_later_change_of_another_store_is_not_delivered_before_a_transactions_own(
    feed_target: str,
) -> None:
    """Between a transaction's commit and the delivery of its events, the background reader
    must not deliver another connection's change that committed after it."""
    with (
        Store(feed_target, change_feed=True, purge_interval=0) as store,
        Store(feed_target, change_feed=True, purge_interval=0) as other,
        store.watch("g", "k") as watcher,
    ):

        def other_writes_and_the_reader_has_time() -> None:
            other.set("g", "k", "later")
            time.sleep(0.3)  # the reader polls every few ms

        _transaction_then(store, other_writes_and_the_reader_has_time)
        events = drain(watcher)
    assert [e.value for e in events] == ["in-tx", "later"]
    assert events[0].seq < events[1].seq


def test_a_later_write_of_another_thread_is_not_delivered_before_a_transactions_own(
    feed_target: str,
) -> None:
    """A write of the same store in another thread, committed after the transaction, waits
    for the transaction's events before it delivers its own."""
    with (
        Store(feed_target, change_feed=True, purge_interval=0) as store,
        store.watch("g", "k") as watcher,
    ):
        writer = threading.Thread(target=store.set, args=("g", "k", "later"))

        def another_thread_writes() -> None:
            writer.start()
            writer.join(0.3)

        _transaction_then(store, another_thread_writes)
        writer.join()
        events = drain(watcher)
    assert [e.value for e in events] == ["in-tx", "later"]
    assert events[0].seq < events[1].seq


def _writers(store: Store, tag: str) -> list[Callable[[int], object]]:
    """A store's mix of writes on five shared keys of group g, the n-th call of each."""

    def transaction(n: int) -> None:
        with store.transaction() as tx:
            tx.set("g", f"k{n % 5}", f"{tag}{n}")
            tx.delete("g", f"k{(n + 2) % 5}")
            tx.set("g", f"k{(n + 1) % 5}", f"{tag}{n}")

    def delete_all(n: int) -> None:
        time.sleep(0.01)
        if n % 2:
            store.delete_group("g")
        else:
            store.delete_prefix("g")

    return [
        transaction,
        lambda n: store.set_many("g", {f"k{(n + i) % 5}": f"{tag}{n}" for i in range(3)}),
        lambda n: store.set("g", f"k{n % 5}", f"{tag}{n}"),
        delete_all,
    ]


def test_a_watcher_replaying_its_events_rebuilds_the_store_under_concurrent_writers(
    feed_target: str,
) -> None:
    """Two stores, each with four threads (transactions with a delete, set_many, set,
    delete_group / delete_prefix) on five shared keys for 2 s: no call fails (on PostgreSQL,
    no deadlock), one store's watcher receives every change once in seq order, and applying
    its events in the order they came gives the group's final contents."""
    with (
        Store(feed_target, change_feed=True, purge_interval=0) as one,
        Store(feed_target, change_feed=True, purge_interval=0) as two,
        one.watch("g", "*", buffer=10_000_000) as watcher,
    ):
        errors = keep_calling(_writers(one, "one-") + _writers(two, "two-"), 2.0)
        events = drain(watcher, 1.0)
        assert errors == []
        seqs = [event.seq for event in events]
        assert seqs == sorted(set(seqs))
        replayed: dict[str, str] = {}
        for event in events:
            if event.type is SET:
                replayed[event.key] = event.value
            elif event.type is DELETE:
                replayed.pop(event.key, None)
            elif event.type is DELETE_GROUP:
                replayed.clear()
        assert {DELETE, DELETE_GROUP} <= {event.type for event in events}
        assert replayed == one.get_all("g")


def test_an_own_write_keeps_its_seq_when_another_connection_writes_right_after_it(
    db: Path,
) -> None:
    """A write outside a transaction has committed when its event is numbered: the number is
    this connection's newest change, not the newest change of the file."""
    with Store(db, change_feed=True, purge_interval=0) as store, store.watch("g", "*") as watcher:
        engine: Any = core_of(store).engine
        put = engine.put
        other = apsw.Connection(str(db))

        def put_then_another_connection_writes(*args: Any) -> None:
            put(*args)
            other.execute("INSERT INTO entries VALUES ('g', 'foreign', 'x', NULL)")

        engine.put = put_then_another_connection_writes
        try:
            store.set("g", "own", "v")
        finally:
            engine.put = put
            other.close()
        events = drain(watcher)
    assert [(e.key, e.seq) for e in events] == [("own", 1), ("foreign", 2)]


def test_watch_since_replays_then_goes_live_without_gap_or_duplicate(db: Path) -> None:
    total = 3000
    with Store(db, change_feed=True, purge_interval=0) as store:
        for n in range(500):
            store.set("g", "k", str(n))

        def write_more() -> None:
            with Store(db, change_feed=True, purge_interval=0, synchronous="off") as other:
                for n in range(500, total):
                    other.set("g", "k", str(n))
                    if n % 100 == 0:
                        store.set("h", "own", str(n))  # own writes interleaved

        writer = threading.Thread(target=write_more)
        writer.start()
        time.sleep(0.01)
        with store.watch("g", "*", buffer=1, since=0) as w:  # the replay ignores the buffer
            values = []
            while len(values) < total:
                event = w.get(timeout=10)
                assert event is not None, f"stalled after {len(values)}"
                values.append(event.value)
                time.sleep(0.0001 if len(values) < 100 else 0)  # let the writer get ahead
            writer.join()
            assert w.get(0.1) is None
    assert values == [str(n) for n in range(total)]


def test_scoped_watch_since_replays_only_its_namespace(db: Path) -> None:
    with Store(db, change_feed=True, purge_interval=0) as store:
        store.scoped("a").set("g", "k", "1")
        store.scoped("b").set("g", "k", "2")
        store.scoped("a").delete_group("g")
        with store.scoped("a").watch("*", "*", since=0) as w:
            assert brief(drain(w, 0.05)) == [(SET, "a:g", "k", "1"), (DELETE_GROUP, "a:g", "", "")]


# -- retention ----------------------------------------------------------------------------------
def test_changes_older_than_the_retention_are_trimmed_and_asking_for_them_raises(db: Path) -> None:
    with Store(db, change_feed=True, change_retention=0.05, purge_interval=0) as store:
        store.set("g", "old", "1")
        old = store.last_seq()
        time.sleep(0.1)
        store.set("g", "new", "2")
        store.purge_expired()
        with pytest.raises(ChangesExpiredError, match=r"store\.changes: the changes after seq 0"):
            store.changes(since=0)
        with pytest.raises(ChangesExpiredError):
            store.watch("*", "*", since=0)
        assert brief(list(store.changes(since=old))) == [(SET, "g", "new", "2")]
        assert store.last_seq() == old + 1
        time.sleep(0.1)
        store.purge_expired()  # all old now: the newest is kept, so seq never goes back
        assert list(store.changes(since=store.last_seq())) == []
        assert brief(list(store.changes(since=old))) == [(SET, "g", "new", "2")]
        store.set("g", "newer", "3")
        assert store.last_seq() == old + 2
    assert issubclass(ChangesExpiredError, StoreError)
    assert "ChangesExpiredError" in gostore.__all__


# -- processes ----------------------------------------------------------------------------------
def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, HELPER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _events(lines: list[str]) -> list[tuple[int, str, str, str, str]]:
    parsed = []
    for line in lines:
        seq, kind, group, key, value = line.split(" ")
        parsed.append((int(seq), kind, group, key, value))
    return parsed


def _finish(child: subprocess.Popen[bytes]) -> list[str]:
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, f"child failed ({child.returncode}): {err.decode()[-2000:]}"
    return out.decode().splitlines()


def test_three_writer_and_two_watcher_processes_every_write_once_in_key_order(db: Path) -> None:
    writers, each = 3, 1000
    Store(db, change_feed=True).close()  # the feed exists before anyone writes
    watchers = [_spawn("watcher", str(db), str(writers * each)) for _ in range(2)]
    for watcher in watchers:
        assert watcher.stdout is not None and watcher.stdout.readline() == b"ready\n"
    procs = [_spawn("writer", str(db), str(n), str(each)) for n in range(writers)]
    for proc in procs:
        _finish(proc)
    for watcher in watchers:
        events = _events(_finish(watcher))
        assert len(events) == writers * each
        assert len({seq for seq, *_ in events}) == len(events)  # no duplicate
        for n in range(writers):
            for k in range(10):
                values = [int(v) for _, _, g, key, v in events if g == f"w{n}" and key == f"k{k}"]
                assert values == list(range(k, each, 10)), (n, k)


def test_watcher_killed_and_restarted_with_since_receives_exactly_what_it_missed(db: Path) -> None:
    count = 600
    Store(db, change_feed=True).close()
    watcher = _spawn("watcher", str(db), str(count))
    assert watcher.stdout is not None and watcher.stdout.readline() == b"ready\n"
    writer = _spawn("writer", str(db), "0", str(count), "0.001")
    before: list[str] = []
    while len(before) < 150:
        before.append(watcher.stdout.readline().decode().rstrip("\n"))
    os.kill(watcher.pid, signal.SIGKILL)
    watcher.wait()
    # whatever it printed before dying, line by line
    rest = watcher.stdout.read().decode()
    before += rest.split("\n")[:-1]
    watcher.stdout.close()
    assert watcher.stderr is not None
    watcher.stderr.close()
    last = _events(before)[-1][0]
    restarted = _spawn("watcher", str(db), str(count - len(before)), str(last))
    after = _events(_finish(restarted)[1:])  # after "ready"
    _finish(writer)
    with Store(db, change_feed=True) as store:
        missed = [e.seq for e in store.changes(since=last)]
    assert [seq for seq, *_ in after] == missed
    assert len(before) + len(after) == count


@requires_go
def test_go_store_writes_a_feed_file_and_its_changes_are_recorded(db: Path) -> None:
    with Store(db, change_feed=True, purge_interval=0) as store, store.watch("*", "*") as w:
        store.set("py", "k", "v")
        for args in (["set", "go", "k", "v1"], ["set", "go", "k", "v2"], ["delete", "go", "k"]):
            subprocess.run(["go", "run", ".", args[0], str(db), *args[1:]], cwd=GEN, check=True)
        got = drain(w, 0.5)
    assert brief(got) == [
        (SET, "py", "k", "v"),
        (SET, "go", "k", "v1"),
        (SET, "go", "k", "v2"),
        (DELETE, "go", "k", ""),
    ]
    dump = subprocess.run(
        ["go", "run", ".", "dump", str(db)], cwd=GEN, check=True, capture_output=True, text=True
    )
    assert dump.stdout.splitlines() == ['{"group":"py","key":"k","value":"v"}']


# -- asyncio ------------------------------------------------------------------------------------
def test_async_store_reads_the_feed(db: Path) -> None:
    async def main() -> list[Event]:
        async with AsyncStore(db, change_feed=True, purge_interval=0) as store:
            await store.set("g", "k", "v")
            assert await store.last_seq() == 1
            replay = store.watch("g", "*", since=0)
            first = await asyncio.wait_for(replay.__anext__(), 5)
            assert first.value == "v"
            store.unwatch(replay)
            return [e async for e in store.changes()]

    assert brief(asyncio.run(main())) == [(SET, "g", "k", "v")]
