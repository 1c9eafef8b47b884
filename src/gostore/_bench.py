"""The comparison benchmark's runner (SPEC section 9): how it is measured and reported.

``gostore bench`` and ``python -m gostore._bench`` run the workloads of
``gostore._bench_workloads`` (the ones ``benchmarks/`` times too): each is calibrated (or run
with its fixed ``--quick`` count), timed for a number of rounds and reported as the median
ns/op, in a Markdown table with the ratios, issue 3's and issue 4's targets and the durability
summary. The columns of one run:

* ``compiled``: gostore with ``gostore._speedups`` (this process, when it is built);
* ``pure``: gostore with ``GOSTORE_PURE=1``, in a subprocess, because the mode is chosen at
  import;
* ``apsw``: raw APSW running gostore's own SQL, no facade (see ``gostore._bench_workloads``);
* ``dict_cursor``: for the GetAll rows, ``dict(cursor.execute(GROUP_ROWS, ...))``;
* ``go``: the go-store-equivalent Go harness in ``benchmarks/go`` (skipped with a message when
  ``go`` is missing).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw

from . import _accel
from ._bench_workloads import (
    APSW,
    DICT_CURSOR,
    DURABILITY,
    GOSTORE,
    IMPLS,
    LEVELS,
    WORKLOADS,
    Config,
    Instance,
    Workload,
    cases,
)

__all__ = ("Result", "Results", "main", "measure", "report", "targets")

# Columns of the report: gostore's two modes, the raw APSW impls and the Go harness.
COMPILED, PURE, GO = "compiled", "pure", "go"

def _find_go_dir() -> Path:
    """The Go harness: beside the sources (editable install), else in the current directory's
    checkout (``pip install .`` then ``gostore bench`` from the clone), as the README runs it."""
    beside_sources = Path(__file__).resolve().parents[2] / "benchmarks" / "go"
    in_checkout = Path.cwd() / "benchmarks" / "go"
    for candidate in (beside_sources, in_checkout):
        if (candidate / "go.mod").is_file():
            return candidate
    return in_checkout


GO_DIR = _find_go_dir()


# -- measuring ------------------------------------------------------------------------------
@dataclass
class Result:
    ns_per_op: float
    rounds: list[float] = field(default_factory=list)
    iterations: int = 0


def _timed(inst: Instance, n: int) -> float:
    gc.collect()
    if not inst.batch:
        start = time.perf_counter()
        inst.loop(n)
        return time.perf_counter() - start
    assert inst.prepare is not None
    elapsed, done = 0.0, 0
    while done < n:
        b = min(inst.batch, n - done)
        inst.prepare(b)
        start = time.perf_counter()
        inst.loop(b)
        elapsed += time.perf_counter() - start
        done += b
    return elapsed


def _calibrate(inst: Instance, target: float) -> int:
    # As testing.B and the Go harness: grow n, predicting from the last run, <= 100x a step.
    n = 1
    while True:
        d = _timed(inst, n)
        if d >= target or n >= 1_000_000_000:
            return n
        nxt = int(target * 1.2 * n / d) if d > 0 else 100 * n
        n = max(n + 1, min(nxt, 100 * n))


def measure(
    workload: Workload,
    impls: Sequence[str],
    cfg: Config,
    *,
    rounds: int,
    target: float,
    quick: bool,
) -> dict[str, Result]:
    """Median ns/op of ``rounds`` timed runs of ``workload``, for each of ``impls``.

    NOTE: the implementations' rounds alternate (a, b, a, b, ...), so that a burst of load on a
    shared machine hits both sides of a ratio rather than one.
    """
    level = workload.sync or cfg.synchronous
    built: dict[str, Instance] = {}
    try:
        for impl in impls:
            built[impl] = workload.make(impl, Config(level))
        counts = {
            impl: workload.quick if quick else _calibrate(inst, target)
            for impl, inst in built.items()
        }
        per_round: dict[str, list[float]] = {impl: [] for impl in built}
        for _ in range(rounds):
            for impl, inst in built.items():
                n = counts[impl]
                per_round[impl].append(round(_timed(inst, n) * 1e9 / n, 1))
    finally:
        for inst in built.values():
            inst.close()
    return {
        impl: Result(round(statistics.median(xs), 1), xs, counts[impl])
        for impl, xs in per_round.items()
    }


Results = dict[str, dict[str, Result]]


def _run_python(
    rows: dict[str, Workload],
    impls: Sequence[str],
    cfg: Config,
    *,
    rounds: int,
    target: float,
    quick: bool,
    label: str,
    log: Callable[[str], None],
) -> Results:
    results: Results = {}
    for name, workload in rows.items():
        wanted = [impl for impl in workload.impls if impl in impls]
        if not wanted:
            continue
        measured = measure(workload, wanted, cfg, rounds=rounds, target=target, quick=quick)
        for impl, res in measured.items():
            column = label if impl == GOSTORE else impl
            results.setdefault(name, {})[column] = res
            log(f"  {name:<34} {column:<11} {_fmt(res.ns_per_op):>10}/op  (n={res.iterations})")
    return results


def _run_pure(
    names: Sequence[str], args: argparse.Namespace, log: Callable[[str], None]
) -> Results:
    cmd = [
        sys.executable,
        "-m",
        "gostore._bench",
        "--worker",
        "--rounds",
        str(args.rounds),
        "--synchronous",
        args.synchronous,
        "--target",
        str(args.target),
        "--only",
        "^(" + "|".join(re.escape(n) for n in names) + ")$",
    ]
    if args.quick:
        cmd.append("--quick")
    env = dict(os.environ, GOSTORE_PURE="1")
    log("pure column: running GOSTORE_PURE=1 in a subprocess")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log(f"pure column skipped: the subprocess failed ({proc.returncode}):\n{proc.stderr}")
        return {}
    results: Results = {}
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        results.setdefault(row["name"], {})[PURE] = Result(
            row["ns_per_op"], row["rounds"], row["iterations"]
        )
        log(f"  {row['name']:<34} {PURE:<11} {_fmt(row['ns_per_op']):>10}/op")
    return results


def go_available(go_dir: Path) -> str | None:
    """Why the Go column cannot run, or None when it can."""
    if shutil.which("go") is None:
        return "`go` is not on PATH"
    if not (go_dir / "main.go").is_file():
        return f"the Go harness is not at {go_dir}"
    return None


def _run_go(
    rows: dict[str, Workload], args: argparse.Namespace, log: Callable[[str], None]
) -> tuple[Results, str]:
    go_dir = Path(args.go_dir)
    why = go_available(go_dir)
    if why:
        log(f"go-store column skipped: {why}")
        return {}, ""
    results: Results = {}
    impl = ""
    by_level: dict[str, list[str]] = {}
    for name, w in rows.items():
        if w.go:
            by_level.setdefault(w.sync or args.synchronous, []).append(name)
    for level, names in by_level.items():
        plain = [n.split("[")[0] for n in names]
        cmd = [
            "go",
            "run",
            ".",
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
            cmd.append("-quick")
        log(f"go-store column: {' '.join(cmd)}")
        proc = subprocess.run(cmd, cwd=go_dir, capture_output=True, text=True, check=False)
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
            log(f"  {name:<34} {GO:<11} {_fmt(row['ns_per_op']):>10}/op")
    return results, impl


def merge(*parts: Results) -> Results:
    out: Results = {}
    for part in parts:
        for name, cols in part.items():
            out.setdefault(name, {}).update(cols)
    return out


# -- reporting ------------------------------------------------------------------------------
def _fmt(ns: float | None) -> str:
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns < scale * 100 else f"{ns / scale:.0f} {unit}"
    return f"{ns:.0f} ns"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _r(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _ns(results: Results, name: str, column: str) -> float | None:
    res = results.get(name, {}).get(column)
    return None if res is None else res.ns_per_op


def _gostore(results: Results, name: str) -> float | None:
    """gostore's default mode: compiled when measured, else pure."""
    ns = _ns(results, name, COMPILED)
    return ns if ns is not None else _ns(results, name, PURE)


