"""The change feed's figures, from one run on one machine (ratios and milliseconds):

* latency from a commit in one process to the event in another (file store, p50 and p99);
* CPU used by an idle store with the feed on and a watcher waiting (share of one core);
* a file-backed ``set`` with the feed on against one without, at ``synchronous="normal"``
  (median of several alternating rounds).

    python benchmarks/bench_feed.py [--writes 300] [--idle 5] [--sets 2000] [--rounds 5]

With ``--db postgresql://...`` the same figures are taken on PostgreSQL (each in a schema of its
own, dropped at the end, so the store without the feed has no trigger on its table), plus the
price of the feed's commit-order lock: sets from ``--threads`` threads at once, feed on / off.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import gostore

WRITER = """
import sys, time, random, gostore
path, count = sys.argv[1], int(sys.argv[2])
low, high = float(sys.argv[3]), float(sys.argv[4])
with gostore.Store(path, change_feed=True, purge_interval=0, synchronous="normal") as store:
    sys.stdin.readline()  # the watcher is ready
    stamps = []
    for n in range(count):
        time.sleep(random.uniform(low, high))
        store.set("latency", "k", str(n))
        stamps.append(time.monotonic())  # the commit is done: CLOCK_MONOTONIC is system-wide
    print(" ".join(map(repr, stamps)))
"""


def latency(
    directory: Path, count: int, gap: tuple[float, float], url: str | None = None
) -> tuple[float, float]:
    """Commit -> event, with ``gap`` seconds (a random range) between commits."""
    path: Path | str = url or directory / f"latency-{gap[0]}.db"
    received: dict[int, float] = {}
    with gostore.Store(path, change_feed=True, purge_interval=0) as store:
        with store.watch("latency", "k", buffer=count + 1) as watcher:
            child = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(path), str(count), *map(str, gap)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write("go\n")
            child.stdin.flush()
            while len(received) < count:
                event = watcher.get(timeout=10)
                if event is None:
                    raise SystemExit("latency: the events stopped arriving")
                received[int(event.value)] = time.monotonic()
            stamps = [float(s) for s in child.stdout.readline().split()]
            child.wait()
    waits = sorted((received[n] - stamps[n]) * 1000 for n in range(count))
    return statistics.median(waits), waits[min(len(waits) - 1, int(len(waits) * 0.99))]


def idle_cpu(target: Path | str, seconds: float) -> float:
    with gostore.Store(target, change_feed=True, purge_interval=0) as store:
        with store.watch("*", "*"):
            time.sleep(0.5)  # past the fast polling that follows opening
            cpu, wall = time.process_time(), time.monotonic()
            time.sleep(seconds)
            return (time.process_time() - cpu) / (time.monotonic() - wall)


def set_rate(path: Path | str, feed: bool, count: int) -> float:
    with gostore.Store(path, change_feed=feed, purge_interval=0, synchronous="normal") as store:
        started = time.perf_counter()
        for n in range(count):
            store.set("g", f"k{n % 500}", "value")
        return (time.perf_counter() - started) / count


def threaded_rate(url: str, feed: bool, threads: int, count: int) -> float:
    """Seconds per set with ``threads`` threads setting keys of their own at once."""
    with gostore.Store(url, change_feed=feed, purge_interval=0) as store:

        def work(n: int) -> None:
            for i in range(count):
                store.set(f"t{n}", f"k{i % 100}", "value")

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return (time.perf_counter() - started) / (threads * count)


def in_schema(url: str, schema: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def drop_schemas(url: str, *schemas: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def postgres(args: argparse.Namespace) -> None:
    url = args.db
    names = ("gostore_bench_feed_on", "gostore_bench_feed_off", "gostore_bench_latency")
    on, off, lat = (in_schema(url, name) for name in names)
    try:
        plain, with_feed, plain_t, feed_t = [], [], [], []
        for _ in range(args.rounds):
            plain.append(set_rate(off, False, args.sets))
            with_feed.append(set_rate(on, True, args.sets))
            plain_t.append(threaded_rate(off, False, args.threads, args.sets // args.threads))
            feed_t.append(threaded_rate(on, True, args.threads, args.sets // args.threads))
        ratio = statistics.median(with_feed) / statistics.median(plain)
        ratio_t = statistics.median(feed_t) / statistics.median(plain_t)
        cpu = idle_cpu(lat, args.idle)
        with tempfile.TemporaryDirectory() as tmp:
            p50, p99 = latency(Path(tmp), args.writes, (0.002, 0.012), lat)
            sparse50, sparse99 = latency(Path(tmp), max(20, args.writes // 5), (0.25, 0.35), lat)
    finally:
        drop_schemas(url, *names)
    mode = "compiled" if gostore.SPEEDUPS else "pure"
    print(f"gostore change feed on PostgreSQL ({mode}), one run:")
    print(f"  commit -> event in another process: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(f"  the same after idle gaps of 0.3 s: p50 {sparse50:.2f} ms, p99 {sparse99:.2f} ms")
    print(f"  idle store with the feed on and a watcher: {cpu * 100:.2f}% of a core")
    print(
        f"  set, one thread: feed on / feed off = {ratio:.2f}x "
        f"({statistics.median(plain) * 1e6:.0f} us without)"
    )
    print(
        f"  set, {args.threads} threads at once: feed on / feed off = {ratio_t:.2f}x "
        f"({statistics.median(plain_t) * 1e6:.0f} us a set without)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="a postgresql:// URL: take the figures on PostgreSQL")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--sets", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.db:
        postgres(args)
        return
    mode = "compiled" if gostore.SPEEDUPS else "pure"
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        plain, with_feed = [], []
        for _ in range(args.rounds):
            plain.append(set_rate(directory / "plain.db", False, args.sets))
            with_feed.append(set_rate(directory / "feed.db", True, args.sets))
        ratio = statistics.median(with_feed) / statistics.median(plain)
        cpu = idle_cpu(directory / "idle.db", args.idle)
        p50, p99 = latency(directory, args.writes, (0.002, 0.012))
        sparse50, sparse99 = latency(directory, max(20, args.writes // 5), (0.25, 0.35))
    print(f"gostore change feed ({mode}), one run:")
    print(f"  commit -> event in another process: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(
        f"  the same after idle gaps of 0.3 s: p50 {sparse50:.2f} ms, p99 {sparse99:.2f} ms"
    )
    print(f"  idle store with the feed on and a watcher: {cpu * 100:.2f}% of a core")
    print(f"  file-backed set, synchronous=normal: feed on / feed off = {ratio:.2f}x")


if __name__ == "__main__":
    main()
