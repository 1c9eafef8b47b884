"""TTL: expiry arithmetic, the three enforcement layers, input checks.

Most tests drive a fake clock through ``gostore.store.now_ms`` (the name the library reads the
time through) instead of sleeping.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import apsw
import pytest

from gostore import EventType, KeyValue, NotFoundError, Store

from .conftest import CLOCK_START_MS, run_in_threads
from .conftest import FakeClock as Clock

START = CLOCK_START_MS




def raw_expiry(path: Path) -> dict[tuple[str, str], Any]:
    """Physical rows and their expires_at, read with a separate connection."""
    conn = apsw.Connection(str(path))
    try:
        rows: list[Any] = conn.execute(
            "SELECT group_name, entry_key, expires_at FROM entries"
        ).fetchall()
    finally:
        conn.close()
    return {(g, k): e for g, k, e in rows}


# -- expiry arithmetic ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ttl", "delta_ms"),
    [
        (10, 10_000),
        (1.5, 1_500),
        (0.001, 1),
        (timedelta(seconds=2, milliseconds=5), 2_005),
        (timedelta(days=1), 86_400_000),
        (timedelta(microseconds=1500), 1),
    ],
    ids=["int", "float", "one_ms", "timedelta", "timedelta_day", "timedelta_us"],
)
def test_set_with_ttl_stores_expiry_in_unix_ms(
    file_store: Store, db_path: Path, clock: Clock, ttl: Any, delta_ms: int
) -> None:
    file_store.set_with_ttl("g", "k", "v", ttl)
    assert raw_expiry(db_path) == {("g", "k"): START + delta_ms}


def test_entry_is_live_until_its_expiry_millisecond(store: Store, clock: Clock) -> None:
    store.set_with_ttl("g", "k", "v", 1)
    clock.advance(0.999)
    assert store.get("g", "k") == "v"
    clock.advance(0.001)  # expires_at == now: expired, as go-store's `expires_at > now`
    with pytest.raises(NotFoundError):
        store.get("g", "k")


def test_real_clock_short_ttl_expires(store: Store) -> None:
    store.set_with_ttl("g", "k", "v", 0.05)
    assert store.get("g", "k") == "v"
    time.sleep(0.06)
    with pytest.raises(NotFoundError):
        store.get("g", "k")


@pytest.mark.parametrize("ttl", [0, -1, -0.5, timedelta(0), timedelta(seconds=-3)])
def test_non_positive_ttl_stores_an_already_expired_row(
    file_store: Store, db_path: Path, clock: Clock, ttl: Any
) -> None:
    file_store.set_with_ttl("g", "k", "v", ttl)
    assert ("g", "k") in raw_expiry(db_path)  # physically present
    assert raw_expiry(db_path)[("g", "k")] <= START
    assert not file_store.exists("g", "k")
    assert file_store.count("g") == 0
    assert file_store.get_all("g") == {}
    with pytest.raises(NotFoundError):
        file_store.get("g", "k")


@pytest.mark.parametrize("ttl", [math.nan, math.inf, -math.inf, 1e300])
def test_non_finite_or_huge_positive_ttl_raises_value_error_and_writes_nothing(
    store: Store, ttl: float
) -> None:
    store.set("g", "k", "before")
    with pytest.raises(ValueError, match=r"store\.set_with_ttl"):
        store.set_with_ttl("g", "k", "after", ttl)
    with pytest.raises(ValueError, match=r"store\.set_many"):
        store.set_many("g", {"k": "after"}, ttl=ttl)
    assert store.get("g", "k") == "before"


@pytest.mark.parametrize("ttl", [True, False, "10", None, [1], 1 + 2j])
def test_non_numeric_ttl_raises_type_error_and_writes_nothing(store: Store, ttl: Any) -> None:
    with pytest.raises(TypeError, match="ttl"):
        store.set_with_ttl("g", "k", "v", ttl)
    assert store.count_all() == 0


# -- replacing and clearing TTLs ----------------------------------------------------------------
def test_set_clears_an_existing_ttl(file_store: Store, db_path: Path, clock: Clock) -> None:
    file_store.set_with_ttl("g", "k", "old", 1)
    file_store.set("g", "k", "new")
    assert raw_expiry(db_path) == {("g", "k"): None}
    clock.advance(10)
    assert file_store.get("g", "k") == "new"


def test_set_with_ttl_upsert_replaces_the_ttl(store: Store, clock: Clock) -> None:
    store.set_with_ttl("g", "k", "v1", 1)
    store.set_with_ttl("g", "k", "v2", 100)
    clock.advance(50)
    assert store.get("g", "k") == "v2"
    store.set_with_ttl("g", "k", "v3", 1)  # shorter again
    clock.advance(1)
    assert not store.exists("g", "k")


def test_set_with_ttl_adds_expiry_to_a_plain_key(store: Store, clock: Clock) -> None:
    store.set("g", "k", "v")
    store.set_with_ttl("g", "k", "v", 1)
    clock.advance(1)
    assert not store.exists("g", "k")


def test_set_with_ttl_revives_an_expired_key(store: Store, clock: Clock) -> None:
    store.set_with_ttl("g", "k", "old", 1)
    clock.advance(2)
    store.set_with_ttl("g", "k", "new", 10)
    assert store.get("g", "k") == "new"
    assert store.count("g") == 1


def test_future_ttl_stays_readable(store: Store, clock: Clock) -> None:
    store.set_with_ttl("g", "k", "v", timedelta(hours=1))
    clock.advance(3599)
    assert store.get("g", "k") == "v"


# -- the three layers ----------------------------------------------------------------------------
def test_get_of_expired_key_raises_not_found_and_deletes_row(
    file_store: Store, db_path: Path, clock: Clock
) -> None:
    file_store.set_with_ttl("g", "k", "v", 1)
    file_store.set_with_ttl("g", "other", "v", 1)
    clock.advance(1)
    with pytest.raises(NotFoundError):
        file_store.get("g", "k")
    assert raw_expiry(db_path) == {("g", "other"): START + 1000}  # lazy delete of "k" only
    assert file_store.purge_expired() == 1


def test_get_lazy_delete_emits_expire_event(store: Store, clock: Clock) -> None:
    store.set_with_ttl("g", "k", "v", 1)
    clock.advance(1)
    with store.watch("g", "k") as watcher:
        with pytest.raises(NotFoundError):
            store.get("g", "k")
        event = watcher.get_nowait()
    assert event is not None
    assert (event.type, event.group, event.key) == (EventType.EXPIRE, "g", "k")


def test_reads_exclude_expired_rows(store: Store, clock: Clock) -> None:
    store.set("g", "live", "yes")
    store.set_with_ttl("g", "dying", "soon", 1)
    store.set_with_ttl("dead-group", "k", "v", 1)
    store.set_with_ttl("ns:dead", "k", "v", 1)
    store.set("ns:live", "k", "v")
    clock.advance(1)
    assert store.count("g") == 1
    assert store.get_all("g") == {"live": "yes"}
    assert list(store.all("g")) == [KeyValue("live", "yes")]
    assert store.get_page("g") == [KeyValue("live", "yes")]
    assert store.get_many("g", ["live", "dying"]) == {"live": "yes"}
    assert not store.exists("g", "dying")
    assert store.groups() == ["g", "ns:live"]
    assert list(store.groups_iter("ns:")) == ["ns:live"]
    assert store.count_all() == 2
    assert store.count_all("ns:") == 1
    assert store.render("{{ live }}|{{ dying }}", "g") == "yes|"


def test_expired_rows_are_still_physically_present_until_purged(
    file_store: Store, db_path: Path, clock: Clock
) -> None:
    file_store.set_with_ttl("g", "a", "v", 1)
    file_store.set_with_ttl("g", "b", "v", 1)
    file_store.set_with_ttl("h", "c", "v", 5)
    file_store.set("g", "keep", "v")
    clock.advance(1)
    file_store.count("g")
    file_store.get_all("g")
    assert len(raw_expiry(db_path)) == 4  # query-time filtering does not delete
    assert file_store.purge_expired() == 2
    assert set(raw_expiry(db_path)) == {("h", "c"), ("g", "keep")}
    assert file_store.purge_expired() == 0


def test_purge_expired_emits_expire_events(store: Store, clock: Clock) -> None:
    store.set_with_ttl("g", "a", "v", 1)
    store.set_with_ttl("h", "b", "v", 1)
    seen: list[tuple[EventType, str, str]] = []
    unregister = store.on_change(lambda e: seen.append((e.type, e.group, e.key)))
    clock.advance(1)
    assert store.purge_expired() == 2
    unregister()
    assert sorted(seen) == [(EventType.EXPIRE, "g", "a"), (EventType.EXPIRE, "h", "b")]


def test_background_purge_removes_expired_rows(db_path: Path) -> None:
    with Store(db_path, purge_interval=0.05) as s:
        s.set_with_ttl("g", "k", "v", -1)
        s.set("g", "keep", "v")
        deadline = time.monotonic() + 10
        while ("g", "k") in raw_expiry(db_path) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert raw_expiry(db_path) == {("g", "keep"): None}


def test_concurrent_ttl_access_from_10_threads(store: Store, clock: Clock) -> None:
    def work(n: int) -> None:
        for i in range(50):
            store.set_with_ttl("g", f"{n}-{i}", "v", 10 if i % 2 else -1)
            store.count("g")
            store.exists("g", f"{n}-{i}")
            store.purge_expired()

    run_in_threads(work, 10)
    assert store.count("g") == 250
    assert store.purge_expired() == 0
