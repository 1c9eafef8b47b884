"""What only the PostgreSQL engine must show: the column types that make any str round-trip
in byte order, quotas atomic across processes, threads that do not wait for each other's
transactions, savepoints and the poison rule on a server that aborts, recovery from a server
restart, and a clear error without psycopg. The rest of the contract is checked by the
behaviour test modules, which run on every engine (tests/conftest.py, ENGINE_MODULES)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import gostore
from gostore import NotFoundError, QuotaConfig, Store, StoreError

from .conftest import run_in_threads
from .pg_cluster import Cluster, wait_until

TIMEOUT = 10.0


def raw(url: str) -> Any:
    """A psycopg connection of our own (autocommit) on the same schema as the store."""
    import psycopg

    return psycopg.connect(url, autocommit=True)


@pytest.fixture
def pg(pg_url: str) -> Iterator[Store]:
    with gostore.Store(pg_url, purge_interval=0) as opened:
        yield opened


# -- types and ordering ----------------------------------------------------------------------
def test_nul_characters_round_trip_in_group_key_and_value(pg: Store, pg_url: str) -> None:
    text = "a\x00b\x00"
    pg.set(text, text, text)
    assert pg.get(text, text) == text
    assert pg.get_all(text) == {text: text}
    assert pg.groups("a\x00") == [text]
    with raw(pg_url) as conn:
        row = conn.execute("SELECT group_name, entry_key, entry_value FROM entries").fetchone()
    assert row == (text.encode(), text.encode(), text.encode())  # stored as UTF-8 bytes


def test_keys_and_groups_are_ordered_by_utf8_bytes(pg: Store) -> None:
    # Code-point order is UTF-8 byte order; a collation or UTF-16 order would differ here.
    names = ["b", "B", "a", "\x00", "é", "\uffff", "\U00010000", "\ue000", "Z", "ab"]
    for name in names:
        pg.set("g", name, name)
        pg.set(name, "k", "v")
    expected = sorted(names, key=lambda s: s.encode())
    assert [kv.key for kv in pg.all("g")] == expected
    assert [kv.key for kv in pg.get_page("g", 2, 3)] == expected[2:5]
    assert pg.groups() == sorted([*names, "g"], key=lambda s: s.encode())


def test_prefixes_are_literal_and_bounded_by_bytes(pg: Store) -> None:
    for group in ["a%", "a_b", "ab", "a", "a\U0010ffff", "b"]:
        pg.set(group, "k", "v")
    assert pg.groups("a%") == ["a%"]
    assert pg.groups("a_") == ["a_b"]
    assert pg.count_all("a") == 5
    assert pg.groups("a\U0010ffff") == ["a\U0010ffff"]  # a prefix with no upper bound
    assert pg.delete_prefix("a") == 5
    assert pg.groups() == ["b"]


def test_the_table_is_created_in_the_first_schema_of_the_search_path(
    pg_fresh_url: str, pg_cluster: Cluster
) -> None:
    schema = pg_fresh_url.rpartition("%3D")[2]
    with gostore.Store(pg_fresh_url, purge_interval=0) as store:
        store.set("g", "k", "v")
    with raw(pg_cluster.url) as conn:
        rows = conn.execute(f"SELECT entry_key FROM {schema}.entries").fetchall()
    assert rows == [(b"k",)]


def test_a_foreign_entries_table_is_refused(pg_fresh_url: str) -> None:
    with raw(pg_fresh_url) as conn:
        conn.execute(
            "CREATE TABLE entries (group_name text, entry_key text, entry_value text, "
            "expires_at bigint, PRIMARY KEY (group_name, entry_key))"
        )
    with pytest.raises(StoreError, match=r"store\.open: .*'entries' has columns"):
        gostore.Store(pg_fresh_url, purge_interval=0)


@pytest.mark.parametrize(
    "held",
    [
        "INSERT INTO entries VALUES ('g', 'k', 'v', NULL)",  # a write transaction left open
        "LOCK TABLE entries IN SHARE UPDATE EXCLUSIVE MODE",  # what autovacuum holds
    ],
)
@pytest.mark.parametrize("change_feed", [False, True])
def test_opening_a_store_does_not_wait_for_other_clients_on_the_table(
    pg_fresh_url: str, held: str, change_feed: bool
) -> None:
    with gostore.Store(pg_fresh_url, purge_interval=0, change_feed=change_feed):
        pass  # the table, its index, counters, triggers (and feed) now exist
    with raw(pg_fresh_url) as holder:
        holder.execute("BEGIN")
        holder.execute(held)
        with gostore.Store(
            pg_fresh_url, purge_interval=0, busy_timeout=0.2, change_feed=change_feed
        ) as store:
            assert store.count("g") == 0
        holder.execute("ROLLBACK")


def test_an_open_that_must_create_the_table_reports_how_long_it_waited(
    pg_fresh_url: str,
) -> None:
    with raw(pg_fresh_url) as holder:
        holder.execute("BEGIN")
        holder.execute("CREATE TABLE entries_namespaces (namespace bytea)")  # not committed
        with pytest.raises(StoreError, match=r"store\.open: .*after waiting 0\.2 s"):
            gostore.Store(pg_fresh_url, purge_interval=0, busy_timeout=0.2)
        holder.execute("ROLLBACK")


def test_reopening_a_store_rewrites_nothing_in_the_catalog(pg_fresh_url: str) -> None:
    schema = pg_fresh_url.rpartition("%3D")[2]
    catalog = (
        "SELECT 'f' || proname, xmin::text FROM pg_proc WHERE pronamespace = %(s)s::regnamespace "
        "UNION ALL SELECT 't' || tgname, xmin::text FROM pg_trigger "
        "WHERE tgrelid = (%(s)s || '.entries')::regclass "
        "UNION ALL SELECT 'r' || relname, xmin::text FROM pg_class "
        "WHERE relnamespace = %(s)s::regnamespace ORDER BY 1"
    )
    with gostore.Store(pg_fresh_url, purge_interval=0):
        pass
    with raw(pg_fresh_url) as conn:
        before = conn.execute(catalog, {"s": schema}).fetchall()
        with gostore.Store(pg_fresh_url, purge_interval=0):
            pass
        after = conn.execute(catalog, {"s": schema}).fetchall()
    assert len(before) >= 3 + 4 + 3  # functions, triggers, tables and index
    assert after == before


def test_an_outdated_counter_function_is_replaced_at_open(pg_fresh_url: str) -> None:
    with gostore.Store(pg_fresh_url, purge_interval=0):
        pass
    with raw(pg_fresh_url) as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION gostore_entries_note() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"
        )
    with gostore.Store(pg_fresh_url, purge_interval=0) as store:
        scoped = store.scoped("ns", QuotaConfig(max_keys=1))
        scoped.set("g", "a", "v")
        with raw(pg_fresh_url) as conn:  # a write the counters must see
            conn.execute("DELETE FROM entries")
        scoped.set("g", "b", "v")  # the ledger saw the delete: room for one key again


def test_the_path_hides_the_password(pg_cluster: Cluster, pg_url: str) -> None:
    url = pg_url.replace("gostore@", "gostore:s3cret@")
    with gostore.Store(url, purge_interval=0) as store:  # trust authentication ignores it
        assert "s3cret" not in store.path
        assert "s3cret" not in repr(store)


def test_an_unreachable_server_fails_the_open_with_a_clear_error() -> None:
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"store\.open: cannot open .*127\.0\.0\.1:1/"):
        gostore.Store("postgresql://nobody@127.0.0.1:1/none", purge_interval=0, busy_timeout=1)
    assert time.monotonic() - started < TIMEOUT


# -- quotas across processes -----------------------------------------------------------------
_RACER = textwrap.dedent(
    """
    import sys, time
    import gostore
    url, me, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with gostore.Store(url, purge_interval=0) as store:
        tenant = store.scoped("ns", gostore.QuotaConfig(max_keys=5))
        time.sleep(max(0.0, start - time.time()))
        added = 0
        for i in range(5):
            try:
                tenant.set("g", f"{me}-{i}", "v")
                added += 1
            except gostore.QuotaExceededError:
                pass
        print(added)
    """
)


def test_four_processes_racing_under_max_keys_5_leave_exactly_5(pg: Store, pg_url: str) -> None:
    start = time.time() + 1.5  # every process is connected by then, and they start together
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, pg_url, f"p{n}", str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    added = []
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err
        added.append(int(out))
    assert sum(added) == 5
    assert pg.count_all("ns:") == 5


# -- threads ---------------------------------------------------------------------------------
def test_other_threads_do_not_wait_for_an_open_transaction(pg: Store) -> None:
    pg.set("g", "k", "old")
    seen: dict[str, object] = {}

    def other() -> None:
        seen["read"] = pg.get("g", "k")  # the committed value, at once
        pg.set("g", "elsewhere", "v")  # a write on another row does not wait either
        seen["count"] = pg.count("g")

    with pg.transaction() as tx:
        tx.set("g", "k", "new")
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        assert tx.get("g", "elsewhere") == "v"  # committed by the other thread meanwhile
    assert seen == {"read": "old", "count": 2}
    assert pg.get("g", "k") == "new"


def test_a_write_waiting_for_a_transactions_row_does_not_stop_that_transaction(
    pg: Store,
) -> None:
    # The other thread's write waits for the row lock of the open transaction; the
    # transaction must still be able to write and commit (no lock held in the client).
    done = threading.Event()

    def writer() -> None:
        pg.set("g", "k", "from-thread")
        done.set()

    with pg.transaction() as tx:
        tx.set("g", "k", "from-tx")
        thread = threading.Thread(target=writer)
        thread.start()
        assert not done.wait(0.2)  # waits for the row
        tx.set("g", "other", "v")
        tx.set("g", "third", "v")
    thread.join(TIMEOUT)
    assert done.is_set()
    assert pg.get("g", "k") == "from-thread"  # it ran after the commit
    assert pg.count("g") == 3


def test_transactions_in_threads_commit_their_own_events(pg: Store) -> None:
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(event: gostore.Event) -> None:
        with lock:
            events.append((event.group, event.key))

    pg.on_change(record)

    def work(n: int) -> None:
        for i in range(5):
            with pg.transaction() as tx:
                tx.set(f"t{n}", f"k{i}", "v")
                tx.set(f"t{n}", f"k{i}b", "v")
            if i == 4:
                with pytest.raises(ZeroDivisionError), pg.transaction() as tx:
                    tx.set(f"t{n}", "rolled-back", "v")
                    raise ZeroDivisionError

    run_in_threads(work, 4)
    assert sorted(events) == sorted(
        (f"t{n}", f"k{i}{s}") for n in range(4) for i in range(5) for s in ("", "b")
    )
    assert pg.count_all("t") == 40


def test_many_threads_read_and_write_concurrently(pg: Store) -> None:
    def work(n: int) -> None:
        for i in range(50):
            pg.set(f"g{n % 3}", f"t{n}-{i}", str(i))
            assert pg.get(f"g{n % 3}", f"t{n}-{i}") == str(i)

    run_in_threads(work, 8)
    assert pg.count_all("g") == 400


# -- transactions on a server that aborts them -----------------------------------------------
def test_a_failed_statement_poisons_the_transaction_until_it_ends(
    pg_url: str,
) -> None:
    with gostore.Store(pg_url, purge_interval=0, busy_timeout=0.2) as store:
        store.set("g", "locked", "v")
        with raw(pg_url) as holder:
            holder.execute("BEGIN")
            holder.execute("SELECT 1 FROM entries WHERE entry_key = 'locked' FOR UPDATE")
            with pytest.raises(StoreError, match="rolled back"), store.transaction() as tx:
                tx.set("g", "a", "1")
                with pytest.raises(
                    StoreError, match=r"tx\.set .*: the data is locked by another connection"
                ):
                    tx.set("g", "locked", "new")
                with pytest.raises(StoreError, match="failed earlier"):
                    tx.get("g", "a")
            holder.execute("ROLLBACK")
        with pytest.raises(NotFoundError):
            store.get("g", "a")  # the whole block was rolled back
        store.set("g", "after", "v")  # and the store is usable
        assert store.get("g", "locked") == "v"


def test_a_failed_inner_level_rolls_back_alone(pg_url: str) -> None:
    with gostore.Store(pg_url, purge_interval=0, busy_timeout=0.2) as store:
        store.set("g", "locked", "v")
        with raw(pg_url) as holder:
            holder.execute("BEGIN")
            holder.execute("SELECT 1 FROM entries WHERE entry_key = 'locked' FOR UPDATE")
            with store.transaction() as outer:
                outer.set("g", "outer", "v")
                with pytest.raises(StoreError), store.transaction() as inner:
                    inner.set("g", "inner", "v")
                    inner.set("g", "locked", "new")
                outer.set("g", "outer2", "v")  # usable again once the inner level is undone
            holder.execute("ROLLBACK")
        assert store.get_all("g") == {"locked": "v", "outer": "v", "outer2": "v"}


# -- expiry ----------------------------------------------------------------------------------
def test_two_clients_purging_at_once_remove_each_row_once(pg_url: str) -> None:
    with (
        gostore.Store(pg_url, purge_interval=0) as one,
        gostore.Store(pg_url, purge_interval=0) as two,
    ):
        one.set_many("g", {f"k{i}": "v" for i in range(300)}, ttl=0.05)
        time.sleep(0.1)
        removed: list[int] = [0, 0]

        def purge(n: int) -> None:
            removed[n] = (one, two)[n].purge_expired()

        run_in_threads(purge, 2)
        assert sum(removed) == 300


# -- a lost server ---------------------------------------------------------------------------
def test_calls_fail_clearly_while_the_server_is_down_and_recover_after(
    pg_cluster: Cluster, pg_url: str
) -> None:
    with gostore.Store(pg_url, purge_interval=0, busy_timeout=1) as store:
        store.set("g", "k", "v")
        pg_cluster.stop()
        try:
            for call in (lambda: store.get("g", "k"), lambda: store.set("g", "k", "w")):
                started = time.monotonic()
                with pytest.raises(StoreError, match=r"store\.(get|set) .*: .*connect"):
                    call()
                assert time.monotonic() - started < TIMEOUT
        finally:
            pg_cluster.start()
        assert wait_until(lambda: store.get("g", "k") == "v", TIMEOUT)
        store.set("g", "k", "after")
        assert store.get("g", "k") == "after"


# -- psycopg missing -------------------------------------------------------------------------
def test_a_url_without_psycopg_installed_names_the_extra_to_install() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["psycopg"] = None  # as if it were not installed
        import gostore
        try:
            gostore.Store("postgresql://app@db.invalid/app")
        except gostore.StoreError as exc:
            print(exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.startswith("store.open: ")
    assert 'pip install "gostore[postgresql]"' in out.stdout


def test_sqlite_paths_do_not_need_psycopg() -> None:
    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "import gostore\n"
        "with gostore.Store(':memory:') as s: s.set('g', 'k', 'v'); print(s.get('g', 'k'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "v"


def test_quota_checks_stay_exact_with_a_second_client_writing(pg: Store, pg_url: str) -> None:
    tenant = pg.scoped("ns", QuotaConfig(max_keys=3))
    tenant.set("g", "a", "1")
    with gostore.Store(pg_url, purge_interval=0) as other:
        other.scoped("ns", QuotaConfig(max_keys=3)).set("g", "b", "1")
        other.set("ns:g", "c", "1")  # unchecked, but it counts
    with pytest.raises(gostore.QuotaExceededError):
        tenant.set("g", "d", "1")
    pg.delete("ns:g", "c")
    tenant.set("g", "d", "1")


def _ledger_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each time a quota ledger is built from a scan of its namespace (the lo of its range)."""
    from gostore.engine.postgres import PostgresEngine

    builds: list[str] = []
    scan = PostgresEngine.range_totals

    def counted(engine: PostgresEngine, lo: str, hi: str | bytes, now: int) -> Any:
        builds.append(lo)
        return scan(engine, lo, hi, now)

    monkeypatch.setattr(PostgresEngine, "range_totals", counted)
    return builds


