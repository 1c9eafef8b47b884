"""EventType, Event, Watcher, watch/unwatch and on_change callbacks.

Follows go-store's event test matrix (its events_test.go) plus the Python
additions: EXPIRE events, dropped counting, iteration, context managers and callback safety.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

import pytest

import gostore
from gostore import Event, EventType, Store, StoreClosedError, Watcher
from gostore._core import core_of

from .conftest import drain

GUARD_SECONDS = 10.0  # a deadlock fails the test after this long instead of hanging the run


def run_guarded(target: Callable[[], None]) -> None:
    """Run ``target`` in a daemon thread; fail (instead of hanging) if it does not finish."""
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            target()
        except BaseException as exc:  # reported in the test thread
            errors.append(exc)

    thread = threading.Thread(target=runner, daemon=True)
    thread.start()
    thread.join(GUARD_SECONDS)
    if thread.is_alive():
        pytest.fail(f"deadlock: the call did not finish within {GUARD_SECONDS} s")
    if errors:
        raise errors[0]


def summary(events: list[Event]) -> list[tuple[EventType, str, str, str]]:
    return [(e.type, e.group, e.key, e.value) for e in events]


# -- EventType and Event ----------------------------------------------------------------------
def test_event_type_values_and_str_labels_match_go_store() -> None:
    assert [int(t) for t in EventType] == [0, 1, 2, 3]
    assert [str(t) for t in EventType] == ["set", "delete", "delete_group", "expire"]
    assert int(EventType.SET) == 0 and isinstance(EventType.EXPIRE, int)


def test_event_fields_are_immutable() -> None:
    event = Event(EventType.SET, "g", "k", "v", 1.0)
    with pytest.raises((AttributeError, dataclasses.FrozenInstanceError)):
        event.value = "changed"  # type: ignore[misc]
    assert (event.type, event.group, event.key, event.value, event.timestamp) == (
        EventType.SET,
        "g",
        "k",
        "v",
        1.0,
    )


def test_event_timestamp_is_wall_clock_time_of_the_write(store: Store) -> None:
    watcher = store.watch("g", "k")
    before = time.time()
    store.set("g", "k", "v")
    after = time.time()
    event = watcher.get_nowait()
    assert event is not None
    assert isinstance(event.timestamp, float)
    assert before <= event.timestamp <= after


# -- matching -----------------------------------------------------------------------------------
def test_watch_specific_key_receives_its_set_and_not_other_keys(store: Store) -> None:
    watcher = store.watch("config", "colour")
    store.set("config", "size", "large")
    store.set("other", "colour", "red")
    store.set("config", "colour", "blue")
    assert summary(drain(watcher)) == [(EventType.SET, "config", "colour", "blue")]


def test_watch_star_key_receives_every_key_of_its_group_only(store: Store) -> None:
    watcher = store.watch("config", "*")
    store.set("config", "a", "1")
    store.set("config", "b", "2")
    store.set("elsewhere", "a", "3")
    assert summary(drain(watcher)) == [
        (EventType.SET, "config", "a", "1"),
        (EventType.SET, "config", "b", "2"),
    ]


def test_watch_star_star_receives_every_mutation_of_every_group(store: Store) -> None:
    watcher = store.watch("*", "*")
    store.set("g1", "a", "1")
    store.set("g2", "b", "2")
    store.delete("g1", "a")
    store.delete_group("g2")
    assert summary(drain(watcher)) == [
        (EventType.SET, "g1", "a", "1"),
        (EventType.SET, "g2", "b", "2"),
        (EventType.DELETE, "g1", "a", ""),
        (EventType.DELETE_GROUP, "g2", "", ""),
    ]


def test_star_group_with_specific_key_matches_that_key_in_every_group(store: Store) -> None:
    watcher = store.watch("*", "colour")
    store.set("g1", "colour", "red")
    store.set("g2", "colour", "blue")
    store.set("g2", "size", "big")
    assert [(e.group, e.key) for e in drain(watcher)] == [("g1", "colour"), ("g2", "colour")]


def test_multiple_watchers_on_same_key_each_receive_every_event(store: Store) -> None:
    first, second = store.watch("g", "k"), store.watch("g", "k")
    store.set("g", "k", "1")
    store.set("g", "k", "2")
    assert (
        summary(drain(first))
        == summary(drain(second))
        == [
            (EventType.SET, "g", "k", "1"),
            (EventType.SET, "g", "k", "2"),
        ]
    )


def test_watcher_matching_several_patterns_receives_each_event_once(store: Store) -> None:
    specific, group_wide, everything = (
        store.watch("g", "k"),
        store.watch("g", "*"),
        store.watch("*", "*"),
    )
    store.set("g", "k", "v")
    for watcher in (specific, group_wide, everything):
        assert len(drain(watcher)) == 1


def test_many_non_matching_watchers_receive_nothing(store: Store) -> None:
    others = [store.watch(f"group-{i}", "k") for i in range(200)]
    target = store.watch("target", "k")
    store.set("target", "k", "v")
    assert len(drain(target)) == 1
    assert all(w.get_nowait() is None for w in others)


# -- event kinds --------------------------------------------------------------------------------
def test_delete_emits_delete_event_with_group_and_key_and_empty_value(store: Store) -> None:
    store.set("g", "k", "v")
    watcher = store.watch("g", "k")
    store.delete("g", "k")
    assert summary(drain(watcher)) == [(EventType.DELETE, "g", "k", "")]


def test_delete_of_absent_key_emits_no_event(store: Store) -> None:
    watcher = store.watch("*", "*")
    calls: list[Event] = []
    store.on_change(calls.append)
    store.delete("g", "missing")
    assert watcher.get_nowait() is None
    assert calls == []


def test_delete_group_emits_delete_group_only_to_star_key_watchers(store: Store) -> None:
    store.set_many("g", {"a": "1", "b": "2"})
    key_watcher, group_watcher, all_watcher = (
        store.watch("g", "a"),
        store.watch("g", "*"),
        store.watch("*", "*"),
    )
    store.delete_group("g")
    assert key_watcher.get_nowait() is None
    assert summary(drain(group_watcher)) == [(EventType.DELETE_GROUP, "g", "", "")]
    assert summary(drain(all_watcher)) == [(EventType.DELETE_GROUP, "g", "", "")]


def test_delete_group_of_empty_group_emits_no_event(store: Store) -> None:
    watcher = store.watch("*", "*")
    store.delete_group("nothing-here")
    assert watcher.get_nowait() is None


def test_delete_prefix_emits_one_delete_group_per_group_removed(store: Store) -> None:
    store.set_many("app:a", {"1": "x", "2": "y"})
    store.set("app:b", "1", "z")
    store.set("other", "1", "w")
    watcher = store.watch("*", "*")
    assert store.delete_prefix("app:") == 3
    assert sorted(summary(drain(watcher))) == [
        (EventType.DELETE_GROUP, "app:a", "", ""),
        (EventType.DELETE_GROUP, "app:b", "", ""),
    ]


def test_delete_prefix_removing_nothing_emits_no_event(store: Store) -> None:
    watcher = store.watch("*", "*")
    assert store.delete_prefix("nope") == 0
    assert watcher.get_nowait() is None


def test_set_many_emits_one_set_event_per_key(store: Store) -> None:
    watcher = store.watch("g", "*")
    store.set_many("g", {"a": "1", "b": "2", "c": "3"})
    assert summary(drain(watcher)) == [
        (EventType.SET, "g", "a", "1"),
        (EventType.SET, "g", "b", "2"),
        (EventType.SET, "g", "c", "3"),
    ]


def test_set_with_ttl_emits_set_event(store: Store) -> None:
    watcher = store.watch("g", "k")
    store.set_with_ttl("g", "k", "v", 60)
    assert summary(drain(watcher)) == [(EventType.SET, "g", "k", "v")]


def test_get_of_expired_key_emits_expire_from_the_lazy_delete(store: Store) -> None:
    store.set_with_ttl("g", "k", "v", 0)  # stored already expired
    watcher = store.watch("g", "k")
    with pytest.raises(gostore.NotFoundError):
        store.get("g", "k")
    assert summary(drain(watcher)) == [(EventType.EXPIRE, "g", "k", "")]
    # the row is gone now, so a second get emits nothing
    with pytest.raises(gostore.NotFoundError):
        store.get("g", "k")
    assert watcher.get_nowait() is None


def test_purge_expired_emits_expire_per_removed_row(store: Store) -> None:
    store.set_with_ttl("g1", "a", "1", 0)
    store.set_with_ttl("g2", "b", "2", -5)
    store.set("g1", "live", "3")
    watcher = store.watch("*", "*")
    assert store.purge_expired() == 2
    assert sorted(summary(drain(watcher))) == [
        (EventType.EXPIRE, "g1", "a", ""),
        (EventType.EXPIRE, "g2", "b", ""),
    ]


def test_background_purge_emits_expire_from_the_purge_thread() -> None:
    with Store(purge_interval=0.01) as store:
        callback_threads: list[int] = []
        called = threading.Event()

        def on_expire(event: Event) -> None:
            if event.type == EventType.EXPIRE:
                callback_threads.append(threading.get_ident())
                called.set()

        store.on_change(on_expire)
        watcher = store.watch("g", "k")
        store.set_with_ttl("g", "k", "v", 0)
        assert watcher.get_nowait() is not None  # the SET
        event = watcher.get(timeout=GUARD_SECONDS)
        assert event is not None and (event.type, event.key) == (EventType.EXPIRE, "k")
        assert called.wait(GUARD_SECONDS)
        assert callback_threads != [threading.get_ident()]  # run by the purge thread


def test_expire_event_reaches_a_specific_key_watcher(store: Store) -> None:
    store.set_with_ttl("g", "k", "v", 0)
    watcher = store.watch("g", "k")
    store.purge_expired()
    assert summary(drain(watcher)) == [(EventType.EXPIRE, "g", "k", "")]


def test_delivery_is_complete_before_the_write_call_returns(store: Store) -> None:
    watcher = store.watch("g", "*")
    for i in range(5):
        store.set("g", str(i), "v")
        event = watcher.get_nowait()  # no waiting: the event must already be buffered
        assert event is not None and event.key == str(i)


# -- buffer -------------------------------------------------------------------------------------
def test_full_buffer_never_blocks_the_writer_and_counts_exactly_the_dropped(store: Store) -> None:
    watcher = store.watch("g", "*", buffer=16)

    def write_32() -> None:
        for i in range(32):
            store.set("g", f"k{i:02}", "v")

    run_guarded(write_32)
    assert watcher.dropped == 16
    kept = drain(watcher)
    # the buffer keeps the oldest events; the newer ones were dropped
    assert [e.key for e in kept] == [f"k{i:02}" for i in range(16)]
    store.set("g", "after-drain", "v")
    assert [e.key for e in drain(watcher)] == ["after-drain"]
    assert watcher.dropped == 16


def test_full_buffer_of_one_watcher_does_not_affect_another(store: Store) -> None:
    small, large = store.watch("g", "*", buffer=1), store.watch("g", "*", buffer=64)
    for i in range(10):
        store.set("g", str(i), "v")
    assert (small.dropped, len(drain(small))) == (9, 1)
    assert (large.dropped, len(drain(large))) == (0, 10)


@pytest.mark.parametrize("buffer", [0, -1])
def test_watch_rejects_a_buffer_below_one(store: Store, buffer: int) -> None:
    with pytest.raises(ValueError, match="buffer"):
        store.watch("g", "k", buffer=buffer)


@pytest.mark.parametrize("buffer", [1.5, "16", True])
def test_watch_rejects_a_non_int_buffer(store: Store, buffer: object) -> None:
    with pytest.raises(TypeError, match="buffer"):
        store.watch("g", "k", buffer=buffer)  # type: ignore[arg-type]


def test_watch_rejects_non_str_group_and_key(store: Store) -> None:
    with pytest.raises(TypeError):
        store.watch(1, "k")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.watch("g", None)  # type: ignore[arg-type]


# -- Watcher reading API ------------------------------------------------------------------------
def test_watcher_get_returns_none_on_timeout(store: Store) -> None:
    watcher = store.watch("g", "k")
    assert watcher.get(timeout=0.01) is None
    assert not watcher.closed


def test_watcher_get_nowait_returns_none_when_nothing_is_buffered(store: Store) -> None:
    watcher = store.watch("g", "k")
    assert watcher.get_nowait() is None
    store.set("g", "k", "v")
    assert watcher.get_nowait() is not None
    assert watcher.get_nowait() is None


def test_watcher_get_waits_for_an_event_from_another_thread(store: Store) -> None:
    watcher = store.watch("g", "k")
    writer = threading.Thread(target=store.set, args=("g", "k", "v"))
    writer.start()
    event = watcher.get(timeout=GUARD_SECONDS)
    writer.join()
    assert event is not None and event.value == "v"


def test_unwatch_stops_delivery_and_closes_so_iteration_ends(store: Store) -> None:
    watcher = store.watch("g", "k")
    store.set("g", "k", "before")
    store.unwatch(watcher)
    store.set("g", "k", "after")
    assert watcher.closed
    # buffered events stay readable; iteration then ends instead of waiting
    assert [e.value for e in watcher] == ["before"]
    assert watcher.get() is None
    assert watcher.dropped == 0


def test_unwatch_is_idempotent(store: Store) -> None:
    watcher = store.watch("g", "k")
    store.unwatch(watcher)
    store.unwatch(watcher)
    watcher.close()
    assert watcher.closed


def test_unwatch_through_another_store_unregisters_it_from_its_own_store(store: Store) -> None:
    watcher = store.watch("g", "k")
    with Store(purge_interval=0) as other:
        other.unwatch(watcher)
    assert watcher.closed
    # no longer registered: the store has nobody to deliver to
    store.set("g", "k", "v")
    assert watcher.get_nowait() is None
    assert not core_of(store).hub.active


def test_unwatch_rejects_a_non_watcher(store: Store) -> None:
    with pytest.raises(TypeError):
        store.unwatch("not a watcher")  # type: ignore[arg-type]


def test_iteration_yields_events_in_order_until_closed(store: Store) -> None:
    watcher = store.watch("g", "*")
    for i in range(3):
        store.set("g", f"k{i}", str(i))
    seen = []
    for event in watcher:
        seen.append(event.key)
        if len(seen) == 3:
            store.unwatch(watcher)
    assert seen == ["k0", "k1", "k2"]


def test_watcher_context_manager_unwatches_on_exit(store: Store) -> None:
    with store.watch("g", "k") as watcher:
        assert isinstance(watcher, Watcher)
        store.set("g", "k", "v")
        assert watcher.get_nowait() is not None
    assert watcher.closed
    store.set("g", "k", "later")
    assert watcher.get_nowait() is None


def test_watcher_context_manager_unwatches_on_exception(store: Store) -> None:
    with pytest.raises(RuntimeError), store.watch("g", "k") as watcher:
        raise RuntimeError("boom")
    assert watcher.closed


def test_store_close_closes_every_watcher_and_ends_a_blocked_iteration() -> None:
    store = Store(purge_interval=0)
    watchers = [store.watch("g", "k"), store.watch("*", "*")]
    received: list[Event] = []
    started = threading.Event()

    def consume() -> None:
        started.set()
        received.extend(watchers[1])  # blocks until the store closes the watcher

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    started.wait(GUARD_SECONDS)
    store.set("g", "k", "v")
    store.close()
    consumer.join(GUARD_SECONDS)
    assert not consumer.is_alive()
    assert all(w.closed for w in watchers)
    assert [e.value for e in received] == ["v"]


def test_watch_and_on_change_on_a_closed_store_raise_store_closed(store: Store) -> None:
    watcher = store.watch("g", "k")
    unregister = store.on_change(lambda event: None)
    store.close()
    with pytest.raises(StoreClosedError):
        store.watch("g", "k")
    with pytest.raises(StoreClosedError):
        store.on_change(lambda event: None)
    # these stay harmless after close
    store.unwatch(watcher)
    unregister()
    unregister()


def test_watcher_repr_shows_what_it_watches(store: Store) -> None:
    watcher = store.watch("config", "colour")
    assert "config" in repr(watcher) and "colour" in repr(watcher) and "open" in repr(watcher)
    store.unwatch(watcher)
    assert "closed" in repr(watcher)


# -- on_change callbacks ------------------------------------------------------------------------
def test_on_change_fires_for_set_and_delete(store: Store) -> None:
    calls: list[Event] = []
    store.on_change(calls.append)
    store.set("g", "k", "v")
    store.delete("g", "k")
    assert summary(calls) == [(EventType.SET, "g", "k", "v"), (EventType.DELETE, "g", "k", "")]


def test_on_change_unregister_stops_the_callback_and_is_idempotent(store: Store) -> None:
    calls: list[Event] = []
    unregister = store.on_change(calls.append)
    store.set("g", "k", "1")
    unregister()
    unregister()
    store.set("g", "k", "2")
    assert [e.value for e in calls] == ["1"]


def test_same_function_registered_twice_is_called_twice_and_unregistered_separately(
    store: Store,
) -> None:
    calls: list[str] = []

    def callback(event: Event) -> None:
        calls.append(event.value)

    first = store.on_change(callback)
    store.on_change(callback)
    store.set("g", "k", "a")
    assert calls == ["a", "a"]
    first()
    store.set("g", "k", "b")
    assert calls == ["a", "a", "b"]


def test_on_change_rejects_a_non_callable(store: Store) -> None:
    with pytest.raises(TypeError):
        store.on_change("print")  # type: ignore[arg-type]


def test_callback_runs_in_the_writing_thread_after_the_commit(store: Store) -> None:
    seen: list[tuple[int, str]] = []
    store.on_change(lambda event: seen.append((threading.get_ident(), store.get("g", "k"))))
    writer = threading.Thread(target=store.set, args=("g", "k", "committed"))
    writer.start()
    writer.join()
    assert seen == [(writer.ident, "committed")]


def test_callback_runs_outside_the_store_lock_so_other_threads_can_write() -> None:
    store = Store(purge_interval=0)
    other_done = threading.Event()
    waited: list[bool] = []

    def callback(event: Event) -> None:
        if event.key == "first":
            # another thread writes while this callback is still running; were the lock held,
            # that write could not finish before the callback returns
            other = threading.Thread(target=store.set, args=("g", "second", "v"))
            other.start()
            waited.append(other_done.wait(GUARD_SECONDS))
            other.join()

    def track(event: Event) -> None:
        if event.key == "second":
            other_done.set()

    store.on_change(track)
    store.on_change(callback)
    run_guarded(lambda: store.set("g", "first", "v"))
    assert waited == [True]
    store.close()


def test_callback_that_reads_writes_watches_and_registers_does_not_deadlock() -> None:
    store = Store(purge_interval=0)
    log: list[str] = []
    extra_unregisters: list[Callable[[], None]] = []

    def callback(event: Event) -> None:
        if event.group != "main":
            return
        log.append(store.get("main", event.key))
        store.set("side", event.key, "from-callback")  # a write to another key
        log.append(str(store.count("side")))
        watcher = store.watch("side", "*")
        store.unwatch(watcher)
        extra_unregisters.append(store.on_change(lambda e: None))
        extra_unregisters.pop()()  # unregister from inside a callback

    unregister = store.on_change(callback)
    run_guarded(lambda: store.set("main", "k", "v"))
    assert log == ["v", "1"]
    assert store.get("side", "k") == "from-callback"

    # a callback may also unregister itself
    def self_removing(event: Event) -> None:
        log.append("self")
        remove()

    remove = store.on_change(self_removing)
    run_guarded(lambda: store.set("other", "a", "1"))
    run_guarded(lambda: store.set("other", "b", "2"))
    assert log.count("self") == 1
    unregister()
    store.close()


def test_callback_exception_is_logged_and_reaches_neither_writer_nor_other_callbacks(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def failing(event: Event) -> None:
        raise RuntimeError("callback exploded")

    store.on_change(lambda event: calls.append("before"))
    store.on_change(failing)
    store.on_change(lambda event: calls.append("after"))
    with caplog.at_level(logging.ERROR, logger="gostore"):
        store.set("g", "k", "v")  # must not raise
    assert calls == ["before", "after"]
    assert store.get("g", "k") == "v"
    records = [r for r in caplog.records if r.name == "gostore"]
    assert len(records) == 1
    assert records[0].exc_info is not None and "callback exploded" in str(records[0].exc_info[1])


def test_watchers_and_callbacks_both_receive_the_same_event(store: Store) -> None:
    calls: list[Event] = []
    store.on_change(calls.append)
    watcher = store.watch("g", "k")
    store.set("g", "k", "v")
    assert drain(watcher) == calls


def test_scoped_store_events_carry_the_full_namespaced_group(store: Store) -> None:
    watcher = store.watch("tenant-a:config", "*")
    calls: list[Event] = []
    store.on_change(calls.append)
    scoped = store.scoped("tenant-a")
    scoped.set("config", "colour", "blue")
    scoped.delete("config", "colour")
    expected = [
        (EventType.SET, "tenant-a:config", "colour", "blue"),
        (EventType.DELETE, "tenant-a:config", "colour", ""),
    ]
    assert summary(drain(watcher)) == expected
    assert summary(calls) == expected


def test_scoped_store_with_quota_emits_the_same_events(store: Store) -> None:
    watcher = store.watch("*", "*")
    scoped = store.scoped("tenant-a", gostore.QuotaConfig(max_keys=10))
    scoped.set("config", "a", "1")
    scoped.set_with_ttl("config", "b", "2", 60)
    scoped.set_many("config", {"c": "3"})
    scoped.delete("config", "a")
    scoped.delete("config", "missing")
    assert summary(drain(watcher)) == [
        (EventType.SET, "tenant-a:config", "a", "1"),
        (EventType.SET, "tenant-a:config", "b", "2"),
        (EventType.SET, "tenant-a:config", "c", "3"),
        (EventType.DELETE, "tenant-a:config", "a", ""),
    ]


def test_failed_write_emits_no_event(store: Store) -> None:
    watcher = store.watch("*", "*")
    with pytest.raises(TypeError):
        store.set("g", "k", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.set("g", "k", "\ud800")
    with pytest.raises(ValueError):
        store.set_many("g", {"a": "1", "b": "\udfff"})
    assert watcher.get_nowait() is None
