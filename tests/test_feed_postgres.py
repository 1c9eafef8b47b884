"""The change feed on PostgreSQL: every change recorded by a trigger, numbered in commit order,
delivered to the other clients (LISTEN/NOTIFY), replayable, trimmed by retention."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

import gostore
from gostore import ChangesExpiredError, Event, EventType, Store, StoreError

from .conftest import keep_calling
from .pg_cluster import wait_until

SET, DELETE, DELETE_GROUP, EXPIRE = EventType
HELPER = str(Path(__file__).parent / "helpers" / "feed_child.py")


def drain(watcher: gostore.Watcher, timeout: float = 0.3) -> list[Event]:
    events = []
    while (event := watcher.get(timeout)) is not None:
        events.append(event)
    return events


def brief(events: list[Event]) -> list[tuple[EventType, str, str, str]]:
    return [(e.type, e.group, e.key, e.value) for e in events]


def connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


def test_store_without_feed_creates_no_feed_objects(pg_fresh_url: str) -> None:
    with Store(pg_fresh_url) as store:
        store.set("g", "k", "v")
    with connect(pg_fresh_url) as conn:
        names = conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
            "AND relkind IN ('r', 'S') ORDER BY relname"
        ).fetchall()
        triggers = conn.execute(
            "SELECT tgname FROM pg_trigger JOIN pg_class ON pg_class.oid = tgrelid "
            "WHERE NOT tgisinternal AND relnamespace = current_schema()::regnamespace"
        )
        functions = conn.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace"
        )
        # entries and the namespace change counters (with their triggers) are every store's
        assert names == [("entries",), ("entries_namespaces",)]
        assert all(name.startswith("entries_namespaces_") for (name,) in triggers.fetchall())
        assert not {"gostore_record", "gostore_put"} & {name for (name,) in functions.fetchall()}


def test_readonly_store_refuses_a_schema_without_the_feed(pg_fresh_url: str) -> None:
    Store(pg_fresh_url).close()
    with pytest.raises(StoreError, match="change feed is not set up"):
        Store(pg_fresh_url, change_feed=True, readonly=True)
    Store(pg_fresh_url, change_feed=True).close()
    with Store(pg_fresh_url, change_feed=True, readonly=True) as store:
        assert store.last_seq() == 0


def test_feed_records_each_write_with_the_type_its_watchers_saw(pg_fresh_url: str) -> None:
    with (
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as store,
        store.watch("*", "*", buffer=100) as w,
    ):
        store.set("g", "a", "1")
        store.delete("g", "a")
        store.delete("g", "absent")
        store.set_many("m", {"x": "1", "y": "2"})
        store.set("g", "b", "2")
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
            tx.set("tx", "k", "w")
            tx.delete("tx", "k")
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.set("rolled", "back", "v")
            raise RuntimeError
        store.set("after", "k", "v")
        seen = drain(w, 0.1)
        recorded = list(store.changes())
    assert [e._replace(timestamp=0) for e in seen] == [e._replace(timestamp=0) for e in recorded]
    assert brief(recorded) == [
        (SET, "g", "a", "1"),
        (DELETE, "g", "a", ""),
        (SET, "m", "x", "1"),
        (SET, "m", "y", "2"),
        (SET, "g", "b", "2"),
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
        (SET, "tx", "k", "w"),
        (DELETE, "tx", "k", ""),
        (SET, "after", "k", "v"),
    ]
    seqs = [e.seq for e in recorded]
    assert seqs == sorted(set(seqs)) and seqs[0] >= 1


def test_foreign_sql_arrives_as_set_set_delete_on_the_feed_thread(pg_fresh_url: str) -> None:
    with (
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as store,
        store.watch("*", "*") as w,
    ):
        threads: list[str] = []
        unregister = store.on_change(lambda e: threads.append(threading.current_thread().name))
        with connect(pg_fresh_url) as conn:
            conn.execute("INSERT INTO entries VALUES ('f', 'k', 'v1', NULL)")
            conn.execute("UPDATE entries SET entry_value = 'v2' WHERE group_name = 'f'")
            conn.execute("UPDATE entries SET entry_key = 'moved' WHERE group_name = 'f'")
            conn.execute("DELETE FROM entries WHERE group_name = 'f'")
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


def test_other_store_changes_arrive_once_and_own_writes_are_not_delivered_twice(
    pg_fresh_url: str,
) -> None:
    with (
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as a,
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as b,
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


def test_own_write_after_unseen_foreign_write_keeps_the_key_in_order(pg_fresh_url: str) -> None:
    with (
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as store,
        store.watch("g", "k", buffer=100) as w,
        connect(pg_fresh_url) as conn,
    ):
        for n in range(20):  # the background reader is woken, but writing here comes first
            conn.execute(
                "INSERT INTO entries VALUES ('g', 'k', %s, NULL) ON CONFLICT "
                "(group_name, entry_key) DO UPDATE SET entry_value = excluded.entry_value",
                (f"foreign{n}".encode(),),
            )
            store.set("g", "k", f"own{n}")
        events = drain(w)
    assert [e.value for e in events] == [v for n in range(20) for v in (f"foreign{n}", f"own{n}")]
    assert [e.seq for e in events] == sorted(e.seq for e in events)


def test_a_smaller_seq_committing_last_is_not_skipped_by_a_polling_reader(
    pg_fresh_url: str,
) -> None:
    with (
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as store,
        store.watch("*", "*") as w,
    ):
        first, second = connect(pg_fresh_url), connect(pg_fresh_url)
        try:
            first.execute("BEGIN")
            first.execute("INSERT INTO entries VALUES ('c', 'first', 'v', NULL)")
            committed = threading.Event()

            def write_second() -> None:
                second.execute("INSERT INTO entries VALUES ('c', 'second', 'v', NULL)")
                committed.set()

            thread = threading.Thread(target=write_second)
            thread.start()
            polled: list[Event] = []
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:  # a reader polling between the two commits
                polled += store.changes(since=polled[-1].seq if polled else 0)
            first.execute("COMMIT")
            thread.join(10)
            assert committed.is_set()
            polled += store.changes(since=polled[-1].seq if polled else 0)
        finally:
            first.close()
            second.close()
        live = drain(w)
    assert [e.key for e in polled] == ["first", "second"]
    assert [e.key for e in live] == ["first", "second"]
    assert polled[0].seq < polled[1].seq


def test_concurrent_transactions_never_leave_a_polling_reader_behind(pg_fresh_url: str) -> None:
    Store(pg_fresh_url, change_feed=True).close()
    writers, each = 4, 25

    def write(n: int) -> None:
        rng = random.Random(n)
        with connect(pg_fresh_url) as conn:
            for i in range(each):
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO entries VALUES (%s, %s, 'v', NULL)",
                        (f"w{n}".encode(), str(i).encode()),
                    )
                    time.sleep(rng.random() * 0.004)  # commit after others took their seqs

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    polled: list[Event] = []
    with Store(pg_fresh_url, change_feed=True, purge_interval=0) as store:
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            polled += store.changes(since=polled[-1].seq if polled else 0)
        polled += store.changes(since=polled[-1].seq if polled else 0)
        everything = list(store.changes())
    assert len(everything) == writers * each
    assert [e.seq for e in polled] == [e.seq for e in everything]


def test_watch_since_replays_then_goes_live_without_gap_or_duplicate(pg_fresh_url: str) -> None:
    total = 600
    with Store(pg_fresh_url, change_feed=True, purge_interval=0) as store:
        for n in range(100):
            store.set("g", "k", str(n))

        def write_more() -> None:
            with Store(pg_fresh_url, change_feed=True, purge_interval=0) as other:
                for n in range(100, total):
                    other.set("g", "k", str(n))
                    if n % 50 == 0:
                        store.set("h", "own", str(n))

        writer = threading.Thread(target=write_more)
        writer.start()
        with store.watch("g", "*", buffer=total, since=0) as w:
            values = []
            while len(values) < total:
                event = w.get(timeout=10)
                assert event is not None, f"stalled after {len(values)}"
                values.append(event.value)
            writer.join()
            assert w.get(0.1) is None
    assert values == [str(n) for n in range(total)]


def test_changes_older_than_the_retention_are_trimmed_and_asking_for_them_raises(
    pg_fresh_url: str,
) -> None:
    with Store(pg_fresh_url, change_feed=True, change_retention=0.05, purge_interval=0) as store:
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
        store.set("g", "newer", "3")
        assert store.last_seq() == old + 2


def test_writer_and_watcher_processes_every_write_once_in_key_order(pg_fresh_url: str) -> None:
    writers, each = 2, 200
    Store(pg_fresh_url, change_feed=True).close()
    watcher = subprocess.Popen(
        [sys.executable, HELPER, "watcher", pg_fresh_url, str(writers * each)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert watcher.stdout is not None and watcher.stdout.readline() == b"ready\n"
    procs = [
        subprocess.Popen([sys.executable, HELPER, "writer", pg_fresh_url, str(n), str(each)])
        for n in range(writers)
    ]
    for proc in procs:
        assert proc.wait(60) == 0
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err.decode()[-2000:]
    events = [line.split(" ") for line in out.decode().splitlines()]
    assert len(events) == writers * each
    assert len({seq for seq, *_ in events}) == len(events)
    for n in range(writers):
        for k in range(10):
            values = [int(v) for _, _, g, key, v in events if g == f"w{n}" and key == f"k{k}"]
            assert values == list(range(k, each, 10)), (n, k)


def test_quota_checked_writes_are_recorded_and_keep_their_ledger(
    pg_fresh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feed's trigger and the namespace counters' triggers fire on the same writes: each
    checked write is on the feed, the ledger is built once for this client's own writes, and
    a write by another program both arrives on the feed and invalidates the ledger."""
    from gostore.engine.postgres import PostgresEngine

    builds: list[str] = []
    scan = PostgresEngine.range_totals

    def counted(engine: PostgresEngine, lo: str, hi: str | bytes, now: int) -> Any:
        builds.append(lo)
        return scan(engine, lo, hi, now)

    monkeypatch.setattr(PostgresEngine, "range_totals", counted)
    with (
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as store,
        store.watch("*", "*", buffer=100) as w,
    ):
        tenant = store.scoped("ns", gostore.QuotaConfig(max_keys=4))
        tenant.set("g", "a", "1")
        tenant.set_many("g", {"b": "2", "c": "3"})
        assert tenant.incr("g", "n") == 1
        with pytest.raises(gostore.QuotaExceededError):
            tenant.set("g", "over", "v")
        tenant.delete("g", "a")
        with tenant.transaction() as tx:
            tx.set("g", "d", "4")
        assert builds == ["ns:"]
        with connect(pg_fresh_url) as conn:
            conn.execute("DELETE FROM entries WHERE entry_key = 'b'")
        tenant.set("g", "e", "5")  # the program's delete freed the room
        assert builds == ["ns:", "ns:"]
        with pytest.raises(gostore.QuotaExceededError):
            tenant.set("g", "f", "6")
        seen = drain(w)
        recorded = list(store.changes())
    assert [e._replace(timestamp=0) for e in seen] == [e._replace(timestamp=0) for e in recorded]
    assert brief(recorded) == [
        (SET, "ns:g", "a", "1"),
        (SET, "ns:g", "b", "2"),
        (SET, "ns:g", "c", "3"),
        (SET, "ns:g", "n", "1"),
        (DELETE, "ns:g", "a", ""),
        (SET, "ns:g", "d", "4"),
        (DELETE, "ns:g", "b", ""),
        (SET, "ns:g", "e", "5"),
    ]
    assert [e.seq for e in recorded] == list(range(1, 9))


