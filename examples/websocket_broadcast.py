"""Broadcasting store changes to WebSocket clients, go-store's integration point.

In Go, go-ws broadcasts a store's changes with one callback::

    unreg := store.OnChange(func(e store.Event) { hub.SendToChannel("store-events", e) })

This example does the same with asyncio. ``store.on_change`` runs the callback in the writing
thread right after the commit, so the hub hands each message to the event loop with
``call_soon_threadsafe`` and never blocks the writer. The WebSocket side is a tiny in-process
fake (``FakeWebSocket``, ``Hub``): no network and no third-party packages. In a real server each
``FakeWebSocket`` would be a connection from a WebSocket library, and ``_fan_out`` would schedule
its ``send``.

An asyncio task also reads a watcher with ``async for``, which waits without blocking the loop.

Run: ``python examples/websocket_broadcast.py``
"""

from __future__ import annotations

import asyncio
import json

import gostore

CHANNEL = "store-events"


class FakeWebSocket:
    """Stands in for one client connection; ``send_nowait`` queues a text frame for it."""

    def __init__(self, name: str, capacity: int = 64) -> None:
        self.name = name
        self.dropped = 0  # a slow client loses frames rather than slowing everyone down
        self._frames: asyncio.Queue[str | None] = asyncio.Queue(maxsize=capacity)

    def send_nowait(self, frame: str) -> None:
        try:
            self._frames.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped += 1

    def close(self) -> None:
        self._frames.put_nowait(None)

    async def recv(self) -> str | None:
        """The next frame, or ``None`` once the connection is closed."""
        return await self._frames.get()


class Hub:
    """go-ws's hub in miniature: named channels of subscribed connections."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._channels: dict[str, list[FakeWebSocket]] = {}

    def subscribe(self, channel: str, client: FakeWebSocket) -> None:
        self._channels.setdefault(channel, []).append(client)

    def send_to_channel(self, channel: str, message: dict[str, object]) -> None:
        """Queue ``message`` for every subscriber; safe to call from any thread."""
        frame = json.dumps(message)
        self._loop.call_soon_threadsafe(self._fan_out, channel, frame)

    def _fan_out(self, channel: str, frame: str) -> None:
        for client in self._channels.get(channel, ()):
            client.send_nowait(frame)

    def close_all(self) -> None:
        for clients in self._channels.values():
            for client in clients:
                client.close()


def event_message(event: gostore.Event) -> dict[str, object]:
    return {"type": str(event.type), "group": event.group, "key": event.key, "value": event.value}


async def browser(client: FakeWebSocket) -> int:
    """A connected client: prints what it receives until the connection closes."""
    received = 0
    while (frame := await client.recv()) is not None:
        received += 1
        print(f"[{client.name}] {frame}")
    return received


async def audit(watcher: gostore.Watcher) -> None:
    """Reads a watcher from the event loop; ends when the watcher is closed and drained."""
    async for event in watcher:
        print(f"[audit watcher] {event.type} {event.group}/{event.key}")


async def serve() -> None:
    hub = Hub(asyncio.get_running_loop())
    with gostore.Store(purge_interval=0) as store:
        # The integration point: every committed change goes to the hub's channel.
        unregister = store.on_change(
            lambda event: hub.send_to_channel(CHANNEL, event_message(event))
        )
        clients = [FakeWebSocket("browser-1"), FakeWebSocket("browser-2")]
        for client in clients:
            hub.subscribe(CHANNEL, client)
        readers = [asyncio.create_task(browser(client)) for client in clients]
        watcher = store.watch("config", "*")
        auditor = asyncio.create_task(audit(watcher))

        # Short writes can run on the loop; longer ones go to a worker thread. Both broadcast.
        store.set("config", "theme", "dark")
        await asyncio.to_thread(store.set_many, "config", {"lang": "en", "tz": "UTC"})
        await asyncio.to_thread(store.delete, "config", "tz")
        store.set("presence", "alice", "online")  # broadcast, but not in the watched group
        store.delete_group("presence")

        # Shut down in order: stop broadcasting, close the connections after the frames
        # already queued (the loop runs callbacks first in, first out), close the watcher.
        unregister()
        asyncio.get_running_loop().call_soon(hub.close_all)
        store.unwatch(watcher)
        counts = await asyncio.gather(*readers)
        await auditor
    for client, count in zip(clients, counts, strict=True):
        print(f"{client.name} received {count} frames, dropped {client.dropped}")


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
