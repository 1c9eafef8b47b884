"""Inputs at the edges: a hugely negative TTL, a deeply nested JSON line for ``gostore import``,
and a quota ledger under a stream of TTL writes to one key.
"""

from __future__ import annotations

import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest

import gostore
from gostore import NotFoundError, QuotaConfig

from .conftest import FakeClock
from .test_cli import one_error_line, run

EXIT_USAGE = 2  # bad input, as the CLI's other import errors


# -- ttl far below zero ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "ttl", [-1e18, -(10**18), -1e300, timedelta.min], ids=["-1e18", "-10**18", "-1e300", "td-min"]
)
def test_hugely_negative_ttl_stores_an_already_expired_entry(
    store: gostore.Store, ttl: float | int | timedelta
) -> None:
    """``ttl <= 0`` means "already expired", however far below zero: no exception, and the
    key (which held a live value before) is gone."""
    store.set("g", "k", "live")
    store.set_with_ttl("g", "k", "v", ttl)
    with pytest.raises(NotFoundError):
        store.get("g", "k")
    assert store.count("g") == 0
    store.set_many("g", {"a": "1", "b": "2"}, ttl=ttl)
    assert store.get_all("g") == {}
    scoped = store.scoped("t", QuotaConfig(max_keys=1))
    scoped.set_with_ttl("g", "k", "v", ttl)
    scoped.set_with_ttl("g", "k2", "v", ttl)  # expired keys never count towards max_keys
    assert scoped.count("g") == 0


# -- gostore import of deeply nested JSON ----------------------------------------------------
@pytest.mark.parametrize("opening", ["[", '{"a":'], ids=["array", "object"])
def test_import_of_deeply_nested_json_is_a_one_line_bad_input_error(
    tmp_path: Path, db_path: Path, opening: str
) -> None:
    good = '{"group": "g", "key": "k", "value": "v"}\n'
    dump = tmp_path / "deep.jsonl"
    dump.write_text(good + opening * 100_000 + "\n" + good, encoding="utf-8")
    result = run("import", str(dump), db=db_path)
    assert "Traceback" not in result.stderr
    assert result.returncode == EXIT_USAGE, result.stderr[-500:]
    error = one_error_line(result)
    assert "line 2: " in error and "nothing was imported" in error
    assert not db_path.exists()


# -- quota ledger memory ---------------------------------------------------------------------
WRITES = 100_000
GROWTH_LIMIT = 2_000_000  # bytes; today's ledger keeps ~160 bytes per write (16 MB here)


def test_quota_ledger_does_not_grow_with_repeated_ttl_writes_of_one_key(
    store: gostore.Store, clock: FakeClock
) -> None:
    """100,000 ``set_with_ttl`` of the same key under a quota leave one live key, so the
    ledger must hold about one entry, not one per write until the TTLs pass."""
    scoped = store.scoped("t", QuotaConfig(max_keys=10, max_bytes=1_000_000))
    scoped.set_with_ttl("g", "k", "v", 3600)  # the ledger exists before measuring
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(WRITES):
            scoped.set_with_ttl("g", "k", str(i % 10), 3600)
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert scoped.get_all("g") == {"k": str((WRITES - 1) % 10)}
    assert growth < GROWTH_LIMIT, f"{WRITES:,} TTL writes of one key kept {growth:,} bytes"
    # The quota still counts the key once.
    for n in range(9):
        scoped.set("g", f"other{n}", "v")
    with pytest.raises(gostore.QuotaExceededError):
        scoped.set("g", "one-too-many", "v")
