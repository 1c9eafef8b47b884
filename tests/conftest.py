"""Shared fixtures. The whole suite runs twice, compiled and pure (GOSTORE_PURE=1);
test_speedups.py also compares both implementations side by side in one run."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

import gostore
from gostore import _speedups_py, _types

from .pg_cluster import ENABLE_HINT, Cluster, ClusterUnavailable, bindir

REQUIRE_SPEEDUPS = os.environ.get("GOSTORE_REQUIRE_SPEEDUPS", "").strip().lower() in {"1", "true"}


def pytest_report_header(config: pytest.Config) -> str:
    mode = "compiled (gostore._speedups)" if gostore.SPEEDUPS else "pure Python"
    return f"gostore {gostore.__version__}: {mode} mode"


CLOCK_START_MS = 1_700_000_000_000  # the fake clock's first "now", in Unix ms


class FakeClock:
    """A settable ``now_ms()``: TTL and quota expiry tested without sleeping."""

    def __init__(self) -> None:
        self.now = CLOCK_START_MS

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Install a FakeClock in every gostore module that reads the clock (they import now_ms
    by name, so the hot paths pay one global lookup)."""
    fake = FakeClock()
    real = _types.now_ms
    for name, module in list(sys.modules.items()):
        if name.startswith("gostore") and getattr(module, "now_ms", None) is real:
            monkeypatch.setattr(module, "now_ms", fake)
    return fake


