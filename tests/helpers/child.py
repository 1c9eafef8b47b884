"""Child-process programs for the process and crash tests (run as a script, never imported).

Every acknowledgement is written to stdout with os.write only after the gostore call returned,
so the parent knows exactly which writes were acknowledged before a kill.

    child.py writer DB ID COUNT      overlapping writes to "shared" plus one unique "log" key each
    child.py reader DB STOPFILE      reads until STOPFILE exists, then prints how many reads ran
    child.py holder DB               holds a write transaction until a line arrives on stdin
    child.py crasher DB RUN [SYNC]   writes forever (set, set_many, transaction) until killed
"""

from __future__ import annotations

import os
import sys
import time

import gostore

SHARED_KEYS = 8
BATCH = 5


def ack(line: str) -> None:
    os.write(1, (line + "\n").encode())


def writer(path: str, ident: str, count: int) -> None:
    with gostore.Store(path, purge_interval=0) as store:
        for seq in range(count):
            began = time.monotonic()
            try:
                _write(store, ident, seq)
            except gostore.StoreError:
                sys.stderr.write(f"write {seq} failed after {time.monotonic() - began:.2f} s\n")
                raise
            ack(str(seq))


def _write(store: gostore.Store, ident: str, seq: int) -> None:
    key, other = f"k{seq % SHARED_KEYS}", f"k{(seq + 3) % SHARED_KEYS}"
    value = f"{ident}-{seq}"
    if seq % 3 == 0:
        store.set("shared", key, value)
        store.set("log", value, key)
    elif seq % 3 == 1:
        store.set_many("shared", {key: value, other: value})
        store.set_many("log", {value: key})
    else:
        with store.transaction() as tx:
            tx.set("shared", key, value)
            tx.set("log", value, key)


def reader(path: str, stop_file: str) -> None:
    reads = 0
    with gostore.Store(path, purge_interval=0) as store:
        while not os.path.exists(stop_file):
            store.get_all("shared")
            store.count("log")
            store.groups()
            list(store.all("log"))
            reads += 4
    ack(str(reads))


def holder(path: str) -> None:
    with gostore.Store(path, purge_interval=0) as store, store.transaction() as tx:
        tx.set("held", "k", "v")
        ack("locked")
        sys.stdin.readline()


def crasher(path: str, run: str, synchronous: str = "full") -> None:
    with gostore.Store(path, purge_interval=0, synchronous=synchronous) as store:
        ack("open")
        seq = 0
        while True:
            name = f"r{run}-{seq}"
            if seq % 3 == 0:
                store.set("single", name, "x" * (seq % 50))
                ack(f"single {name}")
            elif seq % 3 == 1:
                store.set_many("batch", {f"{name}-{i}": str(i) * 40 for i in range(BATCH)})
                ack(f"batch {name}")
            else:
                with store.transaction() as tx:
                    for i in range(BATCH):
                        tx.set("tx", f"{name}-{i}", "y" * 30)
                    tx.delete("single", f"r{run}-{seq - 2}")
                    tx.set("meta", f"last-r{run}", name)
                ack(f"tx {name}")
            seq += 1


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "writer":
        writer(args[0], args[1], int(args[2]))
    elif mode == "reader":
        reader(args[0], args[1])
    elif mode == "holder":
        holder(args[0])
    elif mode == "crasher":
        crasher(*args)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    started = time.monotonic()
    try:
        main()
    except gostore.StoreError as exc:
        # Diagnostics for the parent's failure message: SQLite's extended code and the time.
        cause = exc.__cause__
        code = getattr(cause, "extendedresult", None)
        sys.stderr.write(f"after {time.monotonic() - started:.2f} s, extended result {code}\n")
        raise
