"""Awaited calls per second through gostore.aio, against the synchronous API on the same data.

Run by hand (not collected by pytest): ``python benchmarks/bench_aio.py [--calls N]``.

It measures, on an in-memory store holding 1,000 keys:

* ``sync get``: ``Store.get`` in a plain loop, the floor;
* ``aio get, sequential``: one task awaiting one ``AsyncStore.get`` after another (every call
  pays a round trip to the worker thread and back);
* ``aio get, gather(N)``: N tasks awaiting gets at once (the worker runs them back to back and
  completes the futures in batches);
* ``to_thread get, sequential``: ``asyncio.to_thread(store.get, ...)``, the usual alternative,
  for comparison;
* the ``set`` rows: the same for writes.

Each figure is the best of ``--repeat`` runs. Ratios are against ``sync get``/``sync set``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import gostore
from gostore.aio import AsyncStore

KEYS = [f"key-{i}" for i in range(1000)]


def best(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def sync_rate(store: gostore.Store, calls: int, write: bool) -> float:
    get, set_ = store.get, store.set
    n = len(KEYS)
    start = time.perf_counter()
    if write:
        for i in range(calls):
            set_("bench", KEYS[i % n], "v")
    else:
        for i in range(calls):
            get("bench", KEYS[i % n])
    return time.perf_counter() - start


async def sequential(call: Callable[[int], Awaitable[object]], calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        await call(i)
    return time.perf_counter() - start


async def gathered(call: Callable[[int], Awaitable[object]], calls: int, width: int) -> float:
    async def task(first: int) -> None:
        for i in range(first, calls, width):
            await call(i)

    start = time.perf_counter()
    await asyncio.gather(*(task(n) for n in range(width)))
    return time.perf_counter() - start


async def measure(calls: int, repeat: int, width: int) -> list[tuple[str, float, float]]:
    n = len(KEYS)
    rows: list[tuple[str, float, float]] = []
    async with AsyncStore(purge_interval=0) as store:
        await store.set_many("bench", {k: "v" for k in KEYS})
        sync = store.store
        for label, write in (("get", False), ("set", True)):
            floor = best(repeat, lambda w=write: sync_rate(sync, calls, w))  # type: ignore[misc]
            rows.append((f"sync {label}", floor, floor))
            if write:
                def one(i: int) -> Awaitable[object]:
                    return store.set("bench", KEYS[i % n], "v")

                def hop(i: int) -> Awaitable[object]:
                    return asyncio.to_thread(sync.set, "bench", KEYS[i % n], "v")
            else:
                def one(i: int) -> Awaitable[object]:
                    return store.get("bench", KEYS[i % n])

                def hop(i: int) -> Awaitable[object]:
                    return asyncio.to_thread(sync.get, "bench", KEYS[i % n])

            times = [await sequential(one, calls) for _ in range(repeat)]
            rows.append((f"aio {label}, sequential", min(times), floor))
            times = [await gathered(one, calls, width) for _ in range(repeat)]
            rows.append((f"aio {label}, gather({width})", min(times), floor))
            times = [await sequential(hop, calls // 10) * 10 for _ in range(repeat)]
            rows.append((f"to_thread {label}, sequential", min(times), floor))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--width", type=int, default=100, help="tasks in the gather rows")
    args = parser.parse_args()
    rows = asyncio.run(measure(args.calls, args.repeat, args.width))
    mode = "compiled" if gostore.SPEEDUPS else "pure"
    print(f"gostore.aio, {args.calls} calls, best of {args.repeat}, {mode} speed-ups")
    print(f"{'':30} {'calls/s':>10} {'us/call':>8} {'x sync':>7}")
    for label, seconds, floor in rows:
        rate, micros = args.calls / seconds, seconds / args.calls * 1e6
        print(f"{label:30} {rate:>10,.0f} {micros:>8.2f} {seconds / floor:>7.1f}")


if __name__ == "__main__":
    main()