def _purge_when_ready(
    store: Store, ready: threading.Barrier, removed: list[int], errors: list[BaseException]
) -> None:
    ready.wait()
    try:
        removed.append(store.purge_expired())
    except StoreError as exc:
        errors.append(exc)


def test_a_feed_store_and_a_plain_store_purging_at_once_do_not_deadlock(
    pg_fresh_url: str,
) -> None:
    """Both purges take the purge lock before the feed's (the plain one through the trigger),
    so neither holds one while it waits for the other."""
    with (
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as feed,
        Store(pg_fresh_url, purge_interval=0) as plain,
    ):
        for _ in range(15):
            plain.set_many("g", {f"k{i}": "v" for i in range(50)}, ttl=0.01)
            time.sleep(0.02)
            ready = threading.Barrier(2)
            removed: list[int] = []
            errors: list[BaseException] = []
            threads = [
                threading.Thread(target=_purge_when_ready, args=(s, ready, removed, errors))
                for s in (feed, plain)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
            assert sum(removed) == 50


def test_sets_beside_a_delete_group_of_another_feed_store_do_not_deadlock(
    pg_fresh_url: str,
) -> None:
    """A delete_group and the sets both take the feed's lock before their rows: when the
    delete_group held it while waiting for a row, and a set held that row and then wanted the
    lock, the server ended one of them."""
    with (
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as one,
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as two,
        one.watch("g", "*", buffer=100_000) as watcher,
    ):
        calls: list[Callable[[int], object]] = [
            lambda n: two.set("g", f"k{n % 20}", "v"),
            lambda n: two.set("g", f"k{n % 7}", "w"),
            lambda n: one.delete_group("g"),
        ]
        assert keep_calling(calls, 3.0) == []
        two.set("g", "last", "v")
        events = drain(watcher, 1.0)
    assert brief(events)[-1] == (SET, "g", "last", "v")
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert DELETE_GROUP in {e.type for e in events}


def test_a_feed_function_of_another_version_is_replaced_at_open(pg_fresh_url: str) -> None:
    with Store(pg_fresh_url, change_feed=True, purge_interval=0):
        pass
    with connect(pg_fresh_url) as conn:  # as an older gostore left it: no first-seq marker
        conn.execute(
            "CREATE OR REPLACE FUNCTION gostore_record() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO gostore_changes (kind, group_name, entry_key, entry_value, "
            "at_ms, origin) VALUES (0, NEW.group_name, NEW.entry_key, NEW.entry_value, 0, "
            "current_setting('gostore.origin', true)); RETURN NULL; END $$"
        )
        conn.execute("DROP TRIGGER gostore_changes_lock ON entries")  # and no statement lock
    with Store(pg_fresh_url, change_feed=True, purge_interval=0) as store:
        with connect(pg_fresh_url) as conn:
            triggers = conn.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'gostore_changes_lock' "
                "AND tgrelid = 'entries'::regclass"
            ).fetchone()
        assert triggers == (1,)
        store.set_many("g", {"a": "1", "b": "2"})
        store.delete_group("g")
        recorded = brief(list(store.changes()))
    assert recorded == [(SET, "g", "a", "1"), (SET, "g", "b", "2"), (DELETE_GROUP, "g", "", "")]


