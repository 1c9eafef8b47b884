"""Statements without the store's lock: the gate, the lock that shuts it, and what a store
built on them promises other threads (a transaction keeps them out, close() stops them).

The unit tests run once per implementation (fixture ``speedups``: compiled and pure twin), on
real APSW connections; a SQL function that waits on an event holds a statement in flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

from gostore import Store, StoreClosedError, StoreError

TIMEOUT = 30.0
MAPPED = (apsw.Error,)


class Mapped(Exception):
    """What ``on_error`` turns a driver failure into."""


def blocked(*args: object) -> str:
    return "blocked"


@pytest.fixture
def conn() -> Iterator[apsw.Connection]:
    connection = apsw.Connection(":memory:")
    connection.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)")
    yield connection
    connection.close()


def holding(conn: apsw.Connection) -> tuple[threading.Event, threading.Event]:
    """``SELECT hold()`` blocks inside SQLite (the connection busy) until ``release`` is set;
    ``entered`` is set once it is inside."""
    entered, release = threading.Event(), threading.Event()

    def hold() -> int:
        entered.set()
        release.wait(TIMEOUT)
        return 1

    conn.create_scalar_function("hold", hold)
    return entered, release


def statement(speedups: Any, gate: Any, conn: apsw.Connection, sql: str, rows: int) -> Any:
    free: list[apsw.Cursor] = []
    return speedups.GatedStatement(
        gate, rows == 0, free, conn.cursor, sql, rows, MAPPED, Mapped, blocked,
        apsw.ThreadingViolationError,
    )


def start(target: Any, *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


# -- the gate ----------------------------------------------------------------------------------
def test_open_gate_runs_the_statement_and_returns_its_first_row(
    speedups: Any, conn: apsw.Connection
) -> None:
    gate = speedups.Gate()
    put = statement(speedups, gate, conn, "INSERT INTO kv VALUES (?, ?)", 0)
    get = statement(speedups, gate, conn, "SELECT v FROM kv WHERE k = ?", 1)
    assert put("a", "1") is True
    assert get("a") == ("1",)
    assert get("missing") is None
    assert gate.inflight == 0


def test_shut_gate_sends_every_statement_to_the_blocked_path(
    speedups: Any, conn: apsw.Connection
) -> None:
    gate = speedups.Gate()
    put = statement(speedups, gate, conn, "INSERT INTO kv VALUES (?, ?)", 0)
    get = statement(speedups, gate, conn, "SELECT v FROM kv WHERE k = ?", 1)
    gate.shut()
    assert put("a", "1") == "blocked"
    assert get("a") == "blocked"
    gate.reopen()
    assert put("a", "1") is True
    assert conn.execute("SELECT count(*) FROM kv").fetchall() == [(1,)]


def test_gate_shut_to_writes_still_lets_reads_pass(speedups: Any, conn: apsw.Connection) -> None:
    gate = speedups.Gate()
    conn.execute("INSERT INTO kv VALUES ('a', '1')")
    put = statement(speedups, gate, conn, "INSERT INTO kv VALUES (?, ?)", 0)
    get = statement(speedups, gate, conn, "SELECT v FROM kv WHERE k = ?", 1)
    gate.shut(writes_only=True)
    gate.shut(writes_only=True)  # shuts nest
    gate.reopen(writes_only=True)
    assert put("b", "2") == "blocked"
    assert get("a") == ("1",)
    gate.reopen(writes_only=True)
    assert put("b", "2") is True


def test_driver_failure_is_mapped_and_leaves_nothing_in_flight(
    speedups: Any, conn: apsw.Connection
) -> None:
    gate = speedups.Gate()
    put = statement(speedups, gate, conn, "INSERT INTO kv VALUES (?, ?)", 0)
    put("a", "1")
    with pytest.raises(Mapped) as caught:
        put("a", "again")  # primary key
    assert isinstance(caught.value.__cause__, apsw.ConstraintError)
    assert gate.inflight == 0
    assert put("b", "2") is True  # its cursor went back to the pool and still works


def test_shut_waits_for_the_statement_in_flight(speedups: Any, conn: apsw.Connection) -> None:
    gate = speedups.Gate()
    entered, release = holding(conn)
    slow = statement(speedups, gate, conn, "SELECT hold()", 1)
    runner = start(slow)
    assert entered.wait(TIMEOUT)
    assert gate.inflight == 1
    shut = threading.Event()
    shutter = start(lambda: (gate.shut(), shut.set()))
    time.sleep(0.1)
    assert not shut.is_set(), "shut() returned while a statement was still running"
    release.set()
    assert shut.wait(TIMEOUT)
    runner.join(TIMEOUT)
    shutter.join(TIMEOUT)
    assert gate.inflight == 0


def test_statement_runs_again_when_the_connection_stays_busy_in_another_thread(
    speedups: Any, conn: apsw.Connection
) -> None:
    # APSW waits about a third of a second for a connection busy in another thread, then
    # raises ThreadingViolationError before running anything: the gated statement retries.
    gate = speedups.Gate()
    entered, release = holding(conn)
    holder = start(lambda: conn.cursor().execute("SELECT hold()").fetchall())
    assert entered.wait(TIMEOUT)
    put = statement(speedups, gate, conn, "INSERT INTO kv VALUES (?, ?)", 0)
    results: list[object] = []
    writer = start(lambda: results.append(put("a", "1")))
    time.sleep(0.6)  # past APSW's own waiting
    assert writer.is_alive()
    release.set()
    writer.join(TIMEOUT)
    holder.join(TIMEOUT)
    assert results == [True]
    assert conn.execute("SELECT v FROM kv").fetchall() == [("1",)]


# -- the lock that shuts it --------------------------------------------------------------------
def test_gate_lock_shuts_the_gate_until_its_last_release(speedups: Any) -> None:
    gate = speedups.Gate()
    lock = speedups.GateLock(gate)
    with lock:
        assert gate.shut_all == 1
        with lock:  # reentrant: shut once
            assert gate.shut_all == 1
        assert gate.shut_all == 1
    assert gate.shut_all == 0
    assert lock.acquire(blocking=False)
    lock.release()


def test_gate_lock_excludes_other_threads(speedups: Any) -> None:
    lock = speedups.GateLock(speedups.Gate())
    lock.acquire()
    got: list[bool] = []
    other = start(lambda: got.append(lock.acquire(blocking=False)))
    other.join(TIMEOUT)
    assert got == [False]
    lock.release()


def test_gate_lock_waits_for_statements_in_flight(speedups: Any, conn: apsw.Connection) -> None:
    gate = speedups.Gate()
    lock = speedups.GateLock(gate)
    entered, release = holding(conn)
    runner = start(statement(speedups, gate, conn, "SELECT hold()", 1))
    assert entered.wait(TIMEOUT)
    held = threading.Event()

    def take() -> None:
        with lock:
            held.set()

    taker = start(take)
    time.sleep(0.1)
    assert not held.is_set(), "the lock was taken while a gated statement was running"
    release.set()
    assert held.wait(TIMEOUT)
    runner.join(TIMEOUT)
    taker.join(TIMEOUT)


# -- what a store promises ---------------------------------------------------------------------
def test_other_threads_sets_wait_for_an_open_transaction_and_survive_its_rollback() -> None:
    with Store(":memory:", purge_interval=0) as store:
        in_tx, done = threading.Event(), threading.Event()

        def other() -> None:
            assert in_tx.wait(TIMEOUT)
            store.set("g", "other", "kept")
            done.set()

        thread = start(other)
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.set("g", "mine", "undone")
            in_tx.set()
            time.sleep(0.2)
            assert not done.is_set(), "another thread's set ran inside this transaction"
            raise RuntimeError("roll back")
        thread.join(TIMEOUT)
        assert store.get_all("g") == {"other": "kept"}


def test_other_threads_never_read_an_open_transactions_writes() -> None:
    with Store(":memory:", purge_interval=0) as store:
        store.set("g", "k", "before")
        in_tx = threading.Event()
        seen: list[str] = []

        def reader() -> None:
            assert in_tx.wait(TIMEOUT)
            seen.append(store.get("g", "k"))

        thread = start(reader)
        with store.transaction() as tx:
            tx.set("g", "k", "during")
            in_tx.set()
            time.sleep(0.2)
            tx.set("g", "k", "after")
        thread.join(TIMEOUT)
        assert seen == ["after"]


def test_vacuum_in_memory_after_gets_from_many_threads() -> None:
    with Store(":memory:", purge_interval=0) as store:
        store.set_many("g", {f"k{i}": "v" for i in range(100)})

        def reads(n: int) -> None:
            for i in range(100):
                store.get("g", f"k{i}")

        threads = [start(reads, n) for n in range(4)]
        for thread in threads:
            thread.join(TIMEOUT)
        store.vacuum()  # refuses to run beside an unfinished statement
        assert store.count("g") == 100


@pytest.mark.parametrize("where", ["memory", "file"])
def test_close_while_threads_set_stops_them_with_a_closed_error(where: str, tmp_path: Path) -> None:
    store = Store(":memory:" if where == "memory" else tmp_path / "c.db", purge_interval=0)
    started = threading.Barrier(5)
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        started.wait(TIMEOUT)
        try:
            for i in range(1_000_000):
                store.set("g", f"{n}-{i}", "v")
        except StoreError as exc:
            failures.append(exc)

    threads = [start(writer, n) for n in range(4)]
    started.wait(TIMEOUT)
    time.sleep(0.05)
    store.close()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads)
    assert len(failures) == 4
    assert all(isinstance(exc, StoreClosedError) for exc in failures), failures


class Listener:
    """What the gate asks about a write (the event hub's shape): ``active``, ``callbacks``,
    ``match(group, key, whole_group)``; here the groups in ``wanted`` are watched."""

    def __init__(self, wanted: set[str]) -> None:
        self.active = True
        self.callbacks: tuple[object, ...] = ()
        self.wanted = wanted

    def match(self, group: str, key: str, whole: bool) -> tuple[str, ...]:
        return (group,) if group in self.wanted else ()


def test_a_write_someone_wants_the_event_of_is_sent_to_the_lock(
    speedups: Any, conn: apsw.Connection
) -> None:
    gate = speedups.Gate()
    gate.listener = Listener({"watched"})
    put = statement(speedups, gate, conn, "INSERT INTO kv VALUES (?, ?)", 0)
    get = statement(speedups, gate, conn, "SELECT v FROM kv WHERE k = ?", 1)
    assert put("watched", "1") == "blocked"
    assert put("other", "1") is True
    assert get("watched") is None  # reads never ask
    gate.listener.active = False
    assert put("watched", "1") is True
    gate.listener.active = True
    gate.listener.callbacks = (print,)  # a callback wants every event
    assert put("third", "1") == "blocked"


def test_a_watcher_receives_every_write_that_ends_after_watch_returns() -> None:
    with Store(":memory:", purge_interval=0) as store:
        store.watch("elsewhere", "*")  # the hub is active, the written key not watched yet
        stop = threading.Event()
        written: list[int] = []

        def writer() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                store.set("g", "k", str(i))
                written.append(i)

        thread = start(writer)
        while len(written) < 200:
            time.sleep(0.001)
        watcher = store.watch("g", "k", buffer=1_000_000)
        first = int(store.get("g", "k"))
        while len(written) < first + 500:
            time.sleep(0.001)
        stop.set()
        thread.join(TIMEOUT)
        seen = set()
        while (event := watcher.get_nowait()) is not None:
            seen.add(int(event.value))
        assert set(range(first + 1, written[-1] + 1)) <= seen
