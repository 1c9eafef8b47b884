"""Transaction: the store's read and write API inside one atomic block.

On SQLite the engine's lock is held by the transaction's thread for the whole block, so other
threads wait, and calls on the parent store from the same thread join the transaction. Events
are staged and sent only after the commit; an exception rolls everything back, and so does a
statement that failed inside the block (later calls then raise until the block ends).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, TypeVar, overload

from . import _atomic
from ._render import render as _render
from ._render_limits import RenderLimits
from ._types import KeyValue, check_text, expiry_ms, go_fields, go_split, now_ms
from .errors import StoreError

if TYPE_CHECKING:
    from ._core import TTL, Core

__all__ = ("Transaction", "TransactionScope", "open_transaction")

D = TypeVar("D")


class TransactionScope:
    """Whether a transaction may still be used here: open, and in the thread that opened it."""

    __slots__ = ("_open", "_owner")

    def __init__(self) -> None:
        self._open = True
        self._owner = threading.get_ident()

    def end(self) -> None:
        self._open = False

    def check(self, op: str) -> None:
        if not self._open:
            raise StoreError.at(op, "the transaction has ended")
        if threading.get_ident() != self._owner:
            raise StoreError.at(op, "a transaction can only be used by the thread that opened it")


@contextlib.contextmanager
def open_transaction(core: Core, name: str) -> Iterator[Transaction]:
    scope = TransactionScope()
    with core.atomic(f"{name}.transaction"):
        try:
            yield Transaction(core, scope)
        finally:
            scope.end()


class Transaction:
    """Returned by ``store.transaction()``; valid only inside its ``with`` block, in its thread.

    It offers every read and write method of :class:`Store`, and sees its own writes.
    """

    __slots__ = ("_core", "_scope")

    def __init__(self, core: Core, scope: TransactionScope) -> None:
        self._core = core
        self._scope = scope

    def _live(self, op: str) -> Core:
        self._scope.check(op)
        return self._core

    def __repr__(self) -> str:
        return f"<gostore.Transaction {'open' if self._scope._open else 'ended'}>"

    # Reads
    def get(self, group: str, key: str) -> str:
        return self._live("tx.get").get("tx.get", group, key)

    def exists(self, group: str, key: str) -> bool:
        return self._live("tx.exists").exists("tx.exists", group, key)

    def count(self, group: str) -> int:
        return self._live("tx.count").count("tx.count", group)

    def count_all(self, prefix: str = "") -> int:
        return self._live("tx.count_all").count_all("tx.count_all", prefix)

    def get_all(self, group: str) -> dict[str, str]:
        return self._live("tx.get_all").get_all("tx.get_all", group)

    def all(self, group: str) -> Iterator[KeyValue]:
        return self._live("tx.all").all("tx.all", group)

    def get_page(self, group: str, offset: int = 0, limit: int = 100) -> list[KeyValue]:
        return self._live("tx.get_page").get_page("tx.get_page", group, offset, limit)

    def groups(self, prefix: str = "") -> list[str]:
        return list(self._live("tx.groups").groups_iter("tx.groups", prefix))

    def groups_iter(self, prefix: str = "") -> Iterator[str]:
        return self._live("tx.groups_iter").groups_iter("tx.groups_iter", prefix)

    def get_split(self, group: str, key: str, separator: str) -> Iterator[str]:
        op = "tx.get_split"
        check_text(op, group=group, key=key, separator=separator)
        return iter(go_split(self._live(op).get(op, group, key), separator))

    def get_fields(self, group: str, key: str) -> Iterator[str]:
        op = "tx.get_fields"
        check_text(op, group=group, key=key)
        return iter(go_fields(self._live(op).get(op, group, key)))

    def render(
        self, template: str, group: str, *, strict: bool = False, limits: RenderLimits | None = None
    ) -> str:
        op = "tx.render"
        check_text(op, template=template, group=group)
        return _render(op, template, group, self._live(op).get_all(op, group), strict, limits)

    def get_many(self, group: str, keys: list[str] | tuple[str, ...]) -> dict[str, str]:
        return self._live("tx.get_many").get_many("tx.get_many", group, keys)

    # Writes
    def set(self, group: str, key: str, value: str) -> None:
        core = self._live("tx.set")
        if type(group) is not str or type(key) is not str or type(value) is not str:
            check_text("tx.set", group=group, key=key, value=value)
        core.write("tx.set", group, key, value, None)

    def set_with_ttl(self, group: str, key: str, value: str, ttl: TTL) -> None:
        op = "tx.set_with_ttl"
        core = self._live(op)
        if type(group) is not str or type(key) is not str or type(value) is not str:
            check_text(op, group=group, key=key, value=value)
        core.write(op, group, key, value, expiry_ms(op, ttl, now_ms()))

    def set_many(self, group: str, mapping: Mapping[str, str], ttl: TTL | None = None) -> None:
        self._live("tx.set_many").set_many("tx.set_many", group, mapping, ttl)

    def delete(self, group: str, key: str) -> None:
        core = self._live("tx.delete")
        if type(group) is not str or type(key) is not str:
            check_text("tx.delete", group=group, key=key)
        core.write("tx.delete", group, key, None, None)

    def delete_group(self, group: str) -> None:
        self._live("tx.delete_group").delete_group("tx.delete_group", group)

    def delete_prefix(self, prefix: str) -> int:
        return self._live("tx.delete_prefix").delete_prefix("tx.delete_prefix", prefix)

    def purge_expired(self) -> int:
        return self._live("tx.purge_expired").purge_expired("tx.purge_expired")

    # Atomic operations: each one step inside the transaction (see Store.incr and the others)
    def incr(self, group: str, key: str, delta: int = 1) -> int:
        return _atomic.incr(self._live("tx.incr"), "tx.incr", group, key, delta, None)

    def add(self, group: str, key: str, value: str, ttl: TTL | None = None) -> bool:
        return _atomic.add(self._live("tx.add"), "tx.add", group, key, value, ttl, None)

    def compare_and_set(
        self, group: str, key: str, expected: str | None, value: str, ttl: TTL | None = None
    ) -> bool:
        op = "tx.compare_and_set"
        return _atomic.compare_and_set(self._live(op), op, group, key, expected, value, ttl, None)

    @overload
    def pop(self, group: str, key: str) -> str: ...
    @overload
    def pop(self, group: str, key: str, default: D) -> str | D: ...
    def pop(self, group: str, key: str, default: object = _atomic.UNSET) -> object:
        return _atomic.pop(self._live("tx.pop"), "tx.pop", group, key, default, None)

    def touch(self, group: str, key: str, ttl: TTL | None) -> bool:
        return _atomic.touch(self._live("tx.touch"), "tx.touch", group, key, ttl, None)

    def ttl(self, group: str, key: str) -> float | None:
        return _atomic.ttl(self._live("tx.ttl"), "tx.ttl", group, key)
