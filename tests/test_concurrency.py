"""Thread safety: concurrent reads/writes, watch/unwatch during writes, transactions, and
atomic quota checks. Every thread is joined with a timeout so
a deadlock fails the test instead of hanging the run."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from gostore import Event, EventType, QuotaConfig, QuotaExceededError, Store

from .conftest import drain

TIMEOUT = 30.0


def run_threads(targets: list[Callable[[], None]]) -> None:
    """Start every target at once (barrier), join them all, re-raise the first failure."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait(TIMEOUT)
                target()
            except BaseException as exc:
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "deadlock: a thread did not finish"
    if errors:
        raise errors[0]


# -- plain reads and writes --------------------------------------------------------------------
def test_ten_threads_setting_and_getting_keep_every_value(store: Store) -> None:
    def worker(n: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(100):
                store.set("g", f"{n}-{i}", str(i))
                assert store.get("g", f"{n}-{i}") == str(i)

        return run

    run_threads([worker(n) for n in range(10)])
    assert store.count("g") == 1000


def test_ten_threads_on_a_file_store_share_one_connection(file_store: Store) -> None:
    def worker(n: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(20):
                file_store.set(f"g{n % 3}", f"{n}-{i}", "v")
                file_store.count(f"g{n % 3}")

        return run

    run_threads([worker(n) for n in range(10)])
    assert file_store.count_all() == 200


def test_transactions_serialise_read_modify_write(store: Store) -> None:
    store.set("counter", "n", "0")

    def increment() -> None:
        for _ in range(50):
            with store.transaction() as tx:
                tx.set("counter", "n", str(int(tx.get("counter", "n")) + 1))

    run_threads([increment] * 5)
    assert store.get("counter", "n") == "250"


def test_transactions_on_separate_connections_serialise_read_modify_write(db_path: Path) -> None:
    stores = [Store(db_path, purge_interval=0, busy_timeout=10) for _ in range(3)]
    stores[0].set("counter", "n", "0")

    def increment(store: Store) -> Callable[[], None]:
        def run() -> None:
            for _ in range(10):
                with store.transaction() as tx:
                    tx.set("counter", "n", str(int(tx.get("counter", "n")) + 1))

        return run

    try:
        run_threads([increment(s) for s in stores])
        assert stores[1].get("counter", "n") == "30"
    finally:
        for s in stores:
            s.close()


# -- watchers under concurrency ----------------------------------------------------------------
def test_watch_and_unwatch_during_writes_delivers_each_event_once_in_commit_order(
    store: Store,
) -> None:
    writers, writes = 4, 150
    collected: list[tuple[str, list[Event]]] = []
    lock = threading.Lock()

    def writer(n: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(writes):
                store.set("g", f"k{n}", str(i))
                if i % 50 == 49:
                    store.set_many("other", {f"k{n}": str(i)})

        return run

    def watcher_churn(n: int) -> Callable[[], None]:
        patterns = [("g", "*"), ("*", "*"), ("g", f"k{n % writers}"), ("*", f"k{n % writers}")]

        def run() -> None:
            rng = random.Random(n)
            for _ in range(30):
                group, key = rng.choice(patterns)
                watcher = store.watch(group, key, buffer=1000)
                seen = []
                for _ in range(rng.randrange(3)):  # a reader may consume while writes go on
                    if (event := watcher.get(timeout=0.001)) is not None:
                        seen.append(event)
                store.unwatch(watcher)
                with lock:
                    collected.append((f"{group}/{key}", seen + drain(watcher)))

        return run

    run_threads([writer(n) for n in range(writers)] + [watcher_churn(n) for n in range(10)])
    assert collected
    for pattern, events in collected:
        group, key = pattern.split("/")
        last: dict[tuple[str, str], int] = defaultdict(lambda: -1)
        for event in events:
            assert event.type == EventType.SET
            assert group in ("*", event.group) and key in ("*", event.key)
            number = int(event.value)
            # strictly increasing per key: no duplicates, no reordering
            assert number > last[(event.group, event.key)], (pattern, event)
            last[(event.group, event.key)] = number


def test_watcher_that_stays_receives_every_event_of_concurrent_writers(store: Store) -> None:
    watcher = store.watch("g", "*", buffer=10_000)
    calls: list[Event] = []
    calls_lock = threading.Lock()

    def record(event: Event) -> None:
        with calls_lock:
            calls.append(event)

    store.on_change(record)

    def writer(n: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(100):
                store.set("g", f"k{n}", str(i))

        return run

    run_threads([writer(n) for n in range(5)])
    events = drain(watcher)
    assert watcher.dropped == 0
    assert len(events) == len(calls) == 500
    for n in range(5):
        assert [e.value for e in events if e.key == f"k{n}"] == [str(i) for i in range(100)]
    # callbacks of one writer run in its own thread, so per key they are in order too
    for n in range(5):
        assert [e.value for e in calls if e.key == f"k{n}"] == [str(i) for i in range(100)]


def test_callbacks_registered_and_removed_concurrently_with_writes(store: Store) -> None:
    def churn() -> None:
        for _ in range(100):
            unregister = store.on_change(lambda event: None)
            unregister()

    def write() -> None:
        for i in range(200):
            store.set("g", "k", str(i))

    run_threads([churn, churn, write, write])
    assert store.get("g", "k") == "199"


# -- quota races ---------------------------------------------------------------------------------
@pytest.mark.parametrize("round_", range(20))
def test_ten_threads_racing_under_max_keys_five_leave_exactly_five(
    store: Store, round_: int
) -> None:
    scoped = store.scoped(f"race{round_}", QuotaConfig(max_keys=5))
    outcomes: list[str] = []

    def add(n: int) -> Callable[[], None]:
        def run() -> None:
            try:
                scoped.set("g", f"key-{n}", "v")
                outcomes.append("ok")
            except QuotaExceededError:
                outcomes.append("refused")

        return run

    run_threads([add(n) for n in range(10)])
    assert sorted(outcomes) == ["ok"] * 5 + ["refused"] * 5
    assert scoped.count_all() == 5


@pytest.mark.parametrize("round_", range(3))
def test_separate_connections_racing_under_max_keys_leave_exactly_the_limit(
    db_path: Path, round_: int
) -> None:
    # each thread its own Store (own connection): atomic only through BEGIN IMMEDIATE and
    # PRAGMA data_version, not through a shared Python lock
    stores = [Store(db_path, purge_interval=0, busy_timeout=10) for _ in range(6)]
    quota = QuotaConfig(max_keys=3)
    refused: list[int] = []

    def add(n: int) -> Callable[[], None]:
        scoped = stores[n].scoped("ns", quota)

        def run() -> None:
            for i in range(3):
                try:
                    scoped.set("g", f"{n}-{i}", "v")
                except QuotaExceededError:
                    refused.append(n)

        return run

    try:
        stores[0].scoped("ns", quota).set("warm", "up", "v")  # builds a ledger first
        stores[0].delete("ns:warm", "up")
        run_threads([add(n) for n in range(6)])
        assert stores[0].count_all("ns:") == 3
        assert len(refused) == 18 - 3
    finally:
        for s in stores:
            s.close()


def test_mixed_stress_over_several_namespaces_never_ends_over_quota(store: Store) -> None:
    quota = QuotaConfig(max_keys=8, max_groups=3, max_bytes=120)
    namespaces = ["ns-a", "ns-b", "ns-c"]
    scoped = {ns: store.scoped(ns, quota) for ns in namespaces}
    violations: list[str] = []
    refused: list[int] = []
    checks: list[int] = []
    stop = threading.Event()

    def totals(ns: str) -> tuple[int, int, int]:
        # a transaction holds the store lock: a consistent snapshot of the namespace
        with store.transaction() as tx:
            entries = {g: tx.get_all(f"{ns}:{g}") for g in scoped[ns].groups()}
        size = sum(
            len(k.encode()) + len(v.encode()) for e in entries.values() for k, v in e.items()
        )
        return sum(len(e) for e in entries.values()), len(entries), size

    def check() -> None:
        for ns in namespaces:
            keys, groups, size = totals(ns)
            if keys > quota.max_keys or groups > quota.max_groups or size > quota.max_bytes:
                violations.append(f"{ns}: {keys} keys, {groups} groups, {size} bytes")

    def checker() -> None:
        while not stop.is_set():
            check()
            checks.append(1)

    def worker(n: int) -> Callable[[], None]:
        def run() -> None:
            rng = random.Random(1000 + n)
            for _ in range(300):
                target = scoped[rng.choice(namespaces)]
                group, key = f"g{rng.randrange(5)}", f"k{rng.randrange(12)}"
                value = "é" * rng.randrange(0, 12)
                op = rng.randrange(6)
                try:
                    if op == 0:
                        target.set(group, key, value)
                    elif op == 1:
                        target.set_with_ttl(group, key, value, rng.choice([0, 0.005, 60]))
                    elif op == 2:
                        target.set_many(group, {f"m{i}": value for i in range(rng.randrange(1, 4))})
                    elif op == 3:
                        target.delete(group, key)
                    elif op == 4:
                        target.delete_group(group)
                    else:
                        with target.transaction() as tx:
                            tx.set(group, key, value)
                            tx.set(group, key + "x", value)
                except QuotaExceededError:
                    refused.append(1)

        return run

    def stopping_checker() -> None:
        try:
            checker()
        finally:
            stop.set()

    workers = [worker(n) for n in range(5)]
    # the checker runs until every worker is done
    done = threading.Barrier(len(workers) + 1)

    def finishing(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            finally:
                done.wait(TIMEOUT)

        return run

    def wait_then_stop() -> None:
        done.wait(TIMEOUT)
        stop.set()

    run_threads([finishing(w) for w in workers] + [wait_then_stop, stopping_checker])
    check()
    assert violations == []
    assert refused and checks  # the limits were hit, and checked while the workers ran
    assert any(scoped[ns].count_all() for ns in namespaces)
