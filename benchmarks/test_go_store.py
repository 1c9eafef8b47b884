"""go-store's benchmarks, one pytest-benchmark group each, gostore against raw APSW.

The GetAll groups also time ``dict(cursor.execute(GROUP_ROWS, ...))``, the floor a dict built
from APSW rows can reach. Run the file once normally and once with ``GOSTORE_PURE=1``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

Runner = Callable[[str, str], None]  # the run_workload fixture (conftest.py)

BOTH = ["gostore", "apsw"]
GETALL = ["gostore", "apsw", "dict_cursor"]


@pytest.mark.benchmark(group="Set")
@pytest.mark.parametrize("impl", BOTH)
def test_set(run_workload: Runner, impl: str) -> None:
    run_workload("Set", impl)


@pytest.mark.benchmark(group="Get")
@pytest.mark.parametrize("impl", BOTH)
def test_get(run_workload: Runner, impl: str) -> None:
    run_workload("Get", impl)


@pytest.mark.benchmark(group="GetAll")
@pytest.mark.parametrize("impl", GETALL)
def test_get_all(run_workload: Runner, impl: str) -> None:
    run_workload("GetAll", impl)


@pytest.mark.benchmark(group="Set_FileBacked")
@pytest.mark.parametrize("impl", BOTH)
def test_set_file_backed(run_workload: Runner, impl: str) -> None:
    run_workload("Set_FileBacked", impl)


@pytest.mark.benchmark(group="GetAll_VaryingSize")
@pytest.mark.parametrize("impl", GETALL)
@pytest.mark.parametrize("size", [10, 100, 1_000, 10_000])
def test_get_all_varying_size(run_workload: Runner, size: int, impl: str) -> None:
    run_workload(f"GetAll_VaryingSize/{size}", impl)


@pytest.mark.benchmark(group="SetGet_Parallel")
@pytest.mark.parametrize("impl", BOTH)
def test_set_get_parallel(run_workload: Runner, impl: str) -> None:
    run_workload("SetGet_Parallel", impl)


@pytest.mark.benchmark(group="Count_10K")
@pytest.mark.parametrize("impl", BOTH)
def test_count_10k(run_workload: Runner, impl: str) -> None:
    run_workload("Count_10K", impl)


@pytest.mark.benchmark(group="Delete")
@pytest.mark.parametrize("impl", BOTH)
def test_delete(run_workload: Runner, impl: str) -> None:
    run_workload("Delete", impl)


@pytest.mark.benchmark(group="SetWithTTL")
@pytest.mark.parametrize("impl", BOTH)
def test_set_with_ttl(run_workload: Runner, impl: str) -> None:
    run_workload("SetWithTTL", impl)


@pytest.mark.benchmark(group="Render")
@pytest.mark.parametrize("impl", BOTH)
def test_render(run_workload: Runner, impl: str) -> None:
    run_workload("Render", impl)


@pytest.mark.benchmark(group="SetMany_FileBacked")
@pytest.mark.parametrize("impl", BOTH)
def test_set_many_file_backed(run_workload: Runner, impl: str) -> None:
    run_workload("SetMany_FileBacked", impl)


@pytest.mark.benchmark(group="Get_1M")
@pytest.mark.parametrize("impl", BOTH)
def test_get_1m(run_workload: Runner, impl: str) -> None:
    run_workload("Get_1M", impl)
