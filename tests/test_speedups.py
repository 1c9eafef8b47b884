"""Parity of the compiled ``gostore._speedups`` and its pure twin ``gostore._speedups_py``.

Each test runs once per implementation (fixture ``speedups``, ids "c" and "py") against the
same expected results; ``test_*_same_as_twin`` compare the two side by side. The last part
checks that ``get_all``/``all``/``get_page`` never return wrong data when another tool stored
bytes that are not UTF-8 (the batch decoder's separator 0xFF among them).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import apsw
import pytest

from gostore import KeyValue, Store, StoreError, _speedups_py

EVERY_PLANE = [chr((plane << 16) | 0x1234) for plane in range(17)] + ["\U0010ffff", "\uffff"]

GROUPS: dict[str, dict[str, str]] = {
    "ascii": {"colour": "blue", "size": "10"},
    "one": {"k": "v"},
    "empty_strings": {"": "", "a": ""},
    "empty_key_only": {"": "x"},
    "nul": {"a\x00b": "\x00", "\x00": "c\x00d", "x": "\x00\x00"},
    "planes": {c: c * 3 for c in EVERY_PLANE},
    "cjk_arabic": {"日本語": "中文", "العربية": "مرحبا", "emoji 🎉": "😀"},
    "long": {"k" * 10_000: "v" * 20_000},
    "many": {f"key-{i}": f"value-{i}" for i in range(1000)},
}


def blobs(pairs: list[tuple[str, str]]) -> tuple[int, bytes | None, bytes | None]:
    """What the GROUP_BLOB query returns: count and the 0xFF-joined UTF-8 keys and values."""
    if not pairs:
        return 0, None, None  # group_concat over no rows is NULL
    keys = b"\xff".join(k.encode() for k, _ in pairs)
    values = b"\xff".join(v.encode() for _, v in pairs)
    return len(pairs), keys, values


def twin_of(module: ModuleType) -> ModuleType | None:
    """The other implementation, when the compiled one is built."""
    try:
        from gostore import _speedups
    except ImportError:
        return None
    return _speedups_py if module is _speedups else _speedups


# -- decode_group / decode_pairs ----------------------------------------------------------------
@pytest.mark.parametrize("name", list(GROUPS))
def test_decode_group_decodes_every_entry(speedups: Any, name: str) -> None:
    entries = GROUPS[name]
    assert speedups.decode_group(*blobs(list(entries.items()))) == entries


@pytest.mark.parametrize("name", list(GROUPS))
def test_decode_pairs_keeps_row_order(speedups: Any, name: str) -> None:
    pairs = sorted(GROUPS[name].items())
    count, keys, values = blobs(pairs)
    assert speedups.decode_pairs(count, keys, values, KeyValue) == [KeyValue(*p) for p in pairs]
    assert speedups.decode_pairs(count, keys, values, lambda k, v: (v, k)) == [
        (v, k) for k, v in pairs
    ]


def test_decode_of_zero_rows_is_empty(speedups: Any) -> None:
    assert speedups.decode_group(0, None, None) == {}
    assert speedups.decode_pairs(0, None, None, KeyValue) == []


def test_decode_group_last_duplicate_wins(speedups: Any) -> None:
    assert speedups.decode_group(3, b"a\xffb\xffa", b"1\xff2\xff3") == {"a": "3", "b": "2"}


@pytest.mark.parametrize(
    ("count", "keys", "values"),
    [
        (2, b"a", b"1\xff2"),  # too few keys
        (1, b"a\xffb", b"1"),  # a key holding the separator byte
        (1, b"a", b"1\xff2"),  # a value holding the separator byte
        (2, b"a\xffb\xffc", b"1\xff2\xff3"),  # both one too many
        (3, b"a\xffb", b"1\xff2"),  # count larger than the parts
        (1, b"\xff", b"\xff"),
        (2, None, b"1\xff2"),
        (2, b"a\xffb", None),
    ],
)
def test_count_mismatch_returns_none(
    speedups: Any, count: int, keys: bytes | None, values: bytes | None
) -> None:
    assert speedups.decode_group(count, keys, values) is None
    assert speedups.decode_pairs(count, keys, values, KeyValue) is None


@pytest.mark.parametrize(
    ("keys", "values"),
    [
        (b"\xc3", b"v"),  # truncated sequence in a key
        (b"k", b"\x80"),  # stray continuation byte in a value
        (b"ok\xffbad\xed\xa0\x80", b"1\xff2"),  # an encoded surrogate
        (b"k\xff\xf4\x90\x80\x80", b"1\xff2"),  # above U+10FFFF
        (b"\xc0\xaf", b"overlong"),
    ],
)
def test_invalid_utf8_raises_unicode_decode_error(
    speedups: Any, keys: bytes, values: bytes
) -> None:
    count = keys.count(b"\xff") + 1
    with pytest.raises(UnicodeDecodeError):
        speedups.decode_group(count, keys, values)
    with pytest.raises(UnicodeDecodeError):
        speedups.decode_pairs(count, keys, values, KeyValue)


def test_decode_same_as_twin(speedups: Any) -> None:
    twin = twin_of(speedups)
    if twin is None:
        pytest.skip("compiled module not built")
    cases: list[tuple[int, Any, Any]] = [blobs(sorted(g.items())) for g in GROUPS.values()]
    cases += [(2, b"a", b"1\xff2"), (1, b"\xc3", b"v"), (2, b"k\xff\xe2\x82", b"1\xff2")]
    for count, keys, values in cases:
        for name in ("decode_group", "decode_pairs"):
            args = (count, keys, values) + ((KeyValue,) if name == "decode_pairs" else ())
            outcomes = []
            for module in (speedups, twin):
                try:
                    outcomes.append(("ok", getattr(module, name)(*args)))
                except UnicodeDecodeError as exc:
                    outcomes.append(("error", str(exc)))
            assert outcomes[0] == outcomes[1], (name, count, keys, values)


# -- WatcherIndex --------------------------------------------------------------------------------
def watcher(group: str, key: str, namespace: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(group=group, key=key, namespace=namespace)


REGISTRATIONS = [
    watcher("config", "colour"),
    watcher("config", "colour"),  # two watchers on one slot
    watcher("config", "*"),
    watcher("*", "colour"),
    watcher("*", "*"),
    watcher("other", "k"),
    watcher("*", "k"),
    watcher("tenant-a:config", "colour"),
    watcher("tenant-a:config", "*", "tenant-a"),  # namespace watchers file by namespace
    watcher("tenant-a:*", "colour", "tenant-a"),
    watcher("tenant-b:*", "*", "tenant-b"),
    watcher("*", "*", None),
    watcher("star", "*"),
]

EVENTS = [
    (group, key, whole)
    for group, key in itertools.product(
        [
            "config",
            "other",
            "*",
            "tenant-a:config",
            "tenant-a:x:y",
            "tenant-a",
            "tenant-b:",
            "tenant-ab:config",
            "",
            ":",
            "star",
        ],
        ["colour", "k", "*", "", "missing"],
    )
    for whole in (False, True)
    if not (whole and key)  # a DELETE_GROUP event has key ""
]


def expected_match(w: SimpleNamespace, group: str, key: str, whole: bool) -> bool:
    """The event routing rules, checked by brute force."""
    key_ok = w.key == "*" or (not whole and w.key == key)
    if w.namespace is not None:
        namespace, colon, _ = group.partition(":")
        return bool(colon) and namespace == w.namespace and key_ok
    return (w.group == "*" or w.group == group) and key_ok


def build_index(module: Any, registrations: list[SimpleNamespace]) -> Any:
    index = module.WatcherIndex()
    for w in registrations:
        index.add(w)
    return index


@pytest.mark.parametrize(("group", "key", "whole"), EVENTS)
def test_watcher_index_match_follows_spec(speedups: Any, group: str, key: str, whole: bool) -> None:
    index = build_index(speedups, REGISTRATIONS)
    found = list(index.match(group, key, whole))
    assert len(found) == len({id(w) for w in found})  # each watcher once
    assert {id(w) for w in found} == {
        id(w) for w in REGISTRATIONS if expected_match(w, group, key, whole)
    }


def test_delete_group_reaches_only_star_key_watchers(speedups: Any) -> None:
    index = build_index(speedups, REGISTRATIONS)
    found = list(index.match("config", "", True))
    assert found and all(w.key == "*" for w in found)


def test_group_literally_named_star_only_reaches_star_group_watchers(speedups: Any) -> None:
    exact = watcher("config", "k")
    star = watcher("*", "k")
    index = build_index(speedups, [exact, star])
    assert list(index.match("*", "k", False)) == [star]
    assert sorted(map(id, index.match("config", "k", False))) == sorted([id(exact), id(star)])


def test_watcher_index_remove(speedups: Any) -> None:
    a, b, c = watcher("g", "k"), watcher("g", "k"), watcher("ns:g", "*", "ns")
    index = build_index(speedups, [a, b, c])
    index.remove(a)
    assert list(index.match("g", "k", False)) == [b]
    index.remove(a)  # already gone: harmless
    index.remove(b)
    index.remove(c)
    assert list(index.match("g", "k", False)) == []
    assert list(index.match("ns:g", "k", False)) == []


def test_watcher_index_same_as_twin(speedups: Any) -> None:
    twin = twin_of(speedups)
    if twin is None:
        pytest.skip("compiled module not built")
    mine, theirs = build_index(speedups, REGISTRATIONS), build_index(twin, REGISTRATIONS)
    for group, key, whole in EVENTS:
        assert list(mine.match(group, key, whole)) == list(theirs.match(group, key, whole)), (
            group,
            key,
        )


# -- foreign bytes in the database ---------------------------------------------------------------
FOREIGN = [
    pytest.param("key", "61FF62", id="key_with_ff"),
    pytest.param("value", "31FF32", id="value_with_ff"),
    pytest.param("key", "FF", id="key_only_ff"),
    pytest.param("value", "C3", id="value_truncated_utf8"),
    pytest.param("key", "ED A0 80".replace(" ", ""), id="key_encoded_surrogate"),
    pytest.param("value", "FFFF", id="value_two_ff"),
]


def insert_foreign(path: Path, column: str, hex_bytes: str) -> None:
    """A row written by another tool (go-store writes any bytes it is given)."""
    conn = apsw.Connection(str(path))
    try:
        key = f"CAST(X'{hex_bytes}' AS TEXT)" if column == "key" else "'foreign'"
        value = f"CAST(X'{hex_bytes}' AS TEXT)" if column == "value" else "'v'"
        conn.execute(f"INSERT INTO entries VALUES ('g', {key}, {value}, NULL)")
    finally:
        conn.close()


def row_by_row(path: Path) -> list[Any]:
    conn = apsw.Connection(str(path))
    try:
        return conn.execute(
            "SELECT entry_key, entry_value FROM entries WHERE group_name = 'g' ORDER BY entry_key"
        ).fetchall()
    finally:
        conn.close()


READS: dict[str, Callable[[Store], object]] = {
    "get_all": lambda s: s.get_all("g"),
    "all": lambda s: list(s.all("g")),
    "get_page": lambda s: s.get_page("g"),
}


@pytest.mark.parametrize("read", READS.values(), ids=list(READS))
@pytest.mark.parametrize(("column", "hex_bytes"), FOREIGN)
def test_foreign_bytes_are_never_silently_misread(
    file_store: Store, db_path: Path, column: str, hex_bytes: str, read: Callable[[Store], object]
) -> None:
    file_store.set_many("g", {"a": "1", "b": "2", "z": "3"})
    insert_foreign(db_path, column, hex_bytes)
    try:
        expected = row_by_row(db_path)
    except UnicodeDecodeError:
        expected = None  # not decodable row by row either
    try:
        result = read(file_store)
    except StoreError as exc:
        assert "UTF-8" in str(exc)
        assert isinstance(exc.__cause__, UnicodeDecodeError)
        return
    # Reaching here means gostore decoded it; it must match a row-by-row read exactly.
    assert expected is not None
    if isinstance(result, dict):
        assert result == dict(expected)
    else:
        assert result == [KeyValue(k, v) for k, v in expected]


def test_valid_rows_around_a_foreign_group_still_read(file_store: Store, db_path: Path) -> None:
    file_store.set_many("other", {"a": "1"})
    file_store.set("g", "ok", "fine")
    insert_foreign(db_path, "key", "61FF62")
    assert file_store.get_all("other") == {"a": "1"}
    assert file_store.get("g", "ok") == "fine"
    assert file_store.count("g") == 2
