"""The change feed's figures, from one run on one machine (ratios and milliseconds):

* latency from a commit in one process to the event in another (file store, p50 and p99);
* CPU used by an idle store with the feed on and a watcher waiting (share of one core);
* a file-backed ``set`` with the feed on against one without, at ``synchronous="normal"``
  (median of several alternating rounds).

    python benchmarks/bench_feed.py [--writes 300] [--idle 5] [--sets 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
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


def latency(directory: Path, count: int, gap: tuple[float, float]) -> tuple[float, float]:
    """Commit -> event, with ``gap`` seconds (a random range) between commits."""
    path = directory / f"latency-{gap[0]}.db"
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


def idle_cpu(directory: Path, seconds: float) -> float:
    with gostore.Store(directory / "idle.db", change_feed=True, purge_interval=0) as store:
        with store.watch("*", "*"):
            time.sleep(0.5)  # past the fast polling that follows opening
            cpu, wall = time.process_time(), time.monotonic()
            time.sleep(seconds)
            return (time.process_time() - cpu) / (time.monotonic() - wall)


def set_rate(path: Path, feed: bool, count: int) -> float:
    with gostore.Store(path, change_feed=feed, purge_interval=0, synchronous="normal") as store:
        started = time.perf_counter()
        for n in range(count):
            store.set("g", f"k{n % 500}", "value")
        return (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--sets", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    mode = "compiled" if gostore.SPEEDUPS else "pure"
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        plain, with_feed = [], []
        for _ in range(args.rounds):
            plain.append(set_rate(directory / "plain.db", False, args.sets))
            with_feed.append(set_rate(directory / "feed.db", True, args.sets))
        ratio = statistics.median(with_feed) / statistics.median(plain)
        cpu = idle_cpu(directory, args.idle)
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
