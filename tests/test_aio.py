"""gostore.aio: AsyncStore, AsyncScopedStore and async transactions over the synchronous Store.

No pytest plugin: each test runs its own loop with ``run()`` (``asyncio.run`` under a timeout,
so a lost wake-up fails the test instead of hanging it).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

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
    StoreClosedError,
    StoreError,
    Transaction,
)
from gostore.aio import AsyncScopedStore, AsyncStore, AsyncTransaction

T = TypeVar("T")
TIMEOUT = 20.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def aio_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gostore-aio"]


# -- the method table ------------------------------------------------------------------------------
ITERATORS = {"all", "groups_iter", "get_split", "get_fields", "changes", "export_entries"}
PLAIN = {"watch", "unwatch", "on_change", "scoped", "transaction"}


def public_methods(cls: type) -> set[str]:
    return {
        name
        for name, value in vars(cls).items() | _inherited(cls)
        if not name.startswith("_") and callable(value)
    }


def _inherited(cls: type) -> set[tuple[str, Any]]:
    return {(name, getattr(cls, name)) for name in dir(cls) if not name.startswith("_")}


@pytest.mark.parametrize(
    ("sync_cls", "async_cls"),
    [(Store, AsyncStore), (ScopedStore, AsyncScopedStore), (Transaction, AsyncTransaction)],
    ids=["Store", "ScopedStore", "Transaction"],
)
def test_every_public_sync_method_has_an_async_twin_of_the_right_kind(
    sync_cls: type, async_cls: type
) -> None:
    missing = public_methods(sync_cls) - public_methods(async_cls)
    assert not missing, f"{async_cls.__name__} lacks {sorted(missing)}"
    for name in public_methods(sync_cls):
        method = getattr(async_cls, name)
        if name in ITERATORS:
            assert inspect.isasyncgenfunction(method), name
        elif name in PLAIN:
            assert not inspect.iscoroutinefunction(method), name
            assert not inspect.isasyncgenfunction(method), name
        else:
            assert inspect.iscoroutinefunction(method), name


@pytest.mark.parametrize("name", ["path", "closed"])
def test_store_properties_are_mirrored(name: str) -> None:
    assert isinstance(getattr(AsyncStore, name), property)


# -- opening and closing ---------------------------------------------------------------------------
def test_async_with_opens_on_the_worker_and_close_ends_the_worker_thread(tmp_path: Path) -> None:
    path = tmp_path / "a.db"

    async def main() -> None:
        before = len(aio_threads())
        store = AsyncStore(path, purge_interval=0)
        assert store.closed and store.path == str(path)
        async with store:
            assert not store.closed
            await store.set("g", "k", "v")
            assert len(aio_threads()) == before + 1
        assert store.closed
        assert len(aio_threads()) == before
        await store.close()  # idempotent

    run(main())
    with Store(path) as sync:
        assert sync.get("g", "k") == "v"


def test_open_classmethod_returns_an_open_store() -> None:
    async def main() -> None:
        store = await AsyncStore.open(purge_interval=0)
        try:
            await store.set("g", "k", "v")
            assert await store.get("g", "k") == "v"
        finally:
            await store.close()

    run(main())


def test_an_unopenable_path_raises_store_error_and_leaves_no_worker(tmp_path: Path) -> None:
    async def main() -> None:
        before = len(aio_threads())
        with pytest.raises(StoreError) as caught:
            await AsyncStore.open(tmp_path / "missing" / "x.db")
        for _ in range(100):  # the worker ends right after handing back the failure
            if len(aio_threads()) == before:
                break
            await asyncio.sleep(0.01)
        assert len(aio_threads()) == before
        assert caught.value.op == "store.open"

    run(main())


def test_calls_before_opening_raise_a_store_error_naming_the_operation() -> None:
    async def main() -> None:
        store = AsyncStore()
        with pytest.raises(StoreError, match=r"^store\.get: the store is not open"):
            await store.get("g", "k")
        with pytest.raises(StoreError, match=r"^store\.watch: the store is not open"):
            store.watch("g", "k")

    run(main())


def test_after_close_every_method_raises_the_sync_closed_error() -> None:
    with Store() as sync:
        pass
    with pytest.raises(StoreClosedError) as expected:
        sync.get("g", "k")

    async def main() -> None:
        store = await AsyncStore.open()
        scoped = store.scoped("t")
        await store.close()
        with pytest.raises(StoreClosedError) as caught:
            await store.get("g", "k")
        assert str(caught.value) == str(expected.value)
        with pytest.raises(StoreClosedError):
            await store.set("g", "k", "v")
        with pytest.raises(StoreClosedError):
            await scoped.set("g", "k", "v")
        with pytest.raises(StoreClosedError):
            [kv async for kv in store.all("g")]
        with pytest.raises(StoreClosedError):
            store.watch("g", "k")
        with pytest.raises(StoreClosedError):
            async with store.transaction():
                pass

    run(main())


def test_close_runs_after_the_calls_queued_before_it() -> None:
    async def main() -> int:
        store = await AsyncStore.open()
        writes = [asyncio.ensure_future(store.set("g", f"k{i}", "v")) for i in range(200)]
        await asyncio.sleep(0)  # every task has queued its call
        await store.close()
        await asyncio.gather(*writes)
        return len(writes)

    assert run(main()) == 200


# -- the API -------------------------------------------------------------------------------------
async def _exercise(api: Any, iterate: Callable[[Any], Awaitable[list[Any]]]) -> list[Any]:
    """The same calls on a sync Store (wrapped) or an AsyncStore; returns every result."""
    out: list[Any] = []
    await api.set("config", "colour", "blue")
    await api.set_with_ttl("config", "token", "t", 3600)
    await api.set_with_ttl("config", "gone", "x", timedelta(seconds=-1))
    await api.set_many("people", {"ann": "1", "bob": "2", "cy": "a  b\tc"})
    out.append(await api.get("config", "colour"))
    out.append(await api.exists("config", "gone"))
    out.append(await api.count("config"))
    out.append(await api.count_all())
    out.append(await api.count_all("peo"))
    out.append(await api.get_all("people"))
    out.append(await api.get_page("people", 1, 1))
    out.append(await api.groups())
    out.append(await api.groups("con"))
    out.append(await api.get_many("people", ["ann", "zed", "cy"]))
    out.append(await api.render("{{ colour }}/{{ token }}", "config"))
    out.append(await iterate(api.all("people")))
    out.append(await iterate(api.groups_iter()))
    out.append(await iterate(api.get_split("people", "cy", " ")))
    out.append(await iterate(api.get_fields("people", "cy")))
    out.append(await api.purge_expired())
    await api.delete("people", "ann")
    await api.delete("people", "nobody")
    out.append(await api.get_all("people"))
    await api.delete_group("people")
    out.append(await api.groups())
    await api.set("a:1", "k", "v")
    await api.set("a:2", "k", "v")
    out.append(await api.delete_prefix("a:"))
    out.append(await api.groups())
    return out


class _Awaitable:
    """The synchronous API with every method result wrapped in a finished future."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._target, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if name in ITERATORS:
                return result

            async def done() -> Any:
                return result

            return done()

        return call