@dataclass
class Target:
    what: str
    ratio: float | None
    limit: float
    at_least: bool = False  # True: ratio must be >= limit

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "n/a"
        ok = self.ratio >= self.limit if self.at_least else self.ratio <= self.limit
        return "PASS" if ok else "MISS"


_HALF = ("Get", "Set", "SetWithTTL", "Delete", "Count_10K", "GetAll")


def targets(results: Results) -> list[Target]:
    """Issue 4's targets (and issue 3's) against the measured medians."""
    out: list[Target] = []

    def gs(name: str) -> float | None:
        return _gostore(results, name)

    for name in results:
        w = WORKLOADS.get(name.split("[")[0])
        if w is not None and w.go:
            limit = 0.5 if name in _HALF else 1.0
            out.append(
                Target(
                    f"{name}: gostore / go-store", _ratio(gs(name), _ns(results, name, GO)), limit
                )
            )
    for name in ("Get", "Set"):
        out.append(
            Target(f"{name}: gostore / raw APSW", _ratio(gs(name), _ns(results, name, APSW)), 1.25)
        )
    out.append(
        Target(
            "GetAll: gostore / dict(cursor)",
            _ratio(gs("GetAll"), _ns(results, "GetAll", DICT_CURSOR)),
            0.7,
        )
    )
    for name in ("decode_group_10K", "decode_pairs_10K", "WatcherIndex_match", "Watcher_dispatch"):
        out.append(
            Target(
                f"{name}: pure / compiled (speed-up)",
                _ratio(_ns(results, name, PURE), _ns(results, name, COMPILED)),
                1.5,
                at_least=True,
            )
        )
    out.append(Target("Get_1M / Get", _ratio(gs("Get_1M"), gs("Get")), 1.5))
    many = gs("SetMany_FileBacked")
    out.append(
        Target(
            "Set_FileBacked / (SetMany_FileBacked / 10000)",
            _ratio(gs("Set_FileBacked"), many / 10_000 if many else None),
            20.0,
            at_least=True,
        )
    )
    out.append(Target("Set_10KWatchers / Set", _ratio(gs("Set_10KWatchers"), gs("Set")), 1.2))
    out.append(
        Target("ScopedSet_100K / Set_NewKey", _ratio(gs("ScopedSet_100K"), gs("Set_NewKey")), 2.0)
    )
    return out


