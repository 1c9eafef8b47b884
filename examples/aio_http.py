"""A FastAPI-style key-value HTTP service on ``gostore.aio``, with nothing but the standard library.

The handlers are written as they would be in FastAPI or aiohttp: one ``async def`` per route,
path parameters as arguments, the store opened once at start-up and shared. Here a tiny
``App`` routes requests that ``asyncio.start_server`` parses, so the example runs without any
third-party package; with FastAPI the handlers would keep their bodies and gain
``@app.get(...)`` from FastAPI instead (open the store in the app's lifespan).

Every store call is awaited: the store's worker thread runs it, so the event loop keeps
serving other requests meanwhile. The counter route reads and writes in one async
transaction, so 50 concurrent increments count to exactly 50.

The script starts the server on a free local port, sends requests to it like a client would,
prints what it gets back, and stops.

Run: ``python examples/aio_http.py``
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable

import gostore
from gostore.aio import AsyncStore

Response = tuple[int, str]
Handler = Callable[..., Awaitable[Response]]
REASONS = {200: "OK", 204: "No Content", 404: "Not Found", 405: "Method Not Allowed"}


class App:
    """Just enough of a web framework: ``@app.route("GET", "/kv/{group}/{key}")``."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")

        def register(handler: Handler) -> Handler:
            self.routes.append((method, pattern, handler))
            return handler

        return register

    async def dispatch(self, method: str, path: str, body: str) -> Response:
        allowed = False
        for route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if match is None:
                continue
            allowed = True
            if route_method == method:
                params = match.groupdict()
                if method == "PUT":
                    params["body"] = body
                return await handler(**params)
        return (405, "method not allowed\n") if allowed else (404, "no such route\n")

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One HTTP/1.1 request per connection (``Connection: close``)."""
        request_line = (await reader.readline()).decode()
        method, path, _ = request_line.split(" ", 2)
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        body = (await reader.readexactly(length)).decode() if length else ""
        status, text = await self.dispatch(method, path, body)
        payload = text.encode()
        writer.write(
            f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Length: {len(payload)}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()


app = App()
store = AsyncStore(purge_interval=0)  # opened at start-up, in main()


@app.route("GET", "/kv/{group}/{key}")
async def read_key(group: str, key: str) -> Response:
    try:
        return 200, await store.get(group, key) + "\n"
    except gostore.NotFoundError:
        return 404, f"{group}/{key} not found\n"


@app.route("PUT", "/kv/{group}/{key}")
async def write_key(group: str, key: str, body: str) -> Response:
    await store.set(group, key, body)
    return 204, ""


@app.route("DELETE", "/kv/{group}/{key}")
async def delete_key(group: str, key: str) -> Response:
    await store.delete(group, key)
    return 204, ""


@app.route("GET", "/kv/{group}")
async def list_group(group: str) -> Response:
    # Streamed from the store a chunk at a time; a large group never blocks the loop.
    entries = {entry.key: entry.value async for entry in store.all(group)}
    return 200, json.dumps(entries, sort_keys=True) + "\n"


@app.route("POST", "/counters/{name}")
async def increment(name: str) -> Response:
    async with store.transaction() as tx:  # other requests' calls wait until it commits
        counts = await tx.get_many("counters", [name])
        current = int(counts.get(name, "0")) + 1
        await tx.set("counters", name, str(current))
    return 200, f"{current}\n"


async def request(port: int, method: str, path: str, body: str = "") -> str:
    """A minimal HTTP client: returns ``"<status> <body>"``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = body.encode()
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(payload)}\r\n"
        f"Connection: close\r\n\r\n".encode()
        + payload
    )
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, text = response.decode().partition("\r\n\r\n")
    return f"{head.split(' ')[1]} {text.strip()}".rstrip()


async def run() -> None:
    async with store:  # the lifespan: open the store off the loop, close it at shutdown
        server = await asyncio.start_server(app.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            for method, path, body in [
                ("PUT", "/kv/config/colour", "blue"),
                ("PUT", "/kv/config/size", "XL"),
                ("GET", "/kv/config/colour", ""),
                ("GET", "/kv/config", ""),
                ("DELETE", "/kv/config/size", ""),
                ("GET", "/kv/config/size", ""),
                ("PATCH", "/kv/config/size", ""),
            ]:
                print(f"{method} {path} -> {await request(port, method, path, body)}")
            replies = await asyncio.gather(
                *(request(port, "POST", "/counters/hits") for _ in range(50))
            )
            print(f"50 concurrent POST /counters/hits -> {len(set(replies))} distinct replies")
            print(f"GET /kv/counters/hits -> {await request(port, 'GET', '/kv/counters/hits')}")
    print(f"server stopped; store closed: {store.closed}")


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
