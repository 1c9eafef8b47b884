"""The go-store column: the go-store-equivalent Go harness of a gostore checkout
(``benchmarks/go``), built and run at run time.

The harness is not part of an installed gostore. It is looked for only when a run asks for the
Go column: in the directory given by ``--go-dir``, else in ``benchmarks/go`` under the current
directory (``gostore bench`` run from a clone), else beside gostore's sources (an editable
install). When it is not found, or ``go`` is not installed, the column is skipped and the run
says why.

The harness is compiled once per run into a temporary directory (``go build``; the first build
on a machine downloads its modules), then run once per synchronous level. Every child runs
through :mod:`gostore.bench.procs`, so an interrupted run stops it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from . import procs
from .report import GO, Result, Results, fmt
from .workloads import Workload

__all__ = ("HARNESS", "locate", "run", "unavailable", "version")

# Where the harness sits in a checkout.
HARNESS = Path("benchmarks", "go")


def locate(go_dir: str | None) -> tuple[Path | None, str]:
    """The harness directory (or None) and how it was found, or why it was not."""
    if go_dir:
        explicit = Path(go_dir)
        if (explicit / "go.mod").is_file():
            return explicit, f"--go-dir {explicit}"
        return None, f"--go-dir {explicit} holds no go.mod"
    # parents[3]: the checkout root of an editable install (src/gostore/bench/goharness.py).
    candidates = (
        ("the current directory", Path.cwd() / HARNESS),
        ("beside gostore's sources", Path(__file__).resolve().parents[3] / HARNESS),
    )
    for where, candidate in candidates:
        if (candidate / "go.mod").is_file():
            return candidate, f"{candidate} (found from {where})"
    return None, (
        f"the Go harness ({HARNESS.as_posix()}) is not installed with gostore and was not found "
        "in the current directory; run from a gostore checkout or pass --go-dir DIR"
    )


def unavailable(go_dir: Path | None, why_missing: str = "") -> str | None:
    """Why the Go column cannot run, or None when it can."""
    if shutil.which("go") is None:
        return "`go` is not on PATH"
    if go_dir is None:
        return why_missing or "no Go harness directory"
    if not (go_dir / "main.go").is_file():
        return f"the Go harness is not at {go_dir} (no main.go)"
    return None


def version() -> str:
    """``go version``'s answer, or "not found"."""
    if shutil.which("go") is None:
        return "not found"
    proc = procs.run(["go", "version"])
    return proc.stdout.strip() or "not found"


def run(
    rows: dict[str, Workload], args: argparse.Namespace, log: Callable[[str], None]
) -> tuple[Results, str]:
    """The go-store column for ``rows``, and the harness's description of what it runs."""
    go_dir, found = locate(args.go_dir)
    why = unavailable(go_dir, found)
    if why:
        log(f"go-store column skipped: {why}")
        return {}, ""
    assert go_dir is not None
    by_level: dict[str, list[str]] = {}
    for name, w in rows.items():
        if w.go:
            by_level.setdefault(w.sync or args.synchronous, []).append(name)
    if not by_level:
        log("go-store column skipped: none of the selected benchmarks is in the Go harness")
        return {}, ""
    build_dir = tempfile.mkdtemp(prefix="gostore-bench-go-")
    try:
        binary = Path(build_dir, "goharness.exe" if sys.platform == "win32" else "goharness")
        log(f"go-store column: the Go harness at {found}")
        log(
            "go-store column: building the Go harness (go build; the first build on a machine "
            "downloads and compiles its modules: 30 s or more)..."
        )
        built = procs.run(["go", "build", "-o", str(binary), "."], cwd=go_dir)
        if built.returncode != 0:
            log(
                f"go-store column skipped: go build failed (exit {built.returncode})\n"
                f"{built.stderr.strip()}"
            )
            return {}, ""
        return _run_levels(binary, go_dir, by_level, args, log)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)


def _run_levels(
    binary: Path,
    go_dir: Path,
    by_level: dict[str, list[str]],
    args: argparse.Namespace,
    log: Callable[[str], None],
) -> tuple[Results, str]:
    results: Results = {}
    impl = ""
    for level, names in by_level.items():
        plain = [n.split("[")[0] for n in names]
        flags = [
            "-json",
            "-rounds",
            str(args.rounds),
            "-synchronous",
            level,
            "-target",
            f"{round(args.target * 1000)}ms",
            "-bench",
            "^(" + "|".join(re.escape(n) for n in plain) + ")$",
        ]
        if args.quick:
            flags.append("-quick")
        log(f"go-store column: running the harness with {' '.join(flags)}")
        proc = procs.run([str(binary), *flags], cwd=go_dir)
        if proc.returncode != 0:
            log(
                f"go-store column skipped at synchronous={level}: exit {proc.returncode}\n"
                f"{proc.stderr.strip()}"
            )
            continue
        for line in proc.stdout.splitlines():
            row = json.loads(line)
            name = row["name"] if level == args.synchronous else f"{row['name']}[{level}]"
            impl = row.get("impl", impl)
            results.setdefault(name, {})[GO] = Result(
                row["ns_per_op"], row["rounds"], row["iterations"]
            )
            log(f"  {name:<34} {GO:<11} {fmt(row['ns_per_op']):>10}/op")
    return results, impl
