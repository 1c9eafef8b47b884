"""The benchmark (gostore.bench) works end to end with tiny iteration counts, reports a quick run
as rough, finds the Go harness only at run time, and never leaves a child process behind.

These tests check that every column is produced and the report is printed; they never
assert on speed (benchmarks measure speed, tests don't).
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gostore
from gostore.bench import goharness, report, runner, workloads

ROOT = Path(__file__).resolve().parent.parent
BENCH_PACKAGE = Path(runner.__file__).parent

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
    assert runner.main(["--quick", "--no-go", "--only", only, "--json", str(out)]) == 0

    results = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert sorted(results) == sorted(SMALL)
    for name in SMALL:
        columns = results[name]
        # The pure column comes from the GOSTORE_PURE=1 subprocess in compiled mode, and from
        # this process itself in pure mode.
        expected = {"pure"} | ({"compiled"} if gostore.SPEEDUPS else set())
        impls = workloads.cases("full")[name].impls
        expected |= set(impls) - {workloads.GOSTORE}  # apsw, dict_cursor
        assert set(columns) == expected, name
        assert all(col["ns_per_op"] > 0 and col["iterations"] >= 1 for col in columns.values())
    printed = capsys.readouterr()
    assert "| Set | op |" in printed.out
    assert "Set_10KWatchers / Set" in printed.out
    assert "go-store column skipped: --no-go" in printed.err


def test_quick_run_marks_ratios_rough_and_gives_no_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    args = ["--quick", "--no-go", "--no-pure", "--only", "^(Get|Set)$", "--json", str(out)]
    assert runner.main(args) == 0

    printed = capsys.readouterr().out
    assert printed.startswith(report.ROUGH)
    assert re.search(r"\| Get: gostore / raw APSW \| ~\d+\.\d\d \| <= 1.25 \|\n", printed)
    assert "PASS" not in printed and "MISS" not in printed
    judged = json.loads(out.read_text(encoding="utf-8"))["targets"]
    assert judged and all(t["verdict"] is None for t in judged)


def test_full_report_judges_each_target_with_exact_ratios() -> None:
    results: report.Results = {
        "Get": {report.COMPILED: report.Result(100.0), workloads.APSW: report.Result(90.0)},
        "Set": {report.COMPILED: report.Result(200.0), workloads.APSW: report.Result(100.0)},
    }
    full = report.report(results, {"synchronous": "full", "quick": False})
    assert report.ROUGH not in full
    assert "| Get: gostore / raw APSW | 1.11 | <= 1.25 | PASS |" in full
    assert "| Set: gostore / raw APSW | 2.00 | <= 1.25 | MISS |" in full
    rough = report.report(results, {"synchronous": "full", "quick": True})
    assert "| Set: gostore / raw APSW | ~2.00 | <= 1.25 |\n" in rough


def test_get_all_rows_also_time_dict_over_the_cursor(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["--quick", "--no-go", "--no-pure", "--only", "^GetAll_VaryingSize/10$"]
    assert runner.main([*args, "--json", str(out)]) == 0
    columns = json.loads(out.read_text(encoding="utf-8"))["results"]["GetAll_VaryingSize/10"]
    assert {"apsw", "dict_cursor"} <= set(columns)


def test_only_matching_no_benchmark_exits_with_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert runner.main(["--quick", "--no-go", "--only", "^NoSuchBenchmark$"]) == 2
    assert "no benchmark matches" in capsys.readouterr().err


# -- finding the Go harness -----------------------------------------------------------------
def test_go_column_is_skipped_with_a_reason_when_go_is_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert goharness.unavailable(tmp_path) == "`go` is not on PATH"


def test_go_harness_is_found_under_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = tmp_path / "benchmarks" / "go"
    harness.mkdir(parents=True)
    (harness / "go.mod").write_text("module bench\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    found, how = goharness.locate(None)
    assert found == harness
    assert "current directory" in how


def test_go_dir_without_go_mod_is_refused_with_the_reason(tmp_path: Path) -> None:
    assert goharness.locate(str(tmp_path)) == (None, f"--go-dir {tmp_path} holds no go.mod")


@pytest.mark.skipif(os.name != "posix", reason="the fake `go` is a shell script")
def test_run_says_why_the_go_column_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_go(tmp_path / "bin", "echo 'go version fake'")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    args = ["--quick", "--no-pure", "--only", "^Get$", "--go-dir", str(tmp_path)]
    assert runner.main(args) == 0
    err = capsys.readouterr().err
    assert f"go-store column skipped: --go-dir {tmp_path} holds no go.mod" in err


def test_python_workloads_mirror_every_go_harness_benchmark() -> None:
    main_go = ROOT / "benchmarks" / "go" / "main.go"
    if not main_go.is_file():
        pytest.skip("the Go harness is not in this checkout")
    go_names = set(re.findall(r'\{name: "([^"]+)"', main_go.read_text(encoding="utf-8")))
    python_names = {name for name, w in workloads.WORKLOADS.items() if w.go}
    assert go_names == python_names


# -- a part of its own ----------------------------------------------------------------------
def test_the_store_and_command_line_load_without_the_benchmark() -> None:
    code = (
        "import sys, gostore, gostore.cli\n"
        "loaded = [m for m in sys.modules if m.startswith('gostore.bench')]\n"
        "assert loaded == [], loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_no_benchmark_module_imports_the_sqlite_driver() -> None:
    for path in BENCH_PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "apsw" for n in names), path.name


# -- child processes ------------------------------------------------------------------------
def fake_go(bin_dir: Path, body: str) -> None:
    """A `go` command on PATH that answers `go version` and otherwise runs ``body``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "go"
    script.write_text(
        f'#!/bin/sh\nif [ "$1" = version ]; then echo "go version fake"; exit 0; fi\n{body}\n',
        encoding="utf-8",
    )
    script.chmod(0o755)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie has exited; only its parent's wait() is missing
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


@pytest.mark.skipif(os.name != "posix", reason="the fake `go` is a shell script")
@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)]
)
def test_a_signal_to_the_benchmark_stops_its_go_child(
    tmp_path: Path, signum: int, status: int
) -> None:
    # The fake `go build` records its pid and sleeps: the signal reaches the benchmark while it
    # waits on that child.
    pid_file = tmp_path / "go.pid"
    fake_go(tmp_path / "bin", f'echo $$ > "{pid_file}"\nexec sleep 60')
    harness = tmp_path / "harness"
    harness.mkdir()
    (harness / "go.mod").write_text("module bench\n", encoding="utf-8")
    (harness / "main.go").write_text("package main\n", encoding="utf-8")
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "gostore", "bench", "--quick", "--no-pure", "--only", "^Get$"]
    bench = subprocess.Popen(
        [*cmd, "--go-dir", str(harness)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not pid_file.is_file() or not pid_file.read_text(encoding="utf-8").strip():
            assert bench.poll() is None, bench.communicate()
            assert time.monotonic() < deadline, "the fake go was never started"
            time.sleep(0.05)
        child = int(pid_file.read_text(encoding="utf-8"))
        assert not _gone(child)
        bench.send_signal(signum)
        _, err = bench.communicate(timeout=15)
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait()
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    outlived = not _gone(child)
    if outlived:
        os.kill(child, signal.SIGKILL)
    assert not outlived, "the go child outlived the benchmark"
    assert bench.returncode == status, err
    assert "building the Go harness" in err
