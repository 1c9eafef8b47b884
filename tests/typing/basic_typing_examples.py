"""Type-checked, never run: how the public API reads to a type checker (msgspec's
tests/typing style). tests/test_typing.py runs ``mypy --strict`` over this file.

Lines marked ``# type: ignore[code]`` are calls the API must reject: under --strict an ignore
that is no longer needed is itself an error, so the checks fail if the API loosens.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator

from typing_extensions import assert_type

import gostore
from gostore import (
    Event,
    EventType,
    KeyValue,
    NotFoundError,
    QuotaConfig,
    QuotaExceededError,
    ScopedStore,
    Store,
    StoreError,
    Watcher,
)


def check_store_reads_and_writes(store: Store) -> None:
    store.set("config", "colour", "blue")
    store.set_with_ttl("session", "token", "abc", 30)
    store.set_with_ttl("session", "token", "abc", 1.5)
    store.set_with_ttl("session", "token", "abc", datetime.timedelta(minutes=5))
    store.set_many("config", {"a": "1", "b": "2"}, ttl=None)
    assert_type(store.get("config", "colour"), str)
    assert_type(store.exists("config", "colour"), bool)
    assert_type(store.count("config"), int)
    assert_type(store.count_all(), int)
    assert_type(store.get_all("config"), dict[str, str])
    assert_type(store.get_many("config", ["a", "b"]), dict[str, str])
    assert_type(store.all("config"), Iterator[KeyValue])
    assert_type(store.get_page("config", offset=0, limit=10), list[KeyValue])
    assert_type(store.groups(), list[str])
    assert_type(store.groups_iter("con"), Iterator[str])
    assert_type(store.get_split("config", "colour", ","), Iterator[str])
    assert_type(store.get_fields("config", "colour"), Iterator[str])
    assert_type(store.render("{{ colour }}", "config", strict=True), str)
    limits = gostore.RenderLimits(max_output_chars=1_000, timeout=0.5)
    assert_type(store.render("{{ colour }}", "config", limits=limits), str)
    assert_type(limits.max_loop_iterations, int)
    assert_type(store.delete_prefix("sess"), int)
    assert_type(store.purge_expired(), int)
    store.delete("config", "colour")
    store.delete_group("config")

    for entry in store.all("config"):
        assert_type(entry.key, str)
        assert_type(entry.value, str)
        key, value = entry
        assert_type(value, str)
        assert_type(key, str)

    store.set("config", "colour", 1)  # type: ignore[arg-type]
    store.get("config")  # type: ignore[call-arg]
    store.set_with_ttl("session", "token", "abc", "30")  # type: ignore[arg-type]
    store.render("{{ x }}", "config", strict="yes")  # type: ignore[arg-type]
    store.render("{{ x }}", "config", limits={"timeout": 1})  # type: ignore[arg-type]


def check_open_and_close() -> None:
    with Store(":memory:", purge_interval=None, busy_timeout=1.0, synchronous="normal") as store:
        assert_type(store, Store)
    Store("app.db").close()
    assert_type(gostore.SPEEDUPS, bool)
    assert_type(gostore.__version__, str)


def check_transaction(store: Store) -> None:
    with store.transaction() as tx:
        tx.set("accounts", "alice", "10")
        assert_type(tx.count("accounts"), int)
        assert_type(tx.get("accounts", "alice"), str)


def check_scoped(store: Store) -> None:
    quota = QuotaConfig(max_keys=100, max_groups=10)
    scoped = store.scoped("tenant-a", quota)
    assert_type(scoped, ScopedStore)
    assert_type(ScopedStore(store, "tenant-b"), ScopedStore)
    assert_type(scoped.namespace, str)
    assert_type(scoped.quota, QuotaConfig | None)
    scoped.set("config", "colour", "blue")
    assert_type(scoped.get_all("config"), dict[str, str])
    with scoped.watch("*", "*") as watcher:
        assert_type(watcher, Watcher)
    ScopedStore(store, "tenant-c", quota=3)  # type: ignore[arg-type]


def check_events(store: Store) -> None:
    watcher = store.watch("config", "*", buffer=4)
    event = watcher.get(timeout=0.1)
    assert_type(event, Event | None)
    if event is not None:
        assert_type(event.type, EventType)
        assert_type(event.group, str)
        assert_type(event.timestamp, float)
    assert_type(watcher.get_nowait(), Event | None)
    assert_type(watcher.dropped, int)
    assert_type(watcher.closed, bool)
    for item in watcher:
        assert_type(item, Event)
    store.unwatch(watcher)

    def on_event(event: Event) -> None:
        print(event.type, event.key)

    unregister = store.on_change(on_event)
    unregister()
    store.on_change(lambda event, extra: None)  # type: ignore[arg-type, misc]


async def check_async_watch(store: Store) -> None:
    async for event in store.watch("*", "*"):
        assert_type(event, Event)
        await asyncio.sleep(0)


def check_errors(store: Store) -> None:
    try:
        store.get("config", "missing")
    except NotFoundError as exc:
        assert_type(exc, NotFoundError)
        # NotFoundError is both a KeyError and a StoreError
        lookup: KeyError = exc
        base: StoreError = exc
        print(lookup, base)
    except QuotaExceededError:
        pass


async def check_aio() -> None:
    from gostore.aio import AsyncScopedStore, AsyncStore, AsyncTransaction

    async with AsyncStore("app.db", purge_interval=0) as store:
        assert_type(await store.get("config", "colour"), str)
        assert_type(await store.get_all("config"), dict[str, str])
        assert_type(await store.set("config", "colour", "blue"), None)
        await store.set("config", "colour", 1)  # type: ignore[arg-type]
        async for entry in store.all("config"):
            assert_type(entry, KeyValue)
        async for part in store.get_split("config", "list", ","):
            assert_type(part, str)
        async with store.transaction() as tx:
            assert_type(tx, AsyncTransaction)
            assert_type(await tx.count("config"), int)
        scoped = store.scoped("tenant-a", QuotaConfig(max_keys=10))
        assert_type(scoped, AsyncScopedStore)
        assert_type(await scoped.groups(), list[str])
        async with scoped.transaction() as stx:
            assert_type(stx, AsyncScopedStore)

        async def on_event(event: Event) -> None:
            pass

        unregister = store.on_change(on_event)
        unregister()
        assert_type(store.watch("config", "*"), Watcher)
    other = await AsyncStore.open()
    assert_type(other, AsyncStore)
    await other.close()