def _until_one_session_waits_for_a_lock(observer: psycopg.Connection[Any]) -> None:
    query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    assert wait_until(lambda: observer.execute(query).fetchone() == (1,), 5.0)


def test_a_set_beside_a_transaction_writing_the_same_row_later_does_not_deadlock(
    pg_fresh_url: str,
) -> None:
    """Every writing statement takes the feed's lock before its rows: a set that took its row
    first and then waited for the lock deadlocked with a transaction that held the lock and
    then wanted that row."""
    with (
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as first,
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as second,
        connect(pg_fresh_url) as observer,
    ):
        errors: list[BaseException] = []

        def set_k1() -> None:
            try:
                second.set("g", "k1", "from-the-set")
            except StoreError as exc:
                errors.append(exc)

        writer = threading.Thread(target=set_k1)
        with first.transaction() as tx:
            tx.set("g", "k0", "from-the-tx")  # the transaction holds the feed's lock now
            writer.start()
            _until_one_session_waits_for_a_lock(observer)
            tx.set("g", "k1", "from-the-tx")
        writer.join()
        assert errors == []
        assert first.get("g", "k1") == "from-the-set"  # it committed after the transaction


def test_a_delete_group_waiting_for_the_feed_removes_a_row_committed_meanwhile(
    pg_fresh_url: str,
) -> None:
    """The feed records a delete_group as one DELETE_GROUP after every change committed
    before it, so it must remove a row inserted by a transaction that committed while the
    delete_group waited for the feed's lock (a DELETE whose snapshot predates the wait kept
    it)."""
    with (
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as first,
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as second,
        connect(pg_fresh_url) as observer,
    ):
        first.set("g", "old", "v")
        deleter = threading.Thread(target=second.delete_group, args=("g",))
        with first.transaction() as tx:
            tx.set("g", "new", "v")  # a new row; the transaction holds the feed's lock
            deleter.start()
            _until_one_session_waits_for_a_lock(observer)
        deleter.join()
        assert first.get_all("g") == {}
        recorded = brief(list(first.changes()))
    assert recorded[-1] == (DELETE_GROUP, "g", "", "")


def test_each_event_of_a_set_many_carries_the_seq_of_its_own_row(pg_fresh_url: str) -> None:
    """A watcher resuming from any event's seq must get exactly the changes after it."""
    with (
        Store(pg_fresh_url, change_feed=True, purge_interval=0) as store,
        store.watch("g", "*") as watcher,
    ):
        store.set_many("g", {"b": "1", "c": "2", "a": "3"})
        live = [(e.key, e.value, e.seq) for e in drain(watcher)]
        recorded = [(e.key, e.value, e.seq) for e in store.changes()]
    assert live == recorded