async def _sync_list(items: Any) -> list[Any]:
    return list(items)


async def _async_list(items: Any) -> list[Any]:
    return [item async for item in items]


def test_every_method_returns_what_the_sync_store_returns() -> None:
    with Store(purge_interval=0) as sync:
        expected = run(_exercise(_Awaitable(sync), _sync_list))

    async def main() -> list[Any]:
        async with AsyncStore(purge_interval=0) as store:
            return await _exercise(store, _async_list)

    assert run(main()) == expected
    assert expected[0] == "blue" and expected[-1] == ["config"]


def test_every_scoped_method_returns_what_the_sync_scoped_store_returns() -> None:
    with Store(purge_interval=0) as sync:
        expected = run(_exercise(_Awaitable(sync.scoped("t1")), _sync_list))

    async def main() -> list[Any]:
        async with AsyncStore(purge_interval=0) as store:
            scoped = store.scoped("t1", QuotaConfig(max_keys=100))
            assert scoped.namespace == "t1" and scoped.store is store
            result = await _exercise(scoped, _async_list)
            assert await store.groups() == ["t1:config"]  # everything stayed inside t1
            return result

    assert run(main()) == expected


def test_async_iterators_stream_more_than_one_chunk_in_key_order() -> None:
    entries = {f"k{i:05d}": str(i) for i in range(1500)}

    async def main() -> list[KeyValue]:
        async with AsyncStore(purge_interval=0) as store:
            await store.set_many("g", entries)
            return [kv async for kv in store.all("g")]

    assert run(main()) == sorted(KeyValue(k, v) for k, v in entries.items())


