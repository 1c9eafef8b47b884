"""pytest-benchmark fixtures for the go-store comparison.

Run explicitly, never as part of the test suite (``testpaths`` is ``tests``)::

    python -m pytest benchmarks --benchmark-json=compiled.json
    GOSTORE_PURE=1 python -m pytest benchmarks --benchmark-json=pure.json
    (cd benchmarks/go && go run . -json > ../../go.jsonl)
    python benchmarks/compare.py --compiled compiled.json --pure pure.json --go go.jsonl

The workloads come from ``gostore.bench.workloads``, so these numbers and ``gostore bench``
measure the same thing. ``GOSTORE_BENCH_SYNC`` (full, normal, off) sets the synchronous level
and ``GOSTORE_BENCH_ROUNDS`` the rounds per benchmark (default 15).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import gostore
from gostore.bench import workloads

SYNCHRONOUS = os.environ.get("GOSTORE_BENCH_SYNC", "full").strip().lower()
ROUNDS = int(os.environ.get("GOSTORE_BENCH_ROUNDS", "15"))


def pytest_report_header(config: pytest.Config) -> str:
    mode = "compiled (gostore._speedups)" if gostore.SPEEDUPS else "pure Python"
    return f"gostore benchmarks: {mode} mode, synchronous={SYNCHRONOUS}, rounds={ROUNDS}"


Runner = Callable[[str, str], None]


@pytest.fixture
def run_workload(benchmark: BenchmarkFixture) -> Runner:
    """Time workload ``name`` built for ``impl`` ("gostore", "apsw", "dict_cursor").

    One timed call runs ``pytest_ops`` operations in the workload's own tight loop (as the Go
    harness's ``b.N`` loop); ``extra_info`` records how many, so compare.py can divide.
    """

    def run(name: str, impl: str) -> None:
        workload = workloads.cases(SYNCHRONOUS)[name]
        level = workload.sync or SYNCHRONOUS
        instance = workload.make(impl, workloads.Config(level))
        ops = workload.pytest_ops
        if instance.batch:
            ops = min(ops, instance.batch)
        benchmark.extra_info.update(
            bench=name,
            impl=impl,
            ops_per_call=ops,
            per=workload.per,
            speedups=gostore.SPEEDUPS,
            synchronous=level,
        )
        try:
            if instance.prepare is not None:
                prepare = instance.prepare
                benchmark.pedantic(
                    instance.loop,
                    args=(ops,),
                    setup=lambda: prepare(ops) and None,
                    rounds=ROUNDS,
                    iterations=1,
                )
            else:
                benchmark.pedantic(
                    instance.loop, args=(ops,), rounds=ROUNDS, iterations=1, warmup_rounds=1
                )
        finally:
            instance.close()

    return run
