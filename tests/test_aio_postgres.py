"""gostore.aio on PostgreSQL: get and exists run on psycopg's async connections on the event
loop, beside each other and beside the worker; everything else runs on the worker as on
SQLite. Against the throwaway server of tests/pg_cluster.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import psycopg
import pytest

from gostore import Event, NotFoundError, StoreClosedError
from gostore.aio import AsyncStore

T = TypeVar("T")
TIMEOUT = 30.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


def test_get_and_exists_answer_as_the_sync_store(pg_url: str) -> None:
    async def main() -> None:
        async with AsyncStore(pg_url, purge_interval=0) as store:
            await store.set("g", "k", "välue\x00")
            assert await store.get("g", "k") == "välue\x00"
            assert await store.exists("g", "k")
            assert not await store.exists("g", "absent")
            with pytest.raises(NotFoundError, match=r"store\.get group='g' key='absent'"):
                await store.get("g", "absent")
            with pytest.raises(TypeError):
                await store.get("g", 1)  # type: ignore[arg-type]
            assert store.store.get("g", "k") == "välue\x00"

    run(main())


def test_an_expired_key_is_not_found_and_deleted(pg_url: str) -> None:
    async def main() -> None:
        async with AsyncStore(pg_url, purge_interval=0) as store:
            await store.set_with_ttl("g", "k", "v", 0.05)
            assert await store.get("g", "k") == "v"
            await asyncio.sleep(0.1)
            assert not await store.exists("g", "k")
            with pytest.raises(NotFoundError):
                await store.get("g", "k")
            assert (await store.stats()).expired == 0  # the get's lazy delete ran

    run(main())


def test_reads_do_not_wait_for_the_worker(pg_url: str) -> None:
    async def main() -> None:
        async with AsyncStore(pg_url, purge_interval=0) as store:
            await store.set("g", "k", "v")
            busy, release = threading.Event(), threading.Event()

            def occupy(event: Event) -> None:  # runs on the worker, inside the set below
                busy.set()
                release.wait(TIMEOUT)

            store.store.on_change(occupy)
            writer = asyncio.ensure_future(store.set("other", "k", "v"))
            while not busy.is_set():
                await asyncio.sleep(0.001)
            reads = [store.get("g", "k") for _ in range(20)] + [store.exists("g", "k")]
            assert await asyncio.wait_for(asyncio.gather(*reads), 5.0) == ["v"] * 20 + [True]
            release.set()
            await writer

    run(main())


def test_other_tasks_read_the_committed_state_beside_an_open_transaction(pg_url: str) -> None:
    async def main() -> None:
        async with AsyncStore(pg_url, purge_interval=0) as store:
            await store.set("g", "k", "before")
            inside, leave = asyncio.Event(), asyncio.Event()

            async def writer() -> None:
                async with store.transaction() as tx:
                    await tx.set("g", "k", "during")
                    assert await store.get("g", "k") == "during"  # its own task: joins it
                    inside.set()
                    await leave.wait()

            task = asyncio.ensure_future(writer())
            await inside.wait()
            assert await asyncio.wait_for(store.get("g", "k"), 5.0) == "before"
            leave.set()
            await task
            assert await store.get("g", "k") == "during"

    run(main())


def sessions(url: str) -> int:
    """gostore's sessions on the server now (the sync engine's and the async reads')."""
    with psycopg.connect(url, autocommit=True) as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gostore'"
        return int(conn.execute(query).fetchone()[0])  # type: ignore[index]


def test_many_tasks_read_at_once_on_several_connections(pg_url: str) -> None:
    async def main() -> tuple[int, int]:
        async with AsyncStore(pg_url, purge_interval=0) as store:
            await store.set_many("g", {f"k{i}": f"v{i}" for i in range(200)})
            before = sessions(pg_url)
            values = await asyncio.gather(*(store.get("g", f"k{i}") for i in range(200)))
            assert values == [f"v{i}" for i in range(200)]
            return before, sessions(pg_url)

    before, after = run(main())
    assert after >= before + 2, "the reads did not spread over several connections"


def test_reads_after_close_raise_the_closed_error(pg_url: str) -> None:
    async def main() -> None:
        store = await AsyncStore.open(pg_url, purge_interval=0)
        await store.set("g", "k", "v")
        await store.close()
        with pytest.raises(StoreClosedError):
            await store.get("g", "k")
        with pytest.raises(StoreClosedError):
            await store.exists("g", "k")

    run(main())