def test_leaving_an_async_iterator_early_keeps_the_store_usable() -> None:
    async def main() -> int:
        async with AsyncStore(purge_interval=0) as store:
            await store.set_many("g", {f"k{i:05d}": "v" for i in range(2000)})
            async for _ in store.all("g"):
                break
            iterator = store.all("g")
            await iterator.__anext__()
            await iterator.aclose()
            return await store.count("g")

    assert run(main()) == 2000


def test_get_split_and_get_fields_raise_not_found_when_iteration_starts() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            split = store.get_split("g", "missing", ",")  # no error at the call
            fields = store.get_fields("g", "missing")
            with pytest.raises(NotFoundError):
                await split.__anext__()
            with pytest.raises(NotFoundError):
                await fields.__anext__()

    run(main())


# -- errors ---------------------------------------------------------------------------------------
ERROR_CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("get", ("g", "missing")),
    ("get", ("g", 1)),
    ("set", ("g", "k", "\ud800")),
    ("set", (None, "k", "v")),
    ("set_with_ttl", ("g", "k", "v", float("nan"))),
    ("set_many", ("g", ["not", "a", "mapping"])),
    ("get_page", ("g", -1)),
    ("render", ("{{ missing }}", "g")),
    ("render", ("{% broken", "g")),
    ("delete_prefix", (3,)),
]


@pytest.mark.parametrize(("name", "args"), ERROR_CALLS, ids=[f"{n}{a!r}" for n, a in ERROR_CALLS])
def test_errors_are_the_same_class_and_message_as_the_sync_api(
    name: str, args: tuple[Any, ...]
) -> None:
    kwargs = {"strict": True} if name == "render" else {}
    with Store(purge_interval=0) as sync:
        with pytest.raises(Exception) as expected:
            getattr(sync, name)(*args, **kwargs)

    async def main() -> BaseException:
        async with AsyncStore(purge_interval=0) as store:
            with pytest.raises(Exception) as caught:
                await getattr(store, name)(*args, **kwargs)
            assert await store.count("g") == 0  # nothing was written
            return caught.value

    error = run(main())
    assert type(error) is type(expected.value)
    assert str(error) == str(expected.value)


def test_quota_and_namespace_errors_match_the_sync_scoped_store() -> None:
    quota = QuotaConfig(max_keys=1)
    with Store(purge_interval=0) as sync:
        scoped = sync.scoped("t", quota)
        scoped.set("g", "a", "1")
        with pytest.raises(QuotaExceededError) as expected:
            scoped.set("g", "b", "2")
        with pytest.raises(gostore.InvalidNamespaceError) as expected_ns:
            sync.scoped("bad name")

    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            scoped = store.scoped("t", quota)
            await scoped.set("g", "a", "1")
            with pytest.raises(QuotaExceededError) as caught:
                await scoped.set("g", "b", "2")
            assert str(caught.value) == str(expected.value)
            with pytest.raises(gostore.InvalidNamespaceError) as caught_ns:
                store.scoped("bad name")
            assert str(caught_ns.value) == str(expected_ns.value)
            with pytest.raises(TypeError, match=r"^store\.unwatch: expected a Watcher, not int"):
                store.unwatch(1)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=r"^store\.on_change: callback must be callable"):
                store.on_change(1)  # type: ignore[arg-type]

    run(main())


