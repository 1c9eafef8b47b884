"""Transaction: the Store's read and write API inside one atomic ``BEGIN IMMEDIATE`` block.

The store's lock is held by the transaction's thread for the whole block, so other threads
wait, and calls on the parent store from the same thread simply join the transaction. Events
are staged and sent only after the commit; an exception rolls everything back.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ._types import KeyValue
from .errors import StoreError

if TYPE_CHECKING:
    from .store import TTL, Store

__all__ = ("Transaction",)


@contextlib.contextmanager
def open_transaction(store: Store) -> Iterator[Transaction]:
    with store._atomic("store.transaction"):
        tx = Transaction(store)
        try:
            yield tx
        finally:
            tx._store = None


class Transaction:
    """Returned by ``store.transaction()``; valid only inside its ``with`` block, in its thread.

    It offers every read and write method of :class:`Store`, and sees its own writes.
    """

    __slots__ = ("_owner", "_store")

    def __init__(self, store: Store) -> None:
        self._store: Store | None = store
        self._owner = threading.get_ident()

    def _live(self, op: str) -> Store:
        store = self._store
        if store is None:
            raise StoreError.at(f"transaction.{op}", "the transaction has ended")
        if threading.get_ident() != self._owner:
            raise StoreError.at(
                f"transaction.{op}", "a transaction can only be used by the thread that opened it"
            )
        return store

    def __repr__(self) -> str:
        return f"<gostore.Transaction {'open' if self._store is not None else 'ended'}>"

    # Reads
    def get(self, group: str, key: str) -> str:
        return self._live("get").get(group, key)

    def exists(self, group: str, key: str) -> bool:
        return self._live("exists").exists(group, key)

    def count(self, group: str) -> int:
        return self._live("count").count(group)

    def count_all(self, prefix: str = "") -> int:
        return self._live("count_all").count_all(prefix)

    def get_all(self, group: str) -> dict[str, str]:
        return self._live("get_all").get_all(group)

    def all(self, group: str) -> Iterator[KeyValue]:
        return self._live("all").all(group)

    def get_page(self, group: str, offset: int = 0, limit: int = 100) -> list[KeyValue]:
        return self._live("get_page").get_page(group, offset, limit)

    def groups(self, prefix: str = "") -> list[str]:
        return self._live("groups").groups(prefix)

    def groups_iter(self, prefix: str = "") -> Iterator[str]:
        return self._live("groups_iter").groups_iter(prefix)

    def get_split(self, group: str, key: str, separator: str) -> Iterator[str]:
        return self._live("get_split").get_split(group, key, separator)

    def get_fields(self, group: str, key: str) -> Iterator[str]:
        return self._live("get_fields").get_fields(group, key)

    def render(self, template: str, group: str, *, strict: bool = False) -> str:
        return self._live("render").render(template, group, strict=strict)

    def get_many(self, group: str, keys: list[str] | tuple[str, ...]) -> dict[str, str]:
        return self._live("get_many").get_many(group, keys)

    # Writes
    def set(self, group: str, key: str, value: str) -> None:
        self._live("set").set(group, key, value)

    def set_with_ttl(self, group: str, key: str, value: str, ttl: TTL) -> None:
        self._live("set_with_ttl").set_with_ttl(group, key, value, ttl)

    def set_many(self, group: str, mapping: Mapping[str, str], ttl: TTL | None = None) -> None:
        self._live("set_many").set_many(group, mapping, ttl)

    def delete(self, group: str, key: str) -> None:
        self._live("delete").delete(group, key)

    def delete_group(self, group: str) -> None:
        self._live("delete_group").delete_group(group)

    def delete_prefix(self, prefix: str) -> int:
        return self._live("delete_prefix").delete_prefix(prefix)

    def purge_expired(self) -> int:
        return self._live("purge_expired").purge_expired()