def test_checked_writes_count_the_namespace_once_not_at_every_write(
    pg: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = _ledger_builds(monkeypatch)
    pg.set_many("ns:fill", {f"k{i}": "v" for i in range(1000)})
    tenant = pg.scoped("ns", QuotaConfig(max_keys=1013))
    for i in range(10):
        tenant.set("g", f"n{i}", "v")
    tenant.set_many("g", {"m1": "v", "m2": "v"})
    with tenant.transaction() as tx:
        tx.delete("g", "n0")
        tx.set("g", "n0", "v")
    assert tenant.incr("g", "counter") == 1
    assert builds == ["ns:"]
    with pytest.raises(gostore.QuotaExceededError):
        tenant.set_many("g", {"o1": "v", "o2": "v"})
    assert pg.count_all("ns:") == 1000 + 10 + 2 + 1
    assert builds == ["ns:"]


def test_a_write_by_another_program_is_seen_by_the_next_check(
    pg: Store, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = _ledger_builds(monkeypatch)
    tenant = pg.scoped("ns", QuotaConfig(max_keys=3))
    tenant.set("g", "a", "1")
    tenant.set("g", "b", "1")
    with raw(pg_url) as conn:
        conn.execute("INSERT INTO entries VALUES ('ns:other', 'x', 'v', NULL)")
        with pytest.raises(gostore.QuotaExceededError):
            tenant.set("g", "c", "1")
        conn.execute("DELETE FROM entries WHERE group_name = 'ns:other'")
        tenant.set("g", "c", "1")
        with pytest.raises(gostore.QuotaExceededError):
            tenant.set("g", "d", "1")
        conn.execute("TRUNCATE entries")
        tenant.set("g", "d", "1")
        conn.execute("UPDATE entries SET group_name = 'elsewhere:g'")
        tenant.set("g", "e", "1")
        tenant.set("g", "f", "1")
    assert len(builds) == 5  # the first check, then one after each change by the program


def test_a_write_in_another_namespace_leaves_the_ledger_alone(
    pg: Store, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = _ledger_builds(monkeypatch)
    tenant = pg.scoped("ns", QuotaConfig(max_keys=3))
    tenant.set("g", "a", "1")
    with gostore.Store(pg_url, purge_interval=0) as other:
        other.set("other:g", "x", "1")
        other.set("nsx:g", "x", "1")
        other.set("plain", "x", "1")
    tenant.set("g", "b", "1")
    assert builds == ["ns:"]


def test_removing_rows_that_had_expired_leaves_the_ledger_alone(
    pg: Store, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = _ledger_builds(monkeypatch)
    tenant = pg.scoped("ns", QuotaConfig(max_keys=2))
    tenant.set_with_ttl("g", "short", "1", 0.05)
    tenant.set("g", "a", "1")
    time.sleep(0.1)
    with gostore.Store(pg_url, purge_interval=0) as other:
        assert other.purge_expired() == 1
    tenant.set("g", "b", "1")
    assert builds == ["ns:"]
    with pytest.raises(gostore.QuotaExceededError):
        tenant.set("g", "c", "1")


def test_an_unchecked_write_committed_by_another_thread_counts_for_the_next_check(
    pg: Store,
) -> None:
    tenant = pg.scoped("ns", QuotaConfig(max_keys=3))
    tenant.set("g", "a", "1")
    written = threading.Event()
    go_on = threading.Event()

    def other_thread() -> None:
        with pg.transaction() as tx:
            tx.set("ns:g", "x", "1")  # not quota-checked; committed after the check below
            written.set()
            assert go_on.wait(TIMEOUT)

    worker = threading.Thread(target=other_thread)
    worker.start()
    assert written.wait(TIMEOUT)
    tenant.set("g", "b", "1")  # its ledger cannot see the uncommitted x
    go_on.set()
    worker.join(TIMEOUT)
    with pytest.raises(gostore.QuotaExceededError):
        tenant.set("g", "c", "1")
    assert pg.count_all("ns:") == 3


def test_counter_rows_of_ended_connections_are_folded_by_the_purge(pg: Store, pg_url: str) -> None:
    for n in range(3):
        with gostore.Store(pg_url, purge_interval=0) as other:
            other.scoped("ns", QuotaConfig(max_keys=100)).set("g", f"k{n}", "v")
            other.set(f"ns:g{n}", "x", "1")
    pg.purge_expired()
    with raw(pg_url) as conn:
        rows = conn.execute(
            "SELECT writer, backend IN (SELECT pid FROM pg_stat_activity) FROM "
            "entries_namespaces WHERE namespace = 'ns' AND backend <> 0"
        ).fetchall()
        folded = conn.execute(
            "SELECT changes FROM entries_namespaces WHERE namespace = 'ns' AND backend = 0"
        ).fetchall()
    assert all(alive for _, alive in rows)  # only the rows of connections still open stay
    assert len(folded) == 1 and folded[0][0] >= 6
    tenant = pg.scoped("ns", QuotaConfig(max_keys=7))
    tenant.set("g", "last", "v")
    with pytest.raises(gostore.QuotaExceededError):
        tenant.set("g", "over", "v")


# -- command line ----------------------------------------------------------------------------
def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gostore", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_the_command_line_takes_a_url_in_db_and_gostore_db(pg: Store, pg_url: str) -> None:
    import os

    done = _cli("--db", pg_url, "set", "config", "colour", "blue")
    assert done.returncode == 0, done.stderr
    assert pg.get("config", "colour") == "blue"
    env = {**os.environ, "GOSTORE_DB": pg_url}
    done = _cli("get", "config", "colour", env=env)
    assert (done.returncode, done.stdout) == (0, "blue\n"), done.stderr


def test_bench_with_a_url_compares_gostore_with_raw_psycopg(pg_url: str) -> None:
    done = _cli("bench", "--db", pg_url, "--quick")
    assert done.returncode in (0, 1), done.stderr  # 1: a target was missed on this machine
    for row in ("| Get |", "| Set |", "| SetMany vs Set, per key |", "| GetAll (10,000 keys) |"):
        assert row in done.stdout
    with gostore.Store(pg_url, purge_interval=0) as store:
        assert store.groups("gostore-bench:") == []  # it cleans up after itself


def test_stats_check_and_vacuum_work_and_file_tools_refer_to_postgres(
    pg: Store, clock: Any
) -> None:
    pg.set("g", "a", "xyz")
    pg.set_with_ttl("g", "gone", "v", 1)
    pg.set("h", "é", "1")
    clock.advance(2)
    stats = pg.stats()
    assert (stats.keys, stats.expired, stats.groups) == (2, 1, 2)
    assert stats.bytes == len("axyz") + len("é1".encode())
    assert stats.file_bytes > 0 and stats.wal_bytes == 0
    assert pg.check() == []
    pg.vacuum()
    with pytest.raises(StoreError, match="pg_dump"):
        pg.backup("/tmp/never-written.db")
    with pytest.raises(StoreError, match="server's own"):
        pg.checkpoint()


def test_a_readonly_store_on_postgres_reads_and_refuses_every_write(pg: Store, pg_url: str) -> None:
    pg.set("g", "k", "v")
    with Store(pg_url, purge_interval=0, readonly=True) as ro:
        assert ro.get("g", "k") == "v"
        for write in (
            lambda: ro.set("g", "k", "w"),
            lambda: ro.delete("g", "k"),
            lambda: ro.incr("g", "n"),
        ):
            with pytest.raises(StoreError, match="read-only"):
                write()
    assert pg.get("g", "k") == "v"


@pytest.mark.parametrize("change_feed", [False, True])
def test_set_many_calls_writing_the_same_keys_in_other_orders_do_not_deadlock(
    pg_fresh_url: str, change_feed: bool
) -> None:
    """Without the feed each call's rows are written in key order, whatever order the caller
    gave them in; with it every statement takes the feed's lock before its rows. Either way
    two calls never wait for each other's rows in a circle."""
    keys = [f"k{i:04d}" for i in range(400)]
    with gostore.Store(pg_fresh_url, purge_interval=0, change_feed=change_feed) as store:

        def write(n: int) -> None:
            order = keys if n % 2 else keys[::-1]
            for round_ in range(8):
                store.set_many("g", {key: f"{n}-{round_}" for key in order})

        run_in_threads(write, 4)
        assert store.count("g") == len(keys)
