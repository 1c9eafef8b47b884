"""The benchmark runner (gostore._bench) works end to end with tiny iteration counts.

These tests check that every column is produced and the report is printed; they never
assert on speed (benchmarks measure speed, tests don't).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import gostore
from gostore import _bench, _bench_workloads

# Cheap rows covering each kind of workload: memory, file, batched, threaded, render,
# watchers and the accelerated paths (Get_1M and the 100K-key rows are left out: slow setup).
SMALL = [
    "Set",
    "Get",
    "GetAll_VaryingSize/10",
    "Delete",
    "SetGet_Parallel",
    "Render",
    "Set_FileBacked",
    "Set_10KWatchers",
    "decode_group_10K",
    "Watcher_dispatch",
]


def test_quick_run_fills_every_column_of_the_selected_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    only = "^(" + "|".join(re.escape(name) for name in SMALL) + ")$"
    assert _bench.main(["--quick", "--no-go", "--only", only, "--json", str(out)]) == 0

    results = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert sorted(results) == sorted(SMALL)
    for name in SMALL:
        columns = results[name]
        # The pure column comes from the GOSTORE_PURE=1 subprocess in compiled mode, and from
        # this process itself in pure mode.
        expected = {"pure"} | ({"compiled"} if gostore.SPEEDUPS else set())
        impls = _bench_workloads.cases("full")[name].impls
        expected |= set(impls) - {_bench_workloads.GOSTORE}  # apsw, dict_cursor
        assert set(columns) == expected, name
        assert all(col["ns_per_op"] > 0 and col["iterations"] >= 1 for col in columns.values())
    printed = capsys.readouterr()
    assert "| Set | op |" in printed.out
    assert "Set_10KWatchers / Set" in printed.out
    assert "go-store column skipped: --no-go" in printed.err


def test_get_all_rows_also_time_dict_over_the_cursor(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["--quick", "--no-go", "--no-pure", "--only", "^GetAll_VaryingSize/10$"]
    assert _bench.main([*args, "--json", str(out)]) == 0
    columns = json.loads(out.read_text(encoding="utf-8"))["results"]["GetAll_VaryingSize/10"]
    assert {"apsw", "dict_cursor"} <= set(columns)


def test_only_matching_no_benchmark_exits_with_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _bench.main(["--quick", "--no-go", "--only", "^NoSuchBenchmark$"]) == 2
    assert "no benchmark matches" in capsys.readouterr().err


def test_go_column_is_skipped_with_a_reason_when_go_is_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert _bench.go_available(_bench.GO_DIR) == "`go` is not on PATH"


def test_python_workloads_mirror_every_go_harness_benchmark() -> None:
    main_go = _bench.GO_DIR / "main.go"
    if not main_go.is_file():
        pytest.skip("the Go harness is not in this checkout")
    go_names = set(re.findall(r'\{name: "([^"]+)"', main_go.read_text(encoding="utf-8")))
    python_names = {name for name, w in _bench_workloads.WORKLOADS.items() if w.go}
    assert go_names == python_names
