"""The comparison benchmark's runner: how it is measured, and the command line.

``gostore bench`` and ``python -m gostore.bench`` run the workloads of
``gostore.bench.workloads`` (the ones ``benchmarks/`` times too): each is calibrated (or run
with its fixed ``--quick`` count), timed for a number of rounds and reported as the median
ns/op, in a Markdown table with the ratios, the targets and the durability summary
(``gostore.bench.report``). The columns of one run:

* ``compiled``: gostore with ``gostore._speedups`` (this process, when it is built);
* ``pure``: gostore with ``GOSTORE_PURE=1``, in a subprocess, because the mode is chosen at
  import;
* ``apsw``: raw APSW running gostore's own SQL, no facade (see ``gostore.bench.workloads``);
* ``dict_cursor``: for the GetAll rows, ``dict(cursor.execute(GROUP_ROWS, ...))``;
* ``go``: the go-store-equivalent Go harness of a checkout (``gostore.bench.goharness``),
  skipped with the reason when ``go`` or the harness is missing.

Child processes (the pure worker, the Go build and harness) are stopped whenever the run ends
early, by Ctrl-C or SIGTERM included (``gostore.bench.procs``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import gostore

from . import goharness, procs
from .fixtures import sqlite_version
from .report import COMPILED, PURE, Result, Results, fmt, merge, report, targets, to_json
from .workloads import GOSTORE, IMPLS, LEVELS, Config, Instance, Workload, cases

__all__ = ("machine", "main", "measure")


# -- measuring ------------------------------------------------------------------------------
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
            log(f"  {name:<34} {column:<11} {fmt(res.ns_per_op):>10}/op  (n={res.iterations})")
    return results


def _run_pure(
    names: Sequence[str], args: argparse.Namespace, log: Callable[[str], None]
) -> Results:
    cmd = [
        sys.executable,
        "-m",
        "gostore.bench",
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
    proc = procs.run(cmd, env=env)
    if proc.returncode != 0:
        log(f"pure column skipped: the subprocess failed ({proc.returncode}):\n{proc.stderr}")
        return {}
    results: Results = {}
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        results.setdefault(row["name"], {})[PURE] = Result(
            row["ns_per_op"], row["rounds"], row["iterations"]
        )
        log(f"  {row['name']:<34} {PURE:<11} {fmt(row['ns_per_op']):>10}/op")
    return results


def _apsw_version() -> str:
    try:
        return metadata.version("apsw")
    except metadata.PackageNotFoundError:
        return "unknown"


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
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "sqlite": sqlite_version(),
        "apsw": _apsw_version(),
        "go": goharness.version(),
    }


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
    p.add_argument(
        "--go-dir",
        metavar="DIR",
        help="the Go harness (default: benchmarks/go under the current directory, or beside "
        "the sources of an editable install)",
    )
    p.add_argument(
        "--db",
        metavar="URL",
        help="a postgresql:// URL: compare gostore on that server with raw psycopg instead "
        "(writes and then removes groups starting with 'gostore-bench:')",
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print the table. Returns the exit status.

    SIGTERM ends the run as ``SystemExit(143)`` and Ctrl-C as ``KeyboardInterrupt``, each after
    stopping the child process running at the time.
    """
    args = _parser().parse_args(argv)
    with procs.terminating_as_exit():
        return _run(args)


def _run_postgres(args: argparse.Namespace) -> int:
    from ..engine import is_url

    if not is_url(args.db):
        print("gostore bench: --db must be a postgresql:// URL", file=sys.stderr)
        return 2
    try:
        from . import postgres
    except ImportError as exc:
        print(f"gostore bench: {exc}", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        return postgres.run(args.db, rounds=args.rounds, quick=args.quick, log=log)
    except gostore.StoreError as exc:
        print(f"gostore bench: {exc}", file=sys.stderr)
        return 3


def _run(args: argparse.Namespace) -> int:
    if args.rounds < 1:
        print("gostore bench: --rounds must be >= 1", file=sys.stderr)
        return 2
    if args.db:
        return _run_postgres(args)
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

    mode = COMPILED if gostore.SPEEDUPS else PURE
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
        go, go_impl = goharness.run(rows, args, log)
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
            "results": to_json(results),
            # A quick run is not judged (see report.ROUGH).
            "targets": [
                {**vars(t), "verdict": None if args.quick else t.verdict} for t in targets(results)
            ],
        }
        Path(args.json).write_text(json.dumps(data, indent=1), encoding="utf-8")
    return 0