def report(results: Results, meta: dict[str, Any]) -> str:
    """The results table, the extra ratios and the targets, as Markdown."""
    lines = [
        "| benchmark | per | compiled | pure | raw APSW | dict(cursor) | go-store-eq | "
        "gostore/go | gostore/APSW | compiled/pure |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = cases(meta.get("synchronous", "full"))
    order = [n for n in rows if n in results] + [n for n in results if n not in rows]
    for name in order:
        gs = _gostore(results, name)
        per = rows[name].per if name in rows else ""
        lines.append(
            f"| {name} | {per} | {_fmt(_ns(results, name, COMPILED))} | "
            f"{_fmt(_ns(results, name, PURE))} | {_fmt(_ns(results, name, APSW))} | "
            f"{_fmt(_ns(results, name, DICT_CURSOR))} | {_fmt(_ns(results, name, GO))} | "
            f"{_r(_ratio(gs, _ns(results, name, GO)))} | "
            f"{_r(_ratio(gs, _ns(results, name, APSW)))} | "
            f"{_r(_ratio(_ns(results, name, COMPILED), _ns(results, name, PURE)))} |"
        )
    lines += [
        "",
        "| target (gostore = compiled mode) | measured | limit | verdict |",
        "| --- | ---: | ---: | --- |",
    ]
    for t in targets(results):
        limit = f"{'>=' if t.at_least else '<='} {t.limit:g}"
        lines.append(f"| {t.what} | {_r(t.ratio)} | {limit} | {t.verdict} |")
    lines += [
        "",
        "Durability (file-backed writes at each synchronous level, gostore compiled):",
        "",
    ]
    lines += ["| benchmark | " + " | ".join(LEVELS) + " |", "| --- |" + " ---: |" * len(LEVELS)]
    main_level = meta.get("synchronous", "full")
    for base in DURABILITY:
        cells = []
        for level in LEVELS:
            name = base if level == main_level else f"{base}[{level}]"
            cells.append(_fmt(_gostore(results, name)))
        lines.append(f"| {base} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        cpu = platform.processor() or "unknown"
    go = "not found"
    if shutil.which("go"):
        proc = subprocess.run(["go", "version"], capture_output=True, text=True, check=False)
        go = proc.stdout.strip() or go
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "sqlite": apsw.sqlite_lib_version(),
        "apsw": apsw.apsw_version(),
        "go": go,
    }


def _to_json(results: Results) -> dict[str, Any]:
    return {name: {col: vars(res) for col, res in cols.items()} for name, cols in results.items()}


# -- command line ---------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gostore bench",
        description="Compare gostore (compiled and pure) with raw APSW and go-store; "
        "prints medians and ratios.",
    )
    p.add_argument("--quick", action="store_true", help="tiny fixed iteration counts, 1 round")
    p.add_argument(
        "--only", metavar="REGEX", default="", help="run the benchmarks whose name matches"
    )
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per benchmark (median)")
    p.add_argument(
        "--synchronous",
        choices=LEVELS,
        default="full",
        help="SQLite synchronous level for every side (default: full)",
    )
    p.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    p.add_argument("--no-go", action="store_true", help="skip the go-store column")
    p.add_argument("--no-pure", action="store_true", help="skip the GOSTORE_PURE=1 column")
    p.add_argument(
        "--target",
        type=float,
        default=0.1,
        help="seconds one calibrated round should take (default 0.1)",
    )
    p.add_argument("--go-dir", default=str(GO_DIR), help="the Go harness (benchmarks/go)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print the table. Returns the exit status."""
    args = _parser().parse_args(argv)
    if args.rounds < 1:
        print("gostore bench: --rounds must be >= 1", file=sys.stderr)
        return 2
    if args.quick:
        args.rounds = 1
    try:
        only = re.compile(args.only)
    except re.error as exc:
        print(f"gostore bench: invalid --only: {exc}", file=sys.stderr)
        return 2
    rows = {n: w for n, w in cases(args.synchronous).items() if only.search(n)}
    if not rows:
        print(f"gostore bench: no benchmark matches {args.only!r}", file=sys.stderr)
        return 2
    cfg = Config(args.synchronous)
    measure_args = {"rounds": args.rounds, "target": args.target, "quick": args.quick}

    if args.worker:  # the pure subprocess: gostore rows only, JSON lines on stdout
        for name, w in rows.items():
            if GOSTORE in w.impls:
                res = measure(w, [GOSTORE], cfg, **measure_args)[GOSTORE]
                print(json.dumps({"name": name, **vars(res)}), flush=True)
        return 0

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    mode = COMPILED if _accel.SPEEDUPS else PURE
    log(
        f"gostore bench: this process runs gostore in {mode} mode; "
        f"synchronous={args.synchronous}, rounds={args.rounds}{', quick' if args.quick else ''}"
    )
    started = time.perf_counter()
    own = _run_python(rows, IMPLS, cfg, label=mode, log=log, **measure_args)
    pure: Results = {}
    if mode == COMPILED and not args.no_pure:
        pure = _run_pure([n for n, w in rows.items() if GOSTORE in w.impls], args, log)
    elif mode == PURE:
        log("compiled column skipped: gostore._speedups is not in use in this process")
    go: Results = {}
    go_impl = ""
    if args.no_go:
        log("go-store column skipped: --no-go")
    else:
        go, go_impl = _run_go(rows, args, log)
    results = merge(own, pure, go)
    meta = {
        **machine(),
        "synchronous": args.synchronous,
        "rounds": args.rounds,
        "quick": args.quick,
        "target_seconds": args.target,
        "go_impl": go_impl,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(report(results, meta))
    print(
        f"\n{meta['date']}  {meta['cpu']} x{meta['nproc']}  Python {meta['python']}  "
        f"SQLite {meta['sqlite']}  APSW {meta['apsw']}  {meta['go']}  ({meta['seconds']} s)"
    )
    if args.json:
        data = {
            "meta": meta,
            "results": _to_json(results),
            "targets": [{**vars(t), "verdict": t.verdict} for t in targets(results)],
        }
        Path(args.json).write_text(json.dumps(data, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
