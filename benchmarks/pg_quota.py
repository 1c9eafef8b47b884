"""A quota-checked set on PostgreSQL against an unchecked one, as the namespace grows.

    python -m tests.pg_cluster python benchmarks/pg_quota.py {url}

For each size the namespace ``q`` is filled with that many keys, then 200 checked sets of new
keys (``max_keys`` far above the size) and 200 unchecked sets of new keys are timed, after one
checked set that builds the namespace's ledger. Prints the median per set and the ratio.
"""

from __future__ import annotations

import statistics
import sys
import time

import gostore

SIZES = (100, 10_000, 100_000)
WRITES = 200


def _median_set(write: object, tag: str) -> float:
    times = []
    for i in range(WRITES):
        start = time.perf_counter()
        write("g", f"{tag}{i}", "v")  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(url: str) -> None:
    with gostore.Store(url, purge_interval=0) as store:
        for size in SIZES:
            store.delete_prefix("q:")
            store.delete_prefix("u:")
            store.set_many("q:fill", {f"k{i}": "v" for i in range(size)})
            tenant = store.scoped("q", gostore.QuotaConfig(max_keys=10 * size + 10 * WRITES))
            tenant.set("g", "warm", "v")  # builds the ledger once
            checked = _median_set(tenant.set, f"c{size}-")
            unchecked = _median_set(store.scoped("u").set, f"u{size}-")
            print(
                f"{size:>7} keys: checked set {checked * 1e3:.3f} ms, unchecked "
                f"{unchecked * 1e3:.3f} ms, ratio {checked / unchecked:.2f}x"
            )
        store.delete_prefix("q:")
        store.delete_prefix("u:")


if __name__ == "__main__":
    main(sys.argv[1])
