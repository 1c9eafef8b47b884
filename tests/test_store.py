"""Store API: CRUD, bulk and paged reads, prefixes, lifecycle.

Includes go-store's own hardening matrix: 10 concurrent threads, missing group
vs missing key, delete_group then get_all, count after 500 inserts, :memory: vs file, WAL mode
and the edge-case strings.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import gostore
from gostore import KeyValue, NotFoundError, Store, StoreClosedError, StoreError

from .conftest import FakeClock, run_in_threads

# Every Unicode plane (0..16), the highest code point and characters that are special to
# SQL, LIKE, globs, JSON, shells and C strings.
EVERY_PLANE = "".join(chr((plane << 16) | 0x1234) for plane in range(17)) + "\U0010ffff"
EDGE_STRINGS = {
    "empty": "",
    "long_10k": "k" * 10_000,
    "nul_inside": "a\x00b",
    "nul_only": "\x00",
    "nul_trailing": "value\x00",
    "cjk": "日本語のキー",
    "arabic": "مفتاح عربي",
    "accented": "café naïve",
    "emoji": "🎉😀👍🏽",
    "every_plane": EVERY_PLANE,
    "bom_zwsp": "\ufeff\u200b",
    "sql_injection": "'; DROP TABLE entries; --",
    "sql_or": "1' OR '1'='1",
    "like_wildcards": "%_%",
    "special": "\t\n\r\\\"'`$*?[]{}<>&|;#~^",
    "latin1_controls": "\x01\x7f\x80\x9f\xff",
    "star": "*",
    "colon": "ns:group",
}
EDGE_IDS = list(EDGE_STRINGS)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def raw_rows(path: Path) -> list[tuple[Any, ...]]:
    """Every physical row of the file, read with a separate APSW connection."""
    conn = apsw.Connection(str(path))
    try:
        return conn.execute(
            "SELECT group_name, entry_key, entry_value, expires_at FROM entries "
            "ORDER BY group_name, entry_key"
        ).fetchall()
    finally:
        conn.close()


# -- basic CRUD ----------------------------------------------------------------------------------
def test_set_then_get_returns_value(store: Store) -> None:
    store.set("config", "colour", "blue")
    assert store.get("config", "colour") == "blue"


def test_set_replaces_existing_value(store: Store) -> None:
    store.set("config", "colour", "blue")
    store.set("config", "colour", "green")
    assert store.get("config", "colour") == "green"
    assert store.count("config") == 1


def test_get_on_missing_group_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.get("no-such-group", "colour")


def test_get_on_missing_key_in_existing_group_raises_not_found(store: Store) -> None:
    store.set("config", "colour", "blue")
    with pytest.raises(NotFoundError) as info:
        store.get("config", "size")
    assert info.value.group == "config"
    assert info.value.key == "size"


def test_groups_are_isolated(store: Store) -> None:
    store.set("a", "k", "1")
    store.set("b", "k", "2")
    assert store.get("a", "k") == "1"
    assert store.get("b", "k") == "2"
    assert store.get_all("a") == {"k": "1"}


def test_exists_reports_live_keys_only(store: Store) -> None:
    store.set("g", "k", "v")
    assert store.exists("g", "k") is True
    assert store.exists("g", "other") is False
    assert store.exists("other", "k") is False


def test_delete_removes_key_and_tolerates_absent_key(store: Store) -> None:
    store.set("g", "k", "v")
    store.delete("g", "k")
    with pytest.raises(NotFoundError):
        store.get("g", "k")
    store.delete("g", "k")  # absent: no error
    store.delete("nothing", "here")


def test_delete_group_then_get_all_is_empty(store: Store) -> None:
    for i in range(5):
        store.set("g", f"k{i}", "v")
    store.set("other", "k", "v")
    store.delete_group("g")
    assert store.get_all("g") == {}
    assert store.count("g") == 0
    assert store.get_all("other") == {"k": "v"}
    store.delete_group("g")  # already empty: no error


def test_count_after_500_bulk_inserts(store: Store) -> None:
    for i in range(500):
        store.set("bulk", f"key-{i}", f"value-{i}")
    assert store.count("bulk") == 500
    assert store.count("empty") == 0
    assert len(store.get_all("bulk")) == 500


def test_get_all_returns_every_entry(store: Store) -> None:
    entries = {f"k{i}": f"v{i}" for i in range(50)}
    for k, v in entries.items():
        store.set("g", k, v)
    assert store.get_all("g") == entries
    assert store.get_all("missing") == {}


def test_concurrent_set_and_get_from_10_threads(file_store: Store) -> None:
    def work(n: int) -> None:
        for i in range(100):
            file_store.set(f"group-{n % 3}", f"t{n}-k{i}", f"{n}:{i}")
            assert file_store.get(f"group-{n % 3}", f"t{n}-k{i}") == f"{n}:{i}"
            file_store.count(f"group-{n % 3}")

    run_in_threads(work, 10)
    assert file_store.count_all() == 1000


# -- memory vs file, WAL -------------------------------------------------------------------------
def test_memory_store_does_not_persist_across_instances() -> None:
    with Store(":memory:", purge_interval=0) as first:
        first.set("g", "k", "v")
    with Store(":memory:", purge_interval=0) as second:
        assert second.count_all() == 0


def test_file_store_persists_across_close_and_reopen(db_path: Path) -> None:
    with Store(db_path, purge_interval=0) as first:
        first.set("g", "k", "v")
        first.set_with_ttl("g", "ttl", "v", 3600)
    with Store(db_path, purge_interval=0) as second:
        assert second.get("g", "k") == "v"
        assert second.get("g", "ttl") == "v"
        assert second.count("g") == 2


def test_file_store_uses_wal_journal_mode(file_store: Store, db_path: Path) -> None:
    file_store.set("g", "k", "v")
    conn = apsw.Connection(str(db_path))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchall() == [("wal",)]
    finally:
        conn.close()


def test_pathlike_paths_are_accepted(tmp_path: Path) -> None:
    class Custom(os.PathLike[str]):
        def __fspath__(self) -> str:
            return str(tmp_path / "custom.db")

    with Store(tmp_path / "pathlib.db", purge_interval=0) as s:
        s.set("g", "k", "v")
        assert s.path == str(tmp_path / "pathlib.db")
    with Store(Custom(), purge_interval=0) as s:
        s.set("g", "k", "v")
    assert (tmp_path / "pathlib.db").exists()
    assert (tmp_path / "custom.db").exists()


# -- edge-case strings ---------------------------------------------------------------------------
@pytest.mark.parametrize("text", EDGE_STRINGS.values(), ids=EDGE_IDS)
def test_edge_case_string_round_trips_as_group_key_and_value(store: Store, text: str) -> None:
    store.set(text, text, text)
    assert store.get(text, text) == text
    assert store.exists(text, text)
    assert store.get_all(text) == {text: text}
    assert list(store.all(text)) == [KeyValue(text, text)]
    assert store.get_page(text) == [KeyValue(text, text)]
    assert store.get_many(text, [text]) == {text: text}
    assert store.groups() == [text]
    assert store.groups(text) == [text]
    assert store.count(text) == 1
    assert store.count_all(text) == 1


@pytest.mark.parametrize("text", EDGE_STRINGS.values(), ids=EDGE_IDS)
def test_edge_case_string_persists_in_a_file(db_path: Path, text: str) -> None:
    with Store(db_path, purge_interval=0) as s:
        s.set(text, text, text)
    with Store(db_path, purge_interval=0) as s:
        assert s.get(text, text) == text
    assert raw_rows(db_path) == [(text, text, text, None)]


def test_edge_case_keys_in_one_group_round_trip_in_binary_order(store: Store) -> None:
    entries = {text: f"value of {name}" for name, text in EDGE_STRINGS.items()}
    store.set_many("edge", entries)
    assert store.get_all("edge") == entries
    # SQLite's BINARY collation compares UTF-8 bytes, which orders like code points.
    expected = [KeyValue(k, entries[k]) for k in sorted(entries)]
    assert list(store.all("edge")) == expected
    assert store.get_page("edge", 0, 1000) == expected


def test_sql_injection_text_is_stored_literally(store: Store) -> None:
    store.set("g", "'; DROP TABLE entries; --", "x")
    store.set("g", "k", "'); DELETE FROM entries; --")
    assert store.count("g") == 2
    assert store.get("g", "k") == "'); DELETE FROM entries; --"


def test_keys_differing_only_after_nul_are_distinct(store: Store) -> None:
    store.set("g", "a\x00b", "1")
    store.set("g", "a\x00c", "2")
    store.set("g", "a", "3")
    assert store.get_all("g") == {"a\x00b": "1", "a\x00c": "2", "a": "3"}


# -- all / get_page ------------------------------------------------------------------------------
def test_all_yields_ascending_binary_order_across_pages(store: Store) -> None:
    # More than the internal page (1024) so the keyset continuation is exercised.
    keys = [f"{i:05d}" for i in range(2500)] + ["Z", "a", "é", "\U0001f600", ""]
    store.set_many("g", {k: k + "!" for k in keys})
    result = list(store.all("g"))
    assert result == [KeyValue(k, k + "!") for k in sorted(keys)]
    assert all(isinstance(kv, KeyValue) for kv in result)


def test_all_breaking_out_early_leaves_store_usable(file_store: Store, db_path: Path) -> None:
    file_store.set_many("g", {f"k{i:04d}": "v" for i in range(2000)})
    seen = []
    for kv in file_store.all("g"):
        seen.append(kv.key)
        if len(seen) == 3:
            break
    assert seen == ["k0000", "k0001", "k0002"]
    file_store.set("g", "after", "v")
    # Another connection can write: the abandoned iterator holds no read transaction.
    with Store(db_path, purge_interval=0, busy_timeout=0) as other:
        other.set("g", "other", "v")
    assert file_store.count("g") == 2002


def test_all_of_missing_group_is_empty(store: Store) -> None:
    assert list(store.all("nothing")) == []


def test_get_page_returns_slices_of_all(store: Store) -> None:
    store.set_many("g", {f"k{i:02d}": str(i) for i in range(25)})
    everything = list(store.all("g"))
    assert store.get_page("g") == everything  # default limit 100
    assert store.get_page("g", 0, 10) == everything[:10]
    assert store.get_page("g", 10, 10) == everything[10:20]
    assert store.get_page("g", 20, 10) == everything[20:]
    assert store.get_page("g", offset=25) == []
    assert store.get_page("g", offset=1000) == []
    assert store.get_page("g", limit=0) == []
    assert store.get_page("missing") == []


@pytest.mark.parametrize(
    ("offset", "limit", "error"),
    [
        ("1", 10, TypeError),
        (1.0, 10, TypeError),
        (None, 10, TypeError),
        (True, 10, TypeError),
        (0, "10", TypeError),
        (0, 2.5, TypeError),
        (0, False, TypeError),
        (-1, 10, ValueError),
        (0, -1, ValueError),
    ],
)
def test_get_page_rejects_bad_offset_and_limit(
    store: Store, offset: Any, limit: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"store\.get_page"):
        store.get_page("g", offset, limit)


# -- bulk ----------------------------------------------------------------------------------------
def test_set_many_writes_every_entry(store: Store) -> None:
    store.set_many("g", {"a": "1", "b": "2"})
    store.set_many("g", {})
    assert store.get_all("g") == {"a": "1", "b": "2"}


def test_set_many_without_ttl_clears_existing_ttl(store: Store, clock: FakeClock) -> None:
    store.set_with_ttl("g", "a", "old", 1)
    store.set_many("g", {"a": "new"})
    clock.advance(10)
    assert store.get("g", "a") == "new"


def test_set_many_with_ttl_expires_entries(store: Store, clock: FakeClock) -> None:
    store.set_many("g", {"a": "1", "b": "2"}, ttl=5)
    assert store.count("g") == 2
    clock.advance(5)
    assert store.count("g") == 0


def test_set_many_rejects_non_mapping_and_writes_nothing(store: Store) -> None:
    with pytest.raises(TypeError, match=r"store\.set_many"):
        store.set_many("g", [("a", "1")])  # type: ignore[arg-type]
    assert store.count_all() == 0


def test_get_many_returns_only_live_requested_keys(store: Store) -> None:
    store.set_many("g", {"a": "1", "b": "2", "c": "3"})
    store.set_with_ttl("g", "gone", "x", -1)
    assert store.get_many("g", ["a", "c", "missing", "gone"]) == {"a": "1", "c": "3"}
    assert store.get_many("g", ("b",)) == {"b": "2"}
    assert store.get_many("g", []) == {}
    assert store.get_many("other", ["a"]) == {}


# -- get_split / get_fields ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "separator", "expected"),
    [
        ("a,,b", ",", ["a", "", "b"]),
        ("a,b,", ",", ["a", "b", ""]),
        ("abc", "", ["a", "b", "c"]),
        ("", ",", [""]),
        ("", "", []),
        ("no-separator", ",", ["no-separator"]),
        ("a::b::c", "::", ["a", "b", "c"]),
        ("x\x00y", "\x00", ["x", "y"]),
        ("日本語", "", ["日", "本", "語"]),
    ],
)
def test_get_split_follows_go_strings_split(
    store: Store, value: str, separator: str, expected: list[str]
) -> None:
    store.set("g", "k", value)
    result = store.get_split("g", "k", separator)
    assert iter(result) is result  # an iterator, as go-store's iter.Seq
    assert list(result) == expected


def test_get_split_of_missing_key_raises_at_call(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.get_split("g", "missing", ",")  # no next() needed


def test_get_fields_splits_on_go_whitespace(store: Store) -> None:
    store.set("g", "k", "  a\tb\n\nc\x85d\xa0e\u3000f  ")
    store.set("g", "seps", "a\x1cb\x1dc\x1ed\x1ff")
    store.set("g", "blank", " \t\n ")
    assert list(store.get_fields("g", "k")) == ["a", "b", "c", "d", "e", "f"]
    assert list(store.get_fields("g", "seps")) == ["a\x1cb\x1dc\x1ed\x1ff"]
    assert list(store.get_fields("g", "blank")) == []


def test_get_fields_of_missing_key_raises_at_call(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.get_fields("g", "missing")


# -- delete_prefix -------------------------------------------------------------------------------
def test_delete_prefix_removes_matching_groups_and_returns_rows(store: Store) -> None:
    store.set_many("tenant-a:config", {"a": "1", "b": "2"})
    store.set("tenant-a:users", "u", "1")
    store.set("tenant-ab:config", "a", "1")
    store.set("tenant-b:config", "a", "1")
    assert store.delete_prefix("tenant-a:") == 3
    assert store.groups() == ["tenant-ab:config", "tenant-b:config"]
    assert store.delete_prefix("tenant-a:") == 0


def test_delete_prefix_treats_like_wildcards_literally(store: Store) -> None:
    for group in ("a%b", "axb", "a_c", "abc", "a%", "a"):
        store.set(group, "k", "v")
    assert store.delete_prefix("a%") == 2  # "a%b" and "a%"
    assert store.delete_prefix("a_") == 1  # "a_c" only
    assert store.groups() == ["a", "abc", "axb"]


def test_delete_prefix_is_case_sensitive(store: Store) -> None:
    store.set("App", "k", "v")
    store.set("app", "k", "v")
    store.set("APP:x", "k", "v")
    assert store.delete_prefix("app") == 1
    assert store.groups() == ["APP:x", "App"]


def test_delete_prefix_with_nul_in_prefix(store: Store) -> None:
    for group in ("p\x00x", "p\x00y", "p", "pz", "p\x01", "q\x00x"):
        store.set(group, "k", "v")
    assert store.delete_prefix("p\x00") == 2
    assert store.groups() == ["p", "p\x01", "pz", "q\x00x"]


def test_delete_prefix_counts_expired_rows_and_removes_them(store: Store) -> None:
    store.set("g:1", "live", "v")
    store.set("g:1", "live2", "v")
    store.set_with_ttl("g:2", "dead", "v", -1)
    assert store.delete_prefix("g:") == 3
    assert store.purge_expired() == 0  # nothing left physically


def test_delete_prefix_ending_in_max_code_point(store: Store) -> None:
    for group in ("a\U0010ffff", "a\U0010ffffb", "a\U0010fffe", "b", "a"):
        store.set(group, "k", "v")
    assert store.count_all("a\U0010ffff") == 2
    assert store.groups("a\U0010ffff") == ["a\U0010ffff", "a\U0010ffffb"]
    assert store.delete_prefix("a\U0010ffff") == 2
    assert store.groups() == ["a", "a\U0010fffe", "b"]


def test_delete_prefix_empty_removes_everything(store: Store) -> None:
    store.set("", "k", "v")
    store.set("x", "k", "v")
    store.set("\U0010ffff", "k", "v")
    assert store.delete_prefix("") == 3
    assert store.count_all() == 0


# -- count_all / groups / groups_iter ------------------------------------------------------------
def test_count_all_counts_live_keys_in_prefixed_groups(store: Store) -> None:
    store.set_many("ns:a", {"1": "x", "2": "x"})
    store.set("ns:b", "1", "x")
    store.set("nsx", "1", "x")
    store.set("NS:c", "1", "x")
    store.set_with_ttl("ns:c", "dead", "x", -1)
    assert store.count_all("ns:") == 3
    assert store.count_all("ns") == 4
    assert store.count_all("n%") == 0
    assert store.count_all() == 5
    assert store.count_all("zzz") == 0


def test_groups_lists_distinct_live_groups_ascending(store: Store) -> None:
    store.set_many("b", {"1": "x", "2": "x"})
    store.set("a", "1", "x")
    store.set("", "1", "x")
    store.set("é", "1", "x")
    store.set("B", "1", "x")
    store.set_with_ttl("dead", "1", "x", -1)
    assert store.groups() == ["", "B", "a", "b", "é"]
    assert store.groups("b") == ["b"]
    assert store.groups("_") == []


def test_groups_prefix_is_literal_and_case_sensitive(store: Store) -> None:
    for group in ("t_a", "tXa", "T_a", "t%"):
        store.set(group, "k", "v")
    assert store.groups("t_") == ["t_a"]
    assert store.groups("t%") == ["t%"]
    assert store.groups("T") == ["T_a"]


def test_groups_and_groups_iter_cross_the_internal_page_size(store: Store) -> None:
    names = [f"g{i:05d}" for i in range(1500)]
    with store.transaction() as tx:
        for name in names:
            tx.set(name, "k1", "v")
            tx.set(name, "k2", "v")
        tx.set("other", "k", "v")
    assert store.groups("g") == names
    lazy = store.groups_iter("g")
    assert iter(lazy) is lazy
    assert next(lazy) == "g00000"
    assert list(lazy) == names[1:]
    assert len(store.groups()) == 1501
    assert store.count_all("g") == 3000


def test_groups_iter_breaking_out_early(store: Store) -> None:
    for i in range(10):
        store.set(f"g{i}", "k", "v")
    for name in store.groups_iter():
        assert name == "g0"
        break
    store.set("g10", "k", "v")
    assert len(store.groups()) == 11


# -- lifecycle -----------------------------------------------------------------------------------
def test_context_manager_closes_store() -> None:
    with Store(purge_interval=0) as s:
        assert s.closed is False
    assert s.closed is True
    with pytest.raises(StoreClosedError):
        s.get("g", "k")


def test_close_is_idempotent() -> None:
    s = Store(purge_interval=0)
    s.close()
    s.close()
    assert s.closed


def _closed_calls() -> dict[str, Callable[[Store], object]]:
    def enter_transaction(s: Store) -> None:
        with s.transaction():
            pass

    return {
        "get": lambda s: s.get("g", "k"),
        "exists": lambda s: s.exists("g", "k"),
        "set": lambda s: s.set("g", "k", "v"),
        "set_with_ttl": lambda s: s.set_with_ttl("g", "k", "v", 10),
        "delete": lambda s: s.delete("g", "k"),
        "delete_group": lambda s: s.delete_group("g"),
        "delete_prefix": lambda s: s.delete_prefix("g"),
        "count": lambda s: s.count("g"),
        "count_all": lambda s: s.count_all(),
        "get_all": lambda s: s.get_all("g"),
        "all": lambda s: s.all("g"),
        "get_page": lambda s: s.get_page("g"),
        "get_page_limit_0": lambda s: s.get_page("g", 0, 0),
        "groups": lambda s: s.groups(),
        "groups_iter": lambda s: s.groups_iter(),
        "get_split": lambda s: s.get_split("g", "k", ","),
        "get_fields": lambda s: s.get_fields("g", "k"),
        "render": lambda s: s.render("x", "g"),
        "purge_expired": lambda s: s.purge_expired(),
        "set_many": lambda s: s.set_many("g", {"k": "v"}),
        "get_many": lambda s: s.get_many("g", ["k"]),
        "transaction": enter_transaction,
        "scoped": lambda s: s.scoped("ns"),
        "watch": lambda s: s.watch("g", "k"),
        "on_change": lambda s: s.on_change(lambda event: None),
    }


@pytest.mark.parametrize("call", _closed_calls().values(), ids=list(_closed_calls()))
def test_every_method_raises_store_closed_after_close(call: Callable[[Store], object]) -> None:
    s = Store(purge_interval=0)
    s.set("g", "k", "v")
    s.close()
    with pytest.raises(StoreClosedError):
        call(s)


def test_unwatch_and_unregister_stay_harmless_after_close() -> None:
    s = Store(purge_interval=0)
    watcher = s.watch("g", "*")
    unregister = s.on_change(lambda event: None)
    s.close()
    assert watcher.closed
    s.unwatch(watcher)
    s.unwatch(watcher)
    unregister()
    unregister()
    s.close()


def test_store_closed_error_is_a_store_error() -> None:
    s = Store(purge_interval=0)
    s.close()
    with pytest.raises(StoreError, match=r"store\.get"):
        s.get("g", "k")


def test_purge_thread_runs_and_stops_on_close() -> None:
    before = threading.active_count()
    s = Store(purge_interval=0.05)
    assert threading.active_count() == before + 1
    s.close()
    assert threading.active_count() == before


@pytest.mark.parametrize("interval", [0, None, 0.0])
def test_disabled_purge_starts_no_thread(interval: float | None) -> None:
    before = threading.active_count()
    with Store(purge_interval=interval):
        assert threading.active_count() == before


# -- opening failures and argument validation ----------------------------------------------------
def _not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a SQLite database file\n" * 200)
    return path


@pytest.mark.parametrize(
    "make_path",
    [
        lambda tmp: tmp / "missing-dir" / "store.db",
        _not_a_database,
        lambda tmp: tmp,  # a directory
    ],
    ids=["missing_directory", "not_a_database", "directory"],
)
def test_unopenable_path_raises_store_error_and_leaks_nothing(
    tmp_path: Path, make_path: Callable[[Path], Path]
) -> None:
    path = make_path(tmp_path)
    threads, fds = threading.active_count(), fd_count()
    with pytest.raises(StoreError) as info:
        Store(path, purge_interval=0.05)
    assert not isinstance(info.value, StoreClosedError)
    assert isinstance(info.value.__cause__, apsw.Error)
    assert str(info.value).startswith("store.open")
    assert str(path) in str(info.value)
    assert threading.active_count() == threads
    assert fd_count() == fds


def test_not_a_database_file_is_left_untouched(tmp_path: Path) -> None:
    path = _not_a_database(tmp_path)
    content = path.read_bytes()
    with pytest.raises(StoreError):
        Store(path, purge_interval=0)
    assert path.read_bytes() == content


@pytest.mark.parametrize("name", ["purge_interval", "busy_timeout"])
@pytest.mark.parametrize("value", [-1, -0.5, math.nan, math.inf, -math.inf])
def test_bad_interval_values_raise_value_error(name: str, value: float) -> None:
    threads = threading.active_count()
    with pytest.raises(ValueError, match=name):
        Store(**{name: value})  # type: ignore[arg-type]
    assert threading.active_count() == threads


@pytest.mark.parametrize("name", ["purge_interval", "busy_timeout"])
@pytest.mark.parametrize("value", ["1", True, [1]])
def test_non_numeric_interval_values_raise_type_error(name: str, value: object) -> None:
    with pytest.raises(TypeError, match=name):
        Store(**{name: value})  # type: ignore[arg-type]


def test_busy_timeout_none_is_rejected() -> None:
    with pytest.raises(TypeError, match="busy_timeout"):
        Store(busy_timeout=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("level", ["full", "normal", "off", "FULL", "Normal"])
def test_synchronous_levels_are_accepted(db_path: Path, level: str) -> None:
    with Store(db_path, purge_interval=0, synchronous=level) as s:
        s.set("g", "k", "v")
        assert s.get("g", "k") == "v"


@pytest.mark.parametrize("level", ["extra", "", "2", 2, None])
def test_bad_synchronous_raises_value_error(level: object) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        Store(synchronous=level)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [123, None, 1.5, ["a.db"]])
def test_non_path_raises_type_error(path: object) -> None:
    with pytest.raises(TypeError, match="path"):
        Store(path)  # type: ignore[arg-type]


def test_repr_names_path_and_state(db_path: Path) -> None:
    s = Store(db_path, purge_interval=0)
    assert str(db_path) in repr(s)
    s.close()
    assert "closed" in repr(s)


@pytest.fixture
def many_stores(tmp_path: Path) -> Iterator[list[Store]]:
    opened = [Store(tmp_path / f"s{i}.db", purge_interval=0.05) for i in range(3)]
    yield opened
    for s in opened:
        s.close()


def test_closing_several_stores_leaves_no_thread(many_stores: list[Store]) -> None:
    for s in many_stores:
        s.set("g", "k", "v")
    names = {t.name for t in threading.enumerate()}
    assert sum(name.startswith("gostore-purge") for name in names) == 3
    for s in many_stores:
        s.close()
    assert not any(t.name.startswith("gostore-purge") for t in threading.enumerate())


def test_version_and_speedups_flag_are_exposed() -> None:
    assert isinstance(gostore.__version__, str)
    assert isinstance(gostore.SPEEDUPS, bool)


def test_get_on_a_file_store_leaves_no_read_snapshot_open(tmp_path: Path) -> None:
    # An unfinished SELECT would pin a WAL snapshot and stop checkpoints until the next call.
    path = tmp_path / "snap.db"
    with gostore.Store(path, purge_interval=0) as store:
        store.set("g", "k", "v")
        assert store.get("g", "k") == "v"
        other = apsw.Connection(str(path))
        try:
            other.execute("INSERT INTO entries VALUES ('g', 'k2', 'v2', NULL)")
            busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()[0]
        finally:
            other.close()
        assert busy == 0