# -- transactions ---------------------------------------------------------------------------------
def test_a_transaction_commits_on_leaving_and_sees_its_own_writes() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            async with store.transaction() as tx:
                await tx.set("accounts", "alice", "10")
                await tx.set_many("accounts", {"bob": "5"})
                assert await tx.count("accounts") == 2
                assert [kv.key async for kv in tx.all("accounts")] == ["alice", "bob"]
            assert await store.get_all("accounts") == {"alice": "10", "bob": "5"}
            assert "open" not in repr(tx)

    run(main())


def test_an_exception_in_the_block_rolls_back_and_propagates() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            await store.set("g", "kept", "1")
            with pytest.raises(ValueError, match="boom"):
                async with store.transaction() as tx:
                    await tx.set("g", "lost", "1")
                    await tx.delete("g", "kept")
                    raise ValueError("boom")
            assert await store.get_all("g") == {"kept": "1"}

    run(main())


def test_other_tasks_wait_for_the_transaction_instead_of_joining_it() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            with pytest.raises(RuntimeError):
                async with store.transaction() as tx:
                    await tx.set("g", "inside", "1")
                    other = asyncio.ensure_future(store.set("g", "outside", "1"))
                    reader = asyncio.ensure_future(store.count("g"))
                    await asyncio.sleep(0.05)
                    assert not other.done() and not reader.done()
                    assert await tx.get_all("g") == {"inside": "1"}
                    raise RuntimeError("roll back")
            await other
            assert await reader == 1  # it ran after the rollback, before nothing else
            assert await store.get_all("g") == {"outside": "1"}

    run(main())


def test_the_opening_tasks_store_calls_join_its_transaction() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            scoped = store.scoped("t")
            with pytest.raises(RuntimeError):
                async with store.transaction() as tx:
                    await store.set("g", "a", "1")  # joins: no deadlock
                    await scoped.set("g", "b", "2")
                    assert await tx.count("g") == 1
                    assert await store.count_all() == 2
                    raise RuntimeError("roll back")
            assert await store.count_all() == 0
            with pytest.raises(StoreError, match="cannot close inside an open transaction"):
                async with store.transaction():
                    await store.close()
            assert not store.closed

    run(main())


def test_nested_transactions_roll_back_only_the_inner_block() -> None:
    async def main() -> dict[str, str]:
        async with AsyncStore(purge_interval=0) as store:
            async with store.transaction() as outer:
                await outer.set("g", "outer", "1")
                with pytest.raises(KeyError):
                    async with store.transaction() as inner:
                        await inner.set("g", "inner", "1")
                        raise KeyError("inner")
                await outer.set("g", "after", "1")
            return await store.get_all("g")

    assert run(main()) == {"outer": "1", "after": "1"}


def test_a_scoped_transaction_is_checked_against_the_quota_as_a_whole() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            scoped = store.scoped("t", QuotaConfig(max_keys=2))
            async with scoped.transaction() as tx:
                assert isinstance(tx, AsyncScopedStore)
                await tx.set("g", "a", "1")
                await tx.set("g", "b", "2")
            with pytest.raises(QuotaExceededError):
                async with scoped.transaction() as tx:
                    await tx.delete("g", "a")
                    await tx.set("g", "c", "3")
                    await tx.set("g", "d", "4")
            assert await scoped.get_all("g") == {"a": "1", "b": "2"}
            assert await store.get_all("t:g") == {"a": "1", "b": "2"}

    run(main())


