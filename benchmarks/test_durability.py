"""File-backed writes at each synchronous level (full, normal, off).

Set_FileBacked and SetMany_FileBacked change the stored value on every op (every batch), so
every commit really writes and, at synchronous=full, fsyncs, as in go-store's workload.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from gostore.bench import workloads

Runner = Callable[[str, str], None]  # the run_workload fixture (conftest.py)
SYNCHRONOUS = os.environ.get("GOSTORE_BENCH_SYNC", "full").strip().lower()


def _rows() -> list[str]:
    rows = workloads.cases(SYNCHRONOUS)
    return [name for name in rows if name.split("[")[0] in workloads.DURABILITY]


@pytest.mark.benchmark(group="durability")
@pytest.mark.parametrize("impl", ["gostore", "apsw"])
@pytest.mark.parametrize("name", _rows())
def test_file_backed_writes_at_each_level(run_workload: Runner, name: str, impl: str) -> None:
    run_workload(name, impl)
