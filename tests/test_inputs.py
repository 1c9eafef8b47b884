"""Input checks: group, key, value and other text arguments must be
``str`` (TypeError otherwise) encodable as UTF-8 (ValueError for a lone surrogate); nothing is
written when a check fails, and reads check the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gostore import Store

BAD_TYPES = [None, b"bytes", 1, 1.5, ["list"], bytearray(b"x")]
BAD_TYPE_IDS = ["None", "bytes", "int", "float", "list", "bytearray"]
SURROGATES = ["\ud800", "ok\udfffok", "\udc80"]

# (operation name in messages, call with text arguments, names of those arguments)
Op = tuple[str, Callable[..., object], tuple[str, ...]]


def _ops() -> dict[str, Op]:
    return {
        "set": ("store.set", lambda s, g, k, v: s.set(g, k, v), ("g", "k", "v")),
        "set_with_ttl": (
            "store.set_with_ttl",
            lambda s, g, k, v: s.set_with_ttl(g, k, v, 60),
            ("g", "k", "v"),
        ),
        "set_many_key": (
            "store.set_many",
            lambda s, g, k, v: s.set_many(g, {"ok": "1", k: v}),
            ("g", "k", "v"),
        ),
        "get": ("store.get", lambda s, g, k: s.get(g, k), ("g", "k")),
        "exists": ("store.exists", lambda s, g, k: s.exists(g, k), ("g", "k")),
        "delete": ("store.delete", lambda s, g, k: s.delete(g, k), ("g", "k")),
        "delete_group": ("store.delete_group", lambda s, g: s.delete_group(g), ("g",)),
        "delete_prefix": ("store.delete_prefix", lambda s, p: s.delete_prefix(p), ("p",)),
        "count": ("store.count", lambda s, g: s.count(g), ("g",)),
        "count_all": ("store.count_all", lambda s, p: s.count_all(p), ("p",)),
        "get_all": ("store.get_all", lambda s, g: s.get_all(g), ("g",)),
        "all": ("store.all", lambda s, g: s.all(g), ("g",)),
        "get_page": ("store.get_page", lambda s, g: s.get_page(g), ("g",)),
        "groups": ("store.groups", lambda s, p: s.groups(p), ("p",)),
        "groups_iter": ("store.groups", lambda s, p: s.groups_iter(p), ("p",)),
        "get_split": (
            "store.get_split",
            lambda s, g, k, sep: s.get_split(g, k, sep),
            ("g", "k", "sep"),
        ),
        "get_fields": ("store.get_fields", lambda s, g, k: s.get_fields(g, k), ("g", "k")),
        "render": ("store.render", lambda s, t, g: s.render(t, g), ("t", "g")),
        "get_many": ("store.get_many", lambda s, g, k: s.get_many(g, ["ok", k]), ("g", "k")),
        "watch": ("store.watch", lambda s, g, k: s.watch(g, k), ("g", "k")),
    }


OPS = _ops()


def _cases(bad_values: list[Any], ids: list[str]) -> list[Any]:
    cases = []
    for name, (op, call, args) in OPS.items():
        for position, arg in enumerate(args):
            for bad, bad_id in zip(bad_values, ids, strict=True):
                if name == "set_many_key" and arg == "k" and getattr(bad, "__hash__", None) is None:
                    continue  # an unhashable key cannot be put in a dict in the first place
                cases.append(
                    pytest.param(op, call, len(args), position, bad, id=f"{name}-{arg}-{bad_id}")
                )
    return cases


def _arguments(count: int, position: int, bad: object) -> list[object]:
    arguments: list[object] = ["group", "key", "value", ","]
    del arguments[count:]
    arguments[position] = bad
    return arguments


def _assert_untouched(store: Store) -> None:
    # The fixture wrote exactly one entry before the call.
    assert store.groups() == ["group"]
    assert store.get_all("group") == {"key": "value"}


@pytest.fixture
def seeded(store: Store) -> Store:
    store.set("group", "key", "value")
    return store


@pytest.mark.parametrize(
    ("op", "call", "count", "position", "bad"), _cases(BAD_TYPES, BAD_TYPE_IDS)
)
def test_non_str_argument_raises_type_error_naming_operation(
    seeded: Store, op: str, call: Callable[..., object], count: int, position: int, bad: object
) -> None:
    with pytest.raises(TypeError) as info:
        call(seeded, *_arguments(count, position, bad))
    assert str(info.value).startswith(op)
    assert type(bad).__name__ in str(info.value)
    _assert_untouched(seeded)


@pytest.mark.parametrize(
    ("op", "call", "count", "position", "bad"), _cases(SURROGATES, ["lead", "inner", "trail"])
)
def test_lone_surrogate_raises_value_error_naming_operation(
    seeded: Store, op: str, call: Callable[..., object], count: int, position: int, bad: str
) -> None:
    with pytest.raises(ValueError) as info:
        call(seeded, *_arguments(count, position, bad))
    assert str(info.value).startswith(op)
    assert "UTF-8" in str(info.value)
    _assert_untouched(seeded)


def test_str_subclass_is_accepted_and_stored_as_str(store: Store) -> None:
    class Name(str):
        pass

    store.set(Name("g"), Name("k"), Name("v"))
    assert store.get("g", "k") == "v"
    assert type(store.get(Name("g"), Name("k"))) is str
    assert type(next(iter(store.get_all("g")))) is str


def test_set_many_with_one_bad_value_writes_nothing(seeded: Store) -> None:
    with pytest.raises(TypeError, match=r"store\.set_many"):
        seeded.set_many("group", {"a": "1", "b": None, "c": "3"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"store\.set_many"):
        seeded.set_many("group", {"a": "1", "b": "\ud800", "c": "3"})
    _assert_untouched(seeded)


@pytest.mark.parametrize("keys", ["key", b"key", 1, None], ids=["str", "bytes", "int", "None"])
def test_get_many_keys_must_be_a_collection_of_str(seeded: Store, keys: Any) -> None:
    with pytest.raises(TypeError, match=r"store\.get_many"):
        seeded.get_many("group", keys)


def test_surrogate_pair_written_as_one_code_point_is_fine(store: Store) -> None:
    # "\U0001f600" is one code point; only unpaired surrogates are rejected.
    store.set("g", "\U0001f600", "\U0001f600")
    assert store.get("g", "\U0001f600") == "\U0001f600"


def test_type_error_names_the_argument(store: Store) -> None:
    with pytest.raises(TypeError, match=r"store\.set: value must be str, not int"):
        store.set("g", "k", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"store\.get: key is not valid UTF-8"):
        store.get("g", "\ud800")