def test_a_transaction_object_refuses_calls_after_its_block() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            async with store.transaction() as tx:
                pass
            with pytest.raises(StoreError, match=r"^tx\.set: the transaction has ended"):
                await tx.set("g", "k", "v")
            assert await store.count("g") == 0

    run(main())


# -- cancellation ---------------------------------------------------------------------------------
def test_cancelling_a_large_set_many_leaves_it_whole_or_absent_and_the_store_usable() -> None:
    entries = {f"k{i:06d}": "v" for i in range(100_000)}

    async def main() -> tuple[int, str]:
        async with AsyncStore(purge_interval=0) as store:
            writer = asyncio.ensure_future(store.set_many("g", entries))
            await asyncio.sleep(0.005)  # the worker is inside the set_many by now
            writer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await writer
            count = await store.count("g")
            await store.set("other", "k", "v")
            return count, await store.get("other", "k")

    count, value = run(main())
    assert count in (0, len(entries))
    assert value == "v"


def test_cancelling_queued_writes_drops_or_completes_each_whole() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            blocker = asyncio.ensure_future(
                store.set_many("big", {f"k{i}": "v" for i in range(50_000)})
            )
            queued = [
                asyncio.ensure_future(store.set_many(f"g{i}", {"a": "1", "b": "2"}))
                for i in range(20)
            ]
            await asyncio.sleep(0)
            for task in queued:
                task.cancel()
            await asyncio.gather(*queued, return_exceptions=True)
            await blocker
            for i in range(20):
                assert await store.count(f"g{i}") in (0, 2)
            assert await store.count("big") == 50_000

    run(main())


def test_cancelling_a_task_inside_a_transaction_rolls_it_back_and_frees_the_store() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            inside = asyncio.Event()

            async def transfer() -> None:
                async with store.transaction() as tx:
                    await tx.set("accounts", "alice", "0")
                    inside.set()
                    await tx.set_many("accounts", {f"x{i}": "1" for i in range(50_000)})
                    await asyncio.sleep(10)  # never reached in time

            task = asyncio.ensure_future(transfer())
            await inside.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await store.count("accounts") == 0
            async with store.transaction() as tx:  # the worker serves new transactions
                await tx.set("accounts", "bob", "1")
            assert await store.get_all("accounts") == {"bob": "1"}

    run(main())


def test_cancelling_a_task_waiting_to_open_a_transaction_leaves_no_transaction_open() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            blocker = asyncio.ensure_future(
                store.set_many("big", {f"k{i}": "v" for i in range(30_000)})
            )

            async def waiting() -> None:
                async with store.transaction() as tx:
                    await tx.set("g", "k", "v")

            task = asyncio.ensure_future(waiting())
            await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await blocker
            await store.set("g", "after", "1")
            assert await store.get_all("g") == {"after": "1"}

    run(main())


# -- never blocking the loop ----------------------------------------------------------------------
def test_a_ticker_sees_no_gap_over_100ms_beside_a_200k_key_set_many_on_a_file(
    tmp_path: Path,
) -> None:
    entries = {f"key-{i:07d}": f"value-{i}" for i in range(200_000)}

    async def main() -> tuple[float, int]:
        async with AsyncStore(tmp_path / "big.db", purge_interval=0) as store:
            ticks: list[float] = []
            stop = False

            async def ticker() -> None:
                while not stop:
                    ticks.append(time.perf_counter())
                    await asyncio.sleep(0.005)

            tick_task = asyncio.ensure_future(ticker())
            await asyncio.sleep(0.02)
            await store.set_many("big", entries)
            stop = True
            await tick_task
            gaps = [b - a for a, b in itertools.pairwise(ticks)]
            return max(gaps), await store.count("big")

    worst, count = run(main())
    assert count == 200_000
    assert worst < 0.1, f"the event loop stalled for {worst * 1000:.0f} ms"


