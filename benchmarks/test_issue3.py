"""Issue 3's costs: set() with 10,000 non-matching watchers (compare with Set), and a scoped
set() of a new key next to 100,000 keys under a quota (compare with Set_NewKey)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

Runner = Callable[[str, str], None]  # the run_workload fixture (conftest.py)


@pytest.mark.benchmark(group="Set_10KWatchers")
def test_set_with_10k_watchers(run_workload: Runner) -> None:
    run_workload("Set_10KWatchers", "gostore")


@pytest.mark.benchmark(group="ScopedSet_100K")
@pytest.mark.parametrize("name", ["ScopedSet_100K", "Set_NewKey"])
def test_scoped_set_of_new_key_next_to_100k_keys(run_workload: Runner, name: str) -> None:
    run_workload(name, "gostore")
