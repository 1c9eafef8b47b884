"""Events across processes: four workers share one file with the change feed on. Each worker
changes its own key and learns of every other worker's change; then a worker that was away
catches up from the seq it last saw.

Run: ``python examples/workers_feed.py``
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
from multiprocessing.synchronize import Barrier

import gostore

WORKERS = 4


def worker(path: str, number: int, ready: Barrier) -> None:
    """One worker process (a gunicorn or celery worker would open its Store the same way)."""
    with gostore.Store(path, change_feed=True) as store:
        with store.watch("workers", "*") as changes:
            ready.wait()  # every worker is watching before anyone writes
            store.set("workers", f"w{number}", f"hello from worker {number}")
            heard: list[str] = []
            while len(heard) < WORKERS - 1:  # each other worker's change, delivered once
                event = changes.get(timeout=10)
                if event is None:
                    raise SystemExit(f"worker {number}: the other workers went quiet")
                if event.key != f"w{number}":
                    heard.append(event.key)
        # One write per line: print() writes the text and its newline separately, and four
        # processes sharing one pipe could interleave them.
        sys.stdout.write(f"worker {number} heard {sorted(heard)}\n")
        sys.stdout.flush()


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "app.db")
        with gostore.Store(path, change_feed=True) as store:
            start = store.last_seq()  # a consumer about to go away remembers where it was

            context = multiprocessing.get_context("spawn")
            ready = context.Barrier(WORKERS)
            workers = [
                context.Process(target=worker, args=(path, n, ready)) for n in range(WORKERS)
            ]
            for process in workers:
                process.start()
            for process in workers:
                process.join()
                if process.exitcode != 0:
                    raise SystemExit(f"a worker failed with exit code {process.exitcode}")

            # Back again: everything recorded since `start`, in commit order, each once.
            missed = [(event.seq, event.key) for event in store.changes(since=start)]
            print(f"changes since seq {start}: {len(missed)}, keys {sorted(k for _, k in missed)}")
            print(f"in commit order: {[seq for seq, _ in missed] == sorted(s for s, _ in missed)}")


if __name__ == "__main__":
    main()