def test_get_in_memory_runs_on_the_loops_thread_while_the_worker_is_busy() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            await store.set("g", "k", "v")
            busy, release = threading.Event(), threading.Event()

            def occupy(event: Event) -> None:  # runs on the worker, inside the set below
                busy.set()
                release.wait(TIMEOUT)

            store.store.on_change(occupy)  # a sync callback: the worker's thread runs it
            writer = asyncio.ensure_future(store.set("other", "k", "v"))
            while not busy.is_set():
                await asyncio.sleep(0.001)
            for _ in range(3):  # the worker is stuck in the callback: these cannot use it
                assert await asyncio.wait_for(store.get("g", "k"), 1.0) == "v"
            with pytest.raises(NotFoundError, match=r"store\.get group='g' key='absent'"):
                await asyncio.wait_for(store.get("g", "absent"), 1.0)
            release.set()
            await writer

    run(main())


def test_set_and_get_in_memory_run_on_the_loops_thread_beside_a_long_call() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            # The worker renders for a while (no lock held: nothing else waits for it).
            slow = asyncio.ensure_future(
                store.render("{% for i in range(900000) %}{% endfor %}done", "g")
            )
            await asyncio.sleep(0.01)
            for i in range(50):
                await store.set("g", f"k{i}", str(i))
                assert await store.get("g", f"k{i}") == str(i)
            assert not slow.done(), "the worker was not busy: the test proves nothing"
            assert await slow == "done"
            assert store.store.get("g", "k49") == "49"

    run(main())


def test_a_set_someone_listens_to_goes_through_the_worker_and_its_callback_runs_first() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            seen: list[str] = []
            store.on_change(lambda event: seen.append(event.key))
            await store.set("g", "k", "v")
            assert seen == ["k"]
            with pytest.raises(TypeError):
                await store.set("g", "k", 1)  # type: ignore[arg-type]

    run(main())


def test_get_waits_on_the_worker_while_another_thread_holds_a_transaction() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            await store.set("g", "k", "before")
            sync = store.store
            opened, finish = threading.Event(), threading.Event()

            def hold() -> None:
                with sync.transaction() as tx:
                    tx.set("g", "k", "after")
                    opened.set()
                    finish.wait(TIMEOUT)

            holder = threading.Thread(target=hold)
            holder.start()
            await asyncio.get_running_loop().run_in_executor(None, opened.wait, TIMEOUT)
            reader = asyncio.ensure_future(store.get("g", "k"))
            ticks = 0
            for _ in range(5):  # the loop keeps running while the read waits
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks == 5 and not reader.done()
            finish.set()
            assert await reader == "after"  # never the open transaction's state
            await asyncio.get_running_loop().run_in_executor(None, holder.join, TIMEOUT)

    run(main())


def test_get_of_an_expired_key_deletes_it_through_the_worker() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            await store.set_with_ttl("g", "k", "v", 0.05)
            assert await store.get("g", "k") == "v"
            await asyncio.sleep(0.1)
            with pytest.raises(NotFoundError):
                await store.get("g", "k")
            assert await store.stats() == gostore.StoreStats(0, 0, 0, 0, 0, 0)

    run(main())


def test_many_concurrent_calls_are_completed_in_batches() -> None:
    async def main() -> tuple[int, int]:
        async with AsyncStore(purge_interval=0) as store:
            await store.set("g", "k", "v")
            loop = asyncio.get_running_loop()
            handoffs = 0
            real = loop.call_soon_threadsafe

            def counting(*args: Any, **kwargs: Any) -> Any:
                nonlocal handoffs
                handoffs += 1
                return real(*args, **kwargs)

            loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
            try:
                results = await asyncio.gather(*(store.get("g", "k") for _ in range(2000)))
            finally:
                del loop.call_soon_threadsafe
            assert results == ["v"] * 2000
            return handoffs, len(results)

    handoffs, calls = run(main())
    assert handoffs <= calls // 8