def run_in_threads(work: Callable[[int], object], count: int) -> None:
    """Run ``work(0) .. work(count - 1)`` in threads at once; re-raise the first failure here."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def runner(n: int) -> None:
        try:
            start.wait()
            work(n)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def keep_calling(calls: list[Callable[[int], object]], seconds: float) -> list[BaseException]:
    """Call each of ``calls`` with 1, 2, 3... in a thread of its own for ``seconds``; return
    the :class:`~gostore.StoreError` they raised (any other exception fails the test)."""
    stop = time.monotonic() + seconds
    failed: list[BaseException] = []

    def loop(call: Callable[[int], object]) -> None:
        n = 0
        while time.monotonic() < stop:
            n += 1
            try:
                call(n)
            except gostore.StoreError as exc:
                failed.append(exc)

    run_in_threads(lambda i: loop(calls[i]), len(calls))
    return failed


def drain(watcher: gostore.Watcher) -> list[gostore.Event]:
    """Every event buffered right now (delivery is complete when the write returns)."""
    events = []
    while (event := watcher.get_nowait()) is not None:
        events.append(event)
    return events


# -- engines ----------------------------------------------------------------------------------
# The behaviour tests of these modules run on every engine: their `store` fixture is
# parametrised (sqlite-memory, sqlite-file, postgresql). Elsewhere `store` is SQLite in memory.
ENGINE_MODULES = {
    "test_atomic",
    "test_errors",
    "test_events",
    "test_inputs",
    "test_quota",
    "test_scope",
    "test_store",
    "test_transaction",
    "test_ttl",
}
ENGINES = ("sqlite-memory", "sqlite-file", "postgresql")
_IN_CI = os.environ.get("CI", "").strip().lower() == "true"
REQUIRE_POSTGRES = _IN_CI or os.environ.get("GOSTORE_REQUIRE_POSTGRES", "").strip() in {"1", "true"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: a behaviour test that holds only on the SQLite engines"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rpartition(".")[2]
    if "store" in metafunc.fixturenames and module in ENGINE_MODULES:
        engines = ENGINES
        if metafunc.definition.get_closest_marker("sqlite_only") is not None:
            engines = tuple(name for name in ENGINES if name.startswith("sqlite"))
        metafunc.parametrize("engine", engines, indirect=True)


def _postgres_missing() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None when they can."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    try:
        bindir()
    except ClusterUnavailable as exc:
        return str(exc)
    return None


def _needs_postgres(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("engine") == "postgresql":
        return True
    return "pg_cluster" in getattr(item, "fixturenames", ())


_PG_NOT_RUN: list[str] = []  # the one line the summary shows when PostgreSQL tests are left out


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # NOTE: left out at collection, not skipped one by one: a developer without PostgreSQL
    # sees one line saying how to enable them, instead of a skip line per test.
    reason = None if REQUIRE_POSTGRES else _postgres_missing()
    if reason is None:
        return
    dropped = [item for item in items if _needs_postgres(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not _needs_postgres(item)]
        _PG_NOT_RUN.append(
            f"{len(dropped)} PostgreSQL tests not run ({reason}): to run them, {ENABLE_HINT}"
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in _PG_NOT_RUN:
        terminalreporter.write_line(line, yellow=True)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> str:
    """The engine the `store` fixture opens (see ENGINE_MODULES)."""
    return getattr(request, "param", "sqlite-memory")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL server for the whole session (tests/pg_cluster.py)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _postgres_unavailable("psycopg is not installed")
    try:
        cluster = Cluster()
    except (ClusterUnavailable, OSError, subprocess.SubprocessError) as exc:
        _postgres_unavailable(str(exc))
    try:
        yield cluster
    finally:
        cluster.remove()


def _postgres_unavailable(reason: str) -> NoReturn:
    if REQUIRE_POSTGRES:
        pytest.fail(f"PostgreSQL is required here (CI / GOSTORE_REQUIRE_POSTGRES) but {reason}")
    pytest.skip(f"PostgreSQL tests skipped: to run them, {ENABLE_HINT}")


_SCHEMAS = itertools.count()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """A URL whose search_path names a schema with an empty ``entries`` table.

    The behaviour tests share one schema, emptied before each test: creating a table costs
    several times what most tests do. :func:`pg_fresh_url` gives a schema of its own.
    """
    pg_cluster.execute(
        "CREATE SCHEMA IF NOT EXISTS shared; "
        "DO $$ BEGIN IF to_regclass('shared.entries') IS NOT NULL "
        "THEN DELETE FROM shared.entries; END IF; END $$"
    )
    return f"{pg_cluster.url}?options=-csearch_path%3Dshared"


@pytest.fixture
def pg_fresh_url(pg_cluster: Cluster) -> str:
    """A URL whose search_path names a new, empty schema (no ``entries`` table yet)."""
    schema = f"t{next(_SCHEMAS)}"
    pg_cluster.execute(f"CREATE SCHEMA {schema}")
    return f"{pg_cluster.url}?options=-csearch_path%3D{schema}"


@pytest.fixture
def store_target(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the `store` fixture's store lives on its engine."""
    if engine == "sqlite-memory":
        return ":memory:"
    if engine == "sqlite-file":
        return str(tmp_path / "engine-store.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_target: str) -> Iterator[gostore.Store]:
    """A store without a purge thread, on the engine of the `engine` fixture."""
    with gostore.Store(store_target, purge_interval=0) as opened:
        yield opened


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def file_store(db_path: Path) -> Iterator[gostore.Store]:
    """A file-backed store without a purge thread."""
    with gostore.Store(db_path, purge_interval=0) as opened:
        yield opened


def _implementations() -> list[object]:
    params: list[object] = [pytest.param(_speedups_py, id="py")]
    try:
        from gostore import _speedups
    except ImportError:
        marks = [] if REQUIRE_SPEEDUPS else [pytest.mark.skip(reason="compiled module not built")]
        params.insert(0, pytest.param(None, id="c", marks=marks))
    else:
        params.insert(0, pytest.param(_speedups, id="c"))
    return params


@pytest.fixture(params=_implementations())
def speedups(request: pytest.FixtureRequest) -> object:
    """Each implementation of the accelerated module: "c" (compiled) and "py" (pure twin)."""
    if request.param is None:
        pytest.fail("GOSTORE_REQUIRE_SPEEDUPS=1 but gostore._speedups is not built")
    return request.param


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``mount``'s syntax, e.g. "1m") at ``where``, unmounted afterwards.

    Skips the test when mounting is impossible (it needs root): a full disk or a read-only
    filesystem cannot be made any other way as root, since root ignores file permissions.
    """
    where.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        pytest.skip("no mount command on this machine")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def remount_read_only(where: Path) -> None:
    """Make a tmpfs from :func:`mounted_tmpfs` read-only; skips the test when that fails."""
    result = subprocess.run(["mount", "-o", "remount,ro", str(where)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot remount read-only: {result.stderr.decode().strip()}")
