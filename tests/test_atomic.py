"""Atomic operations: incr, add, compare_and_set, pop, touch, ttl on Store, Transaction and
ScopedStore; their events, quota checks, and atomicity under thread and process contention."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

import gostore
from gostore import EventType, NotFoundError, QuotaConfig, QuotaExceededError, Store, StoreError

from .conftest import FakeClock, drain, run_in_threads


@pytest.fixture
def any_store(store: Store) -> Store:
    """The store on each engine (memory, file, PostgreSQL): the atomic step differs."""
    return store


def events_of(watcher: gostore.Watcher) -> list[tuple[EventType, str, str, str]]:
    return [(e.type, e.group, e.key, e.value) for e in drain(watcher)]


# -- incr ----------------------------------------------------------------------------------------
def test_incr_of_missing_key_starts_from_zero_and_stores_decimal_text(any_store: Store) -> None:
    assert any_store.incr("hits", "home") == 1
    assert any_store.incr("hits", "home", 41) == 42
    assert any_store.incr("hits", "home", -50) == -8
    assert any_store.get("hits", "home") == "-8"
    assert any_store.ttl("hits", "home") is None


@pytest.mark.parametrize(
    ("stored", "expected"),
    [("+5", 6), ("-5", -4), ("007", 8), ("0", 1), ("-0", 1), ("9" * 30, 10**30)],
)
def test_incr_reads_signed_ascii_integers(any_store: Store, stored: str, expected: int) -> None:
    any_store.set("n", "k", stored)
    assert any_store.incr("n", "k") == expected
    assert any_store.get("n", "k") == str(expected)


@pytest.mark.parametrize(
    "stored", ["", " 5", "5 ", "5\n", "5_000", "1.5", "1e3", "0x10", "+", "--1", "\u0663", "五"]
)
def test_incr_of_non_integer_value_raises_value_error_and_writes_nothing(
    any_store: Store, stored: str
) -> None:
    any_store.set("n", "k", stored)
    with any_store.watch("n", "*") as watcher:
        with pytest.raises(ValueError, match=r"store\.incr group='n' key='k': .*not a base-10"):
            any_store.incr("n", "k")
        assert any_store.get("n", "k") == stored
        assert drain(watcher) == []


@pytest.mark.parametrize("delta", [True, False, 1.0, "1", None])
def test_incr_delta_must_be_an_int_not_bool(any_store: Store, delta: object) -> None:
    with pytest.raises(TypeError, match="delta must be int"):
        any_store.incr("n", "k", delta)  # type: ignore[arg-type]
    assert not any_store.exists("n", "k")


def test_incr_keeps_an_existing_ttl(any_store: Store, clock: FakeClock) -> None:
    any_store.set_with_ttl("n", "k", "10", 60)
    clock.advance(20)
    assert any_store.incr("n", "k", 5) == 15
    assert any_store.ttl("n", "k") == pytest.approx(40.0)


def test_incr_of_expired_key_starts_from_zero_without_ttl_and_emits_only_set(
    any_store: Store, clock: FakeClock
) -> None:
    any_store.set_with_ttl("n", "k", "100", 10)
    clock.advance(11)
    with any_store.watch("*", "*") as watcher:
        assert any_store.incr("n", "k", 3) == 3
        assert events_of(watcher) == [(EventType.SET, "n", "k", "3")]
    assert any_store.ttl("n", "k") is None


def test_incr_result_beyond_conversion_limit_raises_value_error(any_store: Store) -> None:
    any_store.set("n", "k", "9" * 4000)
    with pytest.raises(ValueError, match="more than 4000 digits"):
        any_store.incr("n", "k")
    assert any_store.get("n", "k") == "9" * 4000


def test_incr_from_eight_threads_loses_no_increment(file_store: Store) -> None:
    def work(_: int) -> None:
        for _ in range(1_000):
            file_store.incr("counters", "shared")

    run_in_threads(work, 8)
    assert file_store.get("counters", "shared") == "8000"


_INCR_CHILD = textwrap.dedent(
    """
    import sys
    import gostore
    with gostore.Store(sys.argv[1], purge_interval=0, busy_timeout=60) as store:
        for _ in range(int(sys.argv[2])):
            store.incr("counters", "shared")
    """
)


def test_incr_from_four_processes_loses_no_increment(db_path: Path) -> None:
    Store(db_path, purge_interval=0).close()  # the schema exists before the race
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _INCR_CHILD, str(db_path), "500"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()[-2000:]
    with Store(db_path, purge_interval=0) as store:
        assert store.get("counters", "shared") == "2000"


# -- add -----------------------------------------------------------------------------------------
def test_add_writes_only_when_absent(any_store: Store) -> None:
    with any_store.watch("*", "*") as watcher:
        assert any_store.add("locks", "job", "worker-1") is True
        assert any_store.add("locks", "job", "worker-2") is False
        assert events_of(watcher) == [(EventType.SET, "locks", "job", "worker-1")]
    assert any_store.get("locks", "job") == "worker-1"


def test_add_with_ttl_sets_expiry_and_an_expired_entry_counts_as_absent(
    any_store: Store, clock: FakeClock
) -> None:
    assert any_store.add("locks", "job", "worker-1", ttl=timedelta(seconds=30))
    assert any_store.ttl("locks", "job") == pytest.approx(30.0)
    clock.advance(31)
    with any_store.watch("*", "*") as watcher:
        assert any_store.add("locks", "job", "worker-2") is True
        assert events_of(watcher) == [(EventType.SET, "locks", "job", "worker-2")]
    assert any_store.ttl("locks", "job") is None


def test_add_from_many_threads_lets_exactly_one_win(file_store: Store) -> None:
    winners: list[int] = []

    def work(n: int) -> None:
        if file_store.add("locks", "job", f"worker-{n}"):
            winners.append(n)

    run_in_threads(work, 10)
    assert len(winners) == 1
    assert file_store.get("locks", "job") == f"worker-{winners[0]}"


def test_add_rejects_bad_ttl_before_writing(any_store: Store) -> None:
    with pytest.raises(ValueError):
        any_store.add("g", "k", "v", ttl=float("nan"))
    assert not any_store.exists("g", "k")


# -- compare_and_set -----------------------------------------------------------------------------
def test_compare_and_set_writes_only_on_a_matching_value(any_store: Store) -> None:
    any_store.set("cfg", "version", "1")
    with any_store.watch("*", "*") as watcher:
        assert any_store.compare_and_set("cfg", "version", "2", "3") is False
        assert any_store.compare_and_set("cfg", "version", "1", "2") is True
        assert events_of(watcher) == [(EventType.SET, "cfg", "version", "2")]
    assert any_store.get("cfg", "version") == "2"


def test_compare_and_set_with_none_expected_writes_only_when_absent(any_store: Store) -> None:
    assert any_store.compare_and_set("cfg", "k", None, "first") is True
    assert any_store.compare_and_set("cfg", "k", None, "second") is False
    assert any_store.get("cfg", "k") == "first"


def test_compare_and_set_ttl_none_clears_ttl_and_ttl_sets_one(any_store: Store) -> None:
    any_store.set_with_ttl("cfg", "k", "a", 60)
    assert any_store.compare_and_set("cfg", "k", "a", "b") is True
    assert any_store.ttl("cfg", "k") is None
    assert any_store.compare_and_set("cfg", "k", "b", "c", ttl=5) is True
    assert any_store.ttl("cfg", "k") == pytest.approx(5.0, abs=0.5)


def test_compare_and_set_treats_an_expired_entry_as_absent(
    any_store: Store, clock: FakeClock
) -> None:
    any_store.set_with_ttl("cfg", "k", "old", 1)
    clock.advance(2)
    assert any_store.compare_and_set("cfg", "k", "old", "new") is False
    assert any_store.compare_and_set("cfg", "k", None, "new") is True
    assert any_store.get("cfg", "k") == "new"


def test_compare_and_set_from_threads_applies_each_step_once(file_store: Store) -> None:
    file_store.set("cfg", "n", "0")

    def work(_: int) -> None:
        done = 0
        while done < 50:
            current = file_store.get("cfg", "n")
            if file_store.compare_and_set("cfg", "n", current, str(int(current) + 1)):
                done += 1

    run_in_threads(work, 4)
    assert file_store.get("cfg", "n") == "200"


# -- pop -----------------------------------------------------------------------------------------
def test_pop_removes_and_returns_the_value_with_a_delete_event(any_store: Store) -> None:
    any_store.set("q", "job", "payload")
    with any_store.watch("*", "*") as watcher:
        assert any_store.pop("q", "job") == "payload"
        assert events_of(watcher) == [(EventType.DELETE, "q", "job", "")]
    assert not any_store.exists("q", "job")


def test_pop_of_absent_key_returns_default_or_raises_not_found(any_store: Store) -> None:
    assert any_store.pop("q", "job", None) is None
    assert any_store.pop("q", "job", "fallback") == "fallback"
    with pytest.raises(NotFoundError, match=r"store\.pop group='q' key='job'"):
        any_store.pop("q", "job")


def test_pop_of_expired_key_returns_default_without_events(
    any_store: Store, clock: FakeClock
) -> None:
    any_store.set_with_ttl("q", "job", "payload", 1)
    clock.advance(2)
    with any_store.watch("*", "*") as watcher:
        assert any_store.pop("q", "job", "gone") == "gone"
        with pytest.raises(NotFoundError):
            any_store.pop("q", "job")
        assert drain(watcher) == []


def test_pop_from_threads_hands_each_entry_to_one_caller(file_store: Store) -> None:
    file_store.set_many("q", {f"job{i}": str(i) for i in range(40)})
    taken: list[str] = []

    def work(_: int) -> None:
        for i in range(40):
            value = file_store.pop("q", f"job{i}", None)
            if value is not None:
                taken.append(value)

    run_in_threads(work, 4)
    assert sorted(taken, key=int) == [str(i) for i in range(40)]


# -- touch and ttl -------------------------------------------------------------------------------
def test_touch_changes_expiry_only_and_emits_nothing(any_store: Store, clock: FakeClock) -> None:
    any_store.set_with_ttl("s", "session", "data", 10)
    with any_store.watch("*", "*") as watcher:
        assert any_store.touch("s", "session", 100) is True
        assert drain(watcher) == []
    assert any_store.ttl("s", "session") == pytest.approx(100.0)
    assert any_store.touch("s", "session", None) is True
    assert any_store.ttl("s", "session") is None
    assert any_store.get("s", "session") == "data"


def test_touch_of_absent_or_expired_key_returns_false(any_store: Store, clock: FakeClock) -> None:
    assert any_store.touch("s", "missing", 10) is False
    any_store.set_with_ttl("s", "old", "data", 1)
    clock.advance(2)
    assert any_store.touch("s", "old", 100) is False
    assert not any_store.exists("s", "old")


def test_touch_with_non_positive_ttl_expires_the_entry(any_store: Store) -> None:
    any_store.set("s", "k", "v")
    assert any_store.touch("s", "k", 0) is True
    assert not any_store.exists("s", "k")


def test_ttl_reports_remaining_seconds_none_or_not_found(
    any_store: Store, clock: FakeClock
) -> None:
    any_store.set("t", "forever", "v")
    any_store.set_with_ttl("t", "soon", "v", 2.5)
    assert any_store.ttl("t", "forever") is None
    assert any_store.ttl("t", "soon") == 2.5
    clock.advance(1)
    assert any_store.ttl("t", "soon") == 1.5
    clock.advance(2)
    with pytest.raises(NotFoundError, match=r"store\.ttl group='t' key='soon'"):
        any_store.ttl("t", "soon")
    with pytest.raises(NotFoundError):
        any_store.ttl("t", "missing")


# -- inputs and lifecycle ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.incr(1, "k"),
        lambda s: s.add("g", b"k", "v"),
        lambda s: s.add("g", "k", 5),
        lambda s: s.compare_and_set("g", "k", 5, "v"),
        lambda s: s.pop("g", None),
        lambda s: s.touch(None, "k", 1),
        lambda s: s.ttl("g", 3),
        lambda s: s.touch("g", "k", "soon"),
    ],
    ids=["incr", "add-key", "add-value", "cas-expected", "pop", "touch", "ttl", "touch-ttl"],
)
def test_atomic_operations_reject_non_str_arguments(any_store: Store, call: object) -> None:
    with pytest.raises(TypeError):
        call(any_store)  # type: ignore[operator]
    assert any_store.stats().keys == 0


def test_atomic_operations_reject_lone_surrogates(any_store: Store) -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        any_store.add("g", "k\ud800", "v")
    with pytest.raises(ValueError, match="lone surrogate"):
        any_store.incr("g\udfff", "k")


def test_atomic_operations_on_closed_store_raise_store_closed_error(any_store: Store) -> None:
    any_store.close()
    for call in (
        lambda: any_store.incr("g", "k"),
        lambda: any_store.add("g", "k", "v"),
        lambda: any_store.compare_and_set("g", "k", None, "v"),
        lambda: any_store.pop("g", "k", None),
        lambda: any_store.touch("g", "k", 1),
        lambda: any_store.ttl("g", "k"),
    ):
        with pytest.raises(gostore.StoreClosedError):
            call()


def test_atomic_operations_accept_any_str(any_store: Store) -> None:
    group, key = "g\x00\U0010ffff", "'; DROP TABLE entries; --"
    assert any_store.add(group, key, "é\x00") is True
    assert any_store.compare_and_set(group, key, "é\x00", "1") is True
    assert any_store.incr(group, key) == 2
    assert any_store.pop(group, key) == "2"


# -- transactions --------------------------------------------------------------------------------
def test_atomic_operations_in_a_transaction_see_its_writes_and_send_events_on_commit(
    any_store: Store,
) -> None:
    with any_store.watch("*", "*") as watcher:
        with any_store.transaction() as tx:
            tx.set("c", "n", "5")
            assert tx.incr("c", "n") == 6
            assert tx.add("c", "n", "x") is False
            assert tx.compare_and_set("c", "n", "6", "7") is True
            assert tx.touch("c", "n", 60) is True
            assert tx.ttl("c", "n") == pytest.approx(60.0, abs=1)
            assert tx.pop("c", "n") == "7"
            assert tx.pop("c", "n", "none") == "none"
            assert drain(watcher) == []
        assert [e.type for e in drain(watcher)] == [
            EventType.SET, EventType.SET, EventType.SET, EventType.DELETE,
        ]


def test_rolled_back_transaction_undoes_atomic_operations_without_events(
    any_store: Store,
) -> None:
    any_store.set("c", "n", "1")
    with any_store.watch("*", "*") as watcher:
        with pytest.raises(RuntimeError), any_store.transaction() as tx:
            tx.incr("c", "n", 10)
            tx.add("c", "new", "v")
            raise RuntimeError("abort")
        assert drain(watcher) == []
    assert any_store.get("c", "n") == "1"
    assert not any_store.exists("c", "new")


def test_failed_incr_inside_transaction_leaves_the_transaction_usable(any_store: Store) -> None:
    any_store.set("c", "text", "abc")
    with any_store.transaction() as tx:
        tx.set("c", "a", "1")
        with pytest.raises(ValueError):
            tx.incr("c", "text")
        tx.set("c", "b", "2")
    assert any_store.get_all("c") == {"text": "abc", "a": "1", "b": "2"}


def test_transaction_atomic_operations_name_the_tx_operation(any_store: Store) -> None:
    with any_store.transaction() as tx, pytest.raises(NotFoundError, match=r"^tx\.pop "):
        tx.pop("g", "k")


def test_transaction_atomic_operation_after_the_block_raises(any_store: Store) -> None:
    with any_store.transaction() as tx:
        pass
    with pytest.raises(StoreError, match="transaction has ended"):
        tx.incr("g", "k")


# -- scoped stores and quotas --------------------------------------------------------------------
def test_scoped_atomic_operations_work_in_the_namespace(any_store: Store) -> None:
    scoped = any_store.scoped("tenant")
    assert scoped.incr("hits", "home") == 1
    assert scoped.add("locks", "job", "w") is True
    assert scoped.compare_and_set("locks", "job", "w", "w2") is True
    assert scoped.touch("locks", "job", 30) is True
    assert scoped.ttl("locks", "job") == pytest.approx(30.0, abs=1)
    assert any_store.get("tenant:hits", "home") == "1"
    assert scoped.pop("locks", "job") == "w2"
    assert not any_store.exists("tenant:locks", "job")
    with pytest.raises(NotFoundError, match=r"scoped\.ttl group='tenant:locks'"):
        scoped.ttl("locks", "job")


def test_scoped_add_of_new_key_counts_towards_max_keys(any_store: Store) -> None:
    scoped = any_store.scoped("ns", QuotaConfig(max_keys=2))
    assert scoped.add("g", "a", "1") and scoped.add("g", "b", "2")
    with pytest.raises(QuotaExceededError, match=r"scoped\.add group='ns:g' key='c'"):
        scoped.add("g", "c", "3")
    assert not any_store.exists("ns:g", "c")


def test_calls_that_write_nothing_never_raise_quota_exceeded(any_store: Store) -> None:
    scoped = any_store.scoped("ns", QuotaConfig(max_keys=1, max_bytes=2))
    scoped.set("g", "a", "1")
    assert scoped.add("g", "a", "a much longer value") is False
    assert scoped.add("g", "a", "x") is False
    assert scoped.compare_and_set("g", "a", "wrong", "a much longer value") is False
    assert scoped.compare_and_set("g", "b", "wrong", "v") is False
    assert scoped.pop("g", "b", None) is None
    assert scoped.touch("g", "b", 5) is False


def test_scoped_incr_that_grows_the_value_counts_towards_max_bytes(any_store: Store) -> None:
    scoped = any_store.scoped("ns", QuotaConfig(max_bytes=3))  # key "n" + up to 2 digits
    assert scoped.incr("g", "n", 99) == 99
    with pytest.raises(QuotaExceededError, match="over its limit of 3"):
        scoped.incr("g", "n")  # "100" would need 4 bytes
    assert any_store.get("ns:g", "n") == "99"
    assert scoped.incr("g", "n", -90) == 9  # shrinking is always allowed


def test_scoped_incr_of_new_key_counts_towards_max_keys(any_store: Store) -> None:
    scoped = any_store.scoped("ns", QuotaConfig(max_keys=1))
    scoped.incr("g", "a")
    scoped.incr("g", "a")  # an existing key never counts again
    with pytest.raises(QuotaExceededError, match="limit of 1 keys"):
        scoped.incr("g", "b")


def test_scoped_pop_and_touch_keep_the_quota_ledger_exact(
    any_store: Store, clock: FakeClock
) -> None:
    scoped = any_store.scoped("ns", QuotaConfig(max_keys=2))
    scoped.set("g", "a", "1")
    scoped.set("g", "b", "2")
    assert scoped.pop("g", "a") == "1"
    scoped.set("g", "c", "3")  # pop freed a key
    assert scoped.touch("g", "c", 5) is True
    clock.advance(6)  # c expired through its new TTL: it no longer counts
    scoped.set("g", "d", "4")
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "e", "5")


def test_scoped_add_racing_threads_respect_max_keys(file_store: Store) -> None:
    scoped = file_store.scoped("ns", QuotaConfig(max_keys=5))

    def work(n: int) -> None:
        try:
            scoped.add("g", f"k{n}", "v")
        except QuotaExceededError:
            pass

    run_in_threads(work, 10)
    assert file_store.count("ns:g") == 5


def test_scoped_transaction_view_has_atomic_operations(any_store: Store) -> None:
    scoped = any_store.scoped("ns", QuotaConfig(max_keys=1))
    with scoped.transaction() as view:
        assert view.incr("g", "n", 2) == 2
        with pytest.raises(QuotaExceededError):
            view.add("g", "other", "v")
    assert any_store.get("ns:g", "n") == "2"