# -- events ---------------------------------------------------------------------------------------
def test_a_watcher_receives_awaited_writes_with_async_for_and_unwatch_ends_it() -> None:
    async def main() -> list[tuple[EventType, str]]:
        async with AsyncStore(purge_interval=0) as store:
            watcher = store.watch("g", "*")
            seen: list[tuple[EventType, str]] = []

            async def consume() -> None:
                async for event in watcher:
                    seen.append((event.type, event.key))

            consumer = asyncio.ensure_future(consume())
            await store.set("g", "a", "1")
            await store.set("other", "b", "1")
            await store.delete("g", "a")
            store.unwatch(watcher)
            await consumer  # ends once the worker has closed the watcher
            assert watcher.closed
            return seen

    assert run(main()) == [(EventType.SET, "a"), (EventType.DELETE, "a")]


def test_scoped_watch_sees_only_its_namespace() -> None:
    async def main() -> list[str]:
        async with AsyncStore(purge_interval=0) as store:
            scoped = store.scoped("t")
            watcher = scoped.watch("*", "*")
            await scoped.set("g", "k", "v")
            await store.set("g", "k", "v")
            scoped.unwatch(watcher)
            return [event.group async for event in watcher]

    assert run(main()) == ["t:g"]


def test_plain_and_coroutine_callbacks_run_on_the_loop_before_the_write_returns() -> None:
    async def main() -> None:
        async with AsyncStore(purge_interval=0) as store:
            loop_thread = threading.get_ident()
            plain: list[tuple[str, int]] = []
            started: list[str] = []
            finished: list[str] = []

            def on_plain(event: Event) -> None:
                plain.append((event.key, threading.get_ident()))

            async def on_coroutine(event: Event) -> None:
                assert threading.get_ident() == loop_thread
                started.append(event.key)
                await asyncio.sleep(0)
                finished.append(event.key)

            store.on_change(on_plain)
            unregister = store.on_change(on_coroutine)
            await store.set("g", "a", "1")
            assert plain == [("a", loop_thread)]
            assert started == ["a"]  # scheduled and started before the await returned
            async with store.transaction() as tx:
                await tx.set("g", "b", "1")
                await tx.set("g", "c", "1")
                assert [k for k, _ in plain] == ["a"]  # nothing before the commit
            assert [k for k, _ in plain] == ["a", "b", "c"]
            unregister()
            unregister()
            await store.set("g", "d", "1")
            await asyncio.sleep(0.01)
            assert finished == ["a", "b", "c"]
            assert [k for k, _ in plain] == ["a", "b", "c", "d"]

    run(main())


def test_callbacks_also_receive_changes_made_by_other_threads_through_the_sync_store() -> None:
    async def main() -> list[str]:
        async with AsyncStore(purge_interval=0) as store:
            got: asyncio.Queue[str] = asyncio.Queue()
            store.on_change(lambda event: got.put_nowait(event.key))
            thread = threading.Thread(target=store.store.set, args=("g", "from-thread", "v"))
            thread.start()
            await asyncio.get_running_loop().run_in_executor(None, thread.join)
            return [await asyncio.wait_for(got.get(), TIMEOUT)]

    assert run(main()) == ["from-thread"]


def test_failing_callbacks_are_logged_on_the_gostore_logger_and_do_not_reach_the_writer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> str:
        async with AsyncStore(purge_interval=0) as store:

            def bad_plain(event: Event) -> None:
                raise ValueError("plain failed")

            async def bad_coroutine(event: Event) -> None:
                raise ValueError("coroutine failed")

            store.on_change(bad_plain)
            store.on_change(bad_coroutine)
            await store.set("g", "k", "v")
            await asyncio.sleep(0.01)
            return await store.get("g", "k")

    with caplog.at_level(logging.ERROR, logger="gostore"):
        assert run(main()) == "v"
    messages = [r.getMessage() for r in caplog.records if r.name == "gostore"]
    assert any("on_change callback" in m and "bad_plain" in m for m in messages)
    assert any("on_change coroutine" in m and "bad_coroutine" in m for m in messages)
    failures = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert {str(e) for e in failures} == {"plain failed", "coroutine failed"}
