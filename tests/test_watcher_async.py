"""``async for`` over a Watcher, from an asyncio event loop, without blocking it.

Each test runs its own loop with ``asyncio.run`` (no pytest plugin needed); every await that
depends on another thread has a timeout so a lost wake-up fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from gostore import Event, EventType, Store, Watcher

TIMEOUT = 10.0


async def collect(watcher: Watcher, count: int) -> list[Event]:
    events: list[Event] = []
    async for event in watcher:
        events.append(event)
        if len(events) == count:
            break
    return events


def test_async_for_receives_events_from_another_thread_while_the_loop_keeps_running(
    store: Store,
) -> None:
    watcher = store.watch("g", "*")
    loop_alive = threading.Event()

    def writer() -> None:
        # Writes only once the ticker has run while the consumer was already waiting: a
        # pending __anext__ that blocked the loop would stop the ticker and this thread.
        if loop_alive.wait(TIMEOUT):
            for i in range(5):
                store.set("g", f"k{i}", str(i))
        else:  # the loop is stuck: closing the watcher frees a blocking reader, the test fails
            store.unwatch(watcher)

    async def ticker(ticks: list[int]) -> None:
        while True:
            await asyncio.sleep(0.001)
            ticks.append(1)
            if len(ticks) == 20:
                loop_alive.set()

    async def main() -> tuple[list[Event], int]:
        ticks: list[int] = []
        consumer = asyncio.create_task(collect(watcher, 5))
        await asyncio.sleep(0)  # the consumer is now parked in __anext__
        tick_task = asyncio.create_task(ticker(ticks))
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            events = await asyncio.wait_for(consumer, TIMEOUT)
        finally:
            tick_task.cancel()
            await asyncio.to_thread(thread.join)
        return events, len(ticks)

    events, ticks = asyncio.run(main())
    assert [(e.type, e.key, e.value) for e in events] == [
        (EventType.SET, f"k{i}", str(i)) for i in range(5)
    ]
    assert ticks >= 20


def test_async_for_ends_when_the_watcher_is_closed_from_another_thread(store: Store) -> None:
    watcher = store.watch("g", "k")

    async def main() -> list[Event]:
        events: list[Event] = []

        async def consume() -> None:
            async for event in watcher:
                events.append(event)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        await asyncio.to_thread(store.set, "g", "k", "v")
        await asyncio.to_thread(store.unwatch, watcher)
        await asyncio.wait_for(task, TIMEOUT)
        return events

    assert [e.value for e in asyncio.run(main())] == ["v"]


def test_async_for_drains_buffered_events_then_stops_after_store_close() -> None:
    store = Store(purge_interval=0)
    watcher = store.watch("g", "*")
    store.set("g", "a", "1")
    store.set("g", "b", "2")
    store.close()

    async def main() -> list[str]:
        return [event.key async for event in watcher]

    assert asyncio.run(asyncio.wait_for(main(), TIMEOUT)) == ["a", "b"]


def test_cancelled_anext_does_not_lose_a_later_event(store: Store) -> None:
    watcher = store.watch("g", "k")

    async def main() -> Event:
        pending = asyncio.ensure_future(watcher.__anext__())
        await asyncio.sleep(0)  # let it park on its future
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        await asyncio.to_thread(store.set, "g", "k", "after-cancel")
        return await asyncio.wait_for(watcher.__anext__(), TIMEOUT)

    assert asyncio.run(main()).value == "after-cancel"


def test_timed_out_anext_leaves_the_event_for_the_next_reader(store: Store) -> None:
    watcher = store.watch("g", "k")

    async def main() -> tuple[Event, Event | None]:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(watcher.__anext__(), 0.01)
        await asyncio.to_thread(store.set, "g", "k", "v")
        first = await asyncio.wait_for(watcher.__anext__(), TIMEOUT)
        return first, watcher.get_nowait()

    first, rest = asyncio.run(main())
    assert first.value == "v"
    assert rest is None  # delivered once, not twice


def test_two_event_loops_can_read_one_watcher_in_turn(store: Store) -> None:
    watcher = store.watch("g", "k")

    async def next_event() -> Event:
        return await asyncio.wait_for(watcher.__anext__(), TIMEOUT)

    store.set("g", "k", "1")
    assert asyncio.run(next_event()).value == "1"
    store.set("g", "k", "2")
    assert asyncio.run(next_event()).value == "2"
