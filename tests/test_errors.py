"""Errors: the hierarchy, plain messages naming operation and group/key, and
SQLite failures wrapped with the APSW exception as ``__cause__``."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

import gostore
from gostore import (
    InvalidNamespaceError,
    NotFoundError,
    QuotaExceededError,
    Store,
    StoreClosedError,
    StoreError,
    TemplateError,
)


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        (NotFoundError, (StoreError, KeyError)),
        (QuotaExceededError, (StoreError,)),
        (StoreClosedError, (StoreError,)),
        (TemplateError, (StoreError, ValueError)),
        (InvalidNamespaceError, (StoreError, ValueError)),
        (StoreError, (Exception,)),
    ],
)
def test_error_hierarchy(error: type[Exception], bases: tuple[type[Exception], ...]) -> None:
    for base in bases:
        assert issubclass(error, base)


def test_errors_are_exported_from_the_package() -> None:
    for name in (
        "StoreError",
        "NotFoundError",
        "QuotaExceededError",
        "StoreClosedError",
        "TemplateError",
        "InvalidNamespaceError",
    ):
        assert name in gostore.__all__


def test_not_found_is_a_key_error_with_a_plain_message(store: Store) -> None:
    with pytest.raises(KeyError) as info:
        store.get("config", "colour")
    error = info.value
    assert isinstance(error, NotFoundError)
    # KeyError would print repr(message) with quotes; gostore prints the message itself.
    assert str(error) == error.args[0]
    assert not str(error).startswith(("'", '"'))
    assert str(error).startswith("store.get ")
    assert "'config'" in str(error) and "'colour'" in str(error)
    assert (error.op, error.group, error.key) == ("store.get", "config", "colour")


def test_not_found_message_names_group_and_key(store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"^store\.get group='g' key='k': not found$"):
        store.get("g", "k")


def test_message_shortens_a_10k_character_key(store: Store) -> None:
    key = "k" * 10_000
    with pytest.raises(NotFoundError) as info:
        store.get("g", key)
    message = str(info.value)
    assert message.startswith("store.get group='g' key='kkkk")
    assert len(message) < 300
    assert "10000" in message  # the length is reported instead
    assert info.value.key == key  # the attribute keeps the whole key


def test_template_error_is_a_value_error(store: Store) -> None:
    with pytest.raises(ValueError) as info:
        store.render("{{ unclosed", "config")
    assert isinstance(info.value, TemplateError)
    assert str(info.value).startswith("store.render group='config'")


def test_invalid_namespace_error_is_a_value_error(store: Store) -> None:
    with pytest.raises(ValueError) as info:
        store.scoped("bad namespace")
    assert isinstance(info.value, InvalidNamespaceError)
    assert isinstance(info.value, StoreError)


def test_closed_store_error_names_the_operation() -> None:
    s = Store(purge_interval=0)
    s.close()
    with pytest.raises(StoreClosedError, match=r"^store\.count_all"):
        s.count_all()
    with pytest.raises(StoreClosedError, match=r"^store\.set"):
        s.set("g", "k", "v")


def test_sqlite_busy_is_wrapped_with_cause_and_names_group_and_key(db_path: Path) -> None:
    with Store(db_path, purge_interval=0, busy_timeout=0) as s:
        s.set("g", "k", "v")
        other = apsw.Connection(str(db_path))
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreError) as info:
                s.set("config", "colour", "blue")
        finally:
            other.execute("ROLLBACK")
            other.close()
        s.set("config", "colour", "blue")  # usable again once the lock is gone
    error = info.value
    assert type(error) is StoreError
    assert isinstance(error.__cause__, apsw.BusyError)
    message = str(error)
    assert message.startswith("store.set group='config' key='colour': ")
    assert "locked" in message
    assert (error.op, error.group, error.key) == ("store.set", "config", "colour")


def test_sqlite_failure_on_a_read_is_wrapped(db_path: Path) -> None:
    with Store(db_path, purge_interval=0) as s:
        s.set("g", "k", "v")
        other = apsw.Connection(str(db_path))
        other.execute("DROP TABLE entries")  # a foreign tool breaks the file under us
        other.close()
        with pytest.raises(StoreError) as info:
            s.count("g")
    assert isinstance(info.value.__cause__, apsw.Error)
    assert str(info.value).startswith("store.count group='g': ")


def test_open_failure_message_and_cause(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "x.db"
    with pytest.raises(StoreError) as info:
        Store(path)
    assert isinstance(info.value.__cause__, apsw.CantOpenError)
    assert str(info.value).startswith(f"store.open: cannot open {str(path)!r}")


def test_errors_can_be_raised_and_caught_by_users() -> None:
    error = NotFoundError.at("store.get", "not found", "g", "k")
    with pytest.raises(KeyError):
        raise error
    assert str(StoreError("plain")) == "plain"
    assert StoreError("plain").op == ""
