"""The _speedups paths through gostore._accel: compare a normal run with a GOSTORE_PURE=1 run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

Runner = Callable[[str, str], None]  # the run_workload fixture (conftest.py)


@pytest.mark.benchmark(group="decode")
@pytest.mark.parametrize("name", ["decode_group_10K", "decode_pairs_10K"])
def test_decode_10k_entries(run_workload: Runner, name: str) -> None:
    run_workload(name, "gostore")


@pytest.mark.benchmark(group="watchers")
@pytest.mark.parametrize("name", ["WatcherIndex_match", "Watcher_dispatch"])
def test_watcher_match_and_dispatch(run_workload: Runner, name: str) -> None:
    run_workload(name, "gostore")
