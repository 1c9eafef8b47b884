"""Turn saved pytest-benchmark runs and the Go harness's output into gostore's ratio table.

    python -m pytest benchmarks --benchmark-json=compiled.json
    GOSTORE_PURE=1 python -m pytest benchmarks --benchmark-json=pure.json
    (cd benchmarks/go && go run . -json) > go.jsonl
    python benchmarks/compare.py --compiled compiled.json --pure pure.json --go go.jsonl

Each input is optional; a column with no input shows "-". The table, the targets and the
durability summary are the ones ``gostore bench`` prints (``gostore.bench.report``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from gostore.bench import report, workloads


def _pytest_results(path: Path, want_speedups: bool, results: report.Results) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if "bench" not in info:
            continue  # not one of gostore's benchmarks
        if info["impl"] == workloads.GOSTORE:
            if bool(info["speedups"]) != want_speedups:
                mode = "compiled" if info["speedups"] else "pure"
                sys.exit(f"compare.py: {path} holds a {mode}-mode run; pass it to --{mode}")
            column = report.COMPILED if want_speedups else report.PURE
        elif want_speedups:
            column = info["impl"]  # raw APSW columns come from the compiled run
        else:
            continue
        ops = info["ops_per_call"]
        stats = bench["stats"]
        rounds = [round(x * 1e9 / ops, 1) for x in stats.get("data", [])]
        median = statistics.median(rounds) if rounds else stats["median"] * 1e9 / ops
        results.setdefault(info["bench"], {})[column] = report.Result(
            round(median, 1), rounds, ops * len(rounds)
        )
    return dict(data.get("machine_info", {}))


def _go_results(path: Path, main_level: str, results: report.Results) -> str:
    impl = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip().startswith("{"):
            continue
        row = json.loads(line)
        level = row.get("synchronous", main_level)
        name = row["name"] if level == main_level else f"{row['name']}[{level}]"
        impl = row.get("impl", impl)
        results.setdefault(name, {})[report.GO] = report.Result(
            row["ns_per_op"], row.get("rounds", []), row.get("iterations", 0)
        )
    return impl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--compiled", type=Path, help="pytest-benchmark JSON of a normal run")
    parser.add_argument("--pure", type=Path, help="pytest-benchmark JSON of a GOSTORE_PURE=1 run")
    parser.add_argument(
        "--go",
        type=Path,
        action="append",
        default=[],
        help="`go run . -json` output (repeat for other -synchronous levels)",
    )
    parser.add_argument(
        "--synchronous",
        choices=workloads.LEVELS,
        default="full",
        help="the level the pytest runs used (GOSTORE_BENCH_SYNC)",
    )
    parser.add_argument("--json", type=Path, help="also write the merged results here")
    args = parser.parse_args(argv)
    if not (args.compiled or args.pure or args.go):
        parser.error("give at least one of --compiled, --pure, --go")
    results: report.Results = {}
    machine: dict[str, Any] = {}
    if args.compiled:
        machine = _pytest_results(args.compiled, True, results)
    if args.pure:
        pure_machine = _pytest_results(args.pure, False, results)
        machine = machine or pure_machine
    go_impl = ""
    for go in args.go:
        go_impl = _go_results(go, args.synchronous, results)
    meta = {"synchronous": args.synchronous, "go_impl": go_impl}
    print(report.report(results, meta))
    cpu = machine.get("cpu", {}).get("brand_raw", "unknown CPU")
    print(f"\n{cpu}  Python {machine.get('python_version', '?')}  {go_impl}")
    if args.json:
        data = {"meta": meta, "results": report.to_json(results)}
        args.json.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
