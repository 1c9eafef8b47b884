"""Child-process programs for the change feed tests (run as a script, never imported).

    feed_child.py writer DB ID COUNT [PAUSE]   COUNT sets to group "w<ID>", keys k0..k9, values 0..
    feed_child.py watcher DB EXPECT [SINCE]    prints "ready", then one line per event received
                                               ("seq type group key value") until EXPECT events

Every line is written with os.write as soon as it is known, so a parent that kills the
process knows exactly which events it had received.
"""

from __future__ import annotations

import os
import sys
import time

import gostore

KEYS = 10


def out(line: str) -> None:
    os.write(1, (line + "\n").encode())


def writer(path: str, ident: str, count: int, pause: float) -> None:
    with gostore.Store(path, change_feed=True, purge_interval=0, synchronous="normal") as store:
        for n in range(count):
            store.set(f"w{ident}", f"k{n % KEYS}", str(n))
            if pause:
                time.sleep(pause)


def watcher(path: str, expect: int, since: int | None) -> None:
    with gostore.Store(path, change_feed=True, purge_interval=0) as store:
        with store.watch("*", "*", buffer=100_000, since=since) as w:
            out("ready")
            deadline = time.monotonic() + 60
            for _ in range(expect):
                event = w.get(timeout=max(0.0, deadline - time.monotonic()))
                if event is None:
                    sys.exit("watcher: timed out")
                out(f"{event.seq} {event.type} {event.group} {event.key} {event.value}")
            if w.dropped:
                sys.exit(f"watcher: dropped {w.dropped}")


if __name__ == "__main__":
    mode, db, *rest = sys.argv[1:]
    if mode == "writer":
        writer(db, rest[0], int(rest[1]), float(rest[2]) if len(rest) > 2 else 0.0)
    elif mode == "watcher":
        watcher(db, int(rest[0]), int(rest[1]) if len(rest) > 1 else None)
    else:
        sys.exit(f"unknown mode {mode!r}")
