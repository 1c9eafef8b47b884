"""ScopedStore: a namespace's view of a Store, with optional quotas checked atomically.

Groups are stored as ``namespace + ":" + group``. A quota is enforced by a ledger of the
namespace's live totals (keys, bytes, keys per group, and the rows due to expire), built once
by one scan and then kept up to date by every quota-checked write, so a check costs the same
however many keys the namespace holds. The ledger is dropped, and rebuilt on the next check,
whenever something else may have changed the namespace: a write that bypasses the quota path,
a rolled-back transaction, or (file databases) a commit by another connection, which SQLite's
``PRAGMA data_version`` reveals.
"""

from __future__ import annotations

import contextlib
import heapq
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from . import _schema as sql
from ._types import KeyValue, check_text, expiry_ms, now_ms, prefix_range
from .errors import InvalidNamespaceError, QuotaExceededError
from .events import EventType, Watcher
from .store import Store

if TYPE_CHECKING:
    from .store import TTL
    from .transaction import Transaction

__all__ = ("QuotaConfig", "ScopedStore")

_NAMESPACE = re.compile(r"[a-zA-Z0-9-]+")


@dataclass(frozen=True)
class QuotaConfig:
    """Per-namespace limits; ``0`` means unlimited.

    :ivar max_keys: live keys in the namespace.
    :ivar max_groups: groups with at least one live key.
    :ivar max_bytes: UTF-8 bytes of the live keys plus values (a total equal to it is allowed).
    """

    max_keys: int = 0
    max_groups: int = 0
    max_bytes: int = 0

    def __post_init__(self) -> None:
        for name in ("max_keys", "max_groups", "max_bytes"):
            limit = getattr(self, name)
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise TypeError(f"QuotaConfig: {name} must be int, not {type(limit).__name__}")
            if limit < 0:
                raise ValueError(f"QuotaConfig: {name} must be >= 0 (0 is unlimited), got {limit}")

    @property
    def limited(self) -> bool:
        """True when any limit is set."""
        return bool(self.max_keys or self.max_groups or self.max_bytes)


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


class _Ledger:
    """A namespace's live totals, valid at ``version`` (``PRAGMA data_version``)."""

    __slots__ = ("bytes", "expiring", "groups", "heap", "keys", "version")

    def __init__(
        self, cursor: Any, bounds: tuple[str, str | bytes], now: int, version: Any
    ) -> None:
        self.version = version
        self.keys = 0
        self.bytes = 0
        self.groups: dict[str, int] = {}  # live keys per group; a group counts while > 0
        for group, count, size in cursor.execute(sql.NAMESPACE_TOTALS, (*bounds, now)).fetchall():
            self.groups[group] = count
            self.keys += count
            self.bytes += size
        # Rows with a TTL, so they leave the totals when they expire: (group, key) -> (expiry, size)
        self.expiring: dict[tuple[str, str], tuple[int, int]] = {}
        self.heap: list[tuple[int, str, str]] = []
        for group, key, size, expires in cursor.execute(
            sql.NAMESPACE_EXPIRING, (*bounds, now)
        ).fetchall():
            self.expiring[(group, key)] = (expires, size)
            self.heap.append((expires, group, key))
        heapq.heapify(self.heap)

    def advance(self, now: int) -> None:
        """Take out every row that has expired by ``now``."""
        heap = self.heap
        while heap and heap[0][0] <= now:
            expires, group, key = heapq.heappop(heap)
            entry = self.expiring.get((group, key))
            if entry is not None and entry[0] == expires:
                del self.expiring[(group, key)]
                self._take(group, entry[1])

    def _take(self, group: str, size: int) -> None:
        self.keys -= 1
        self.bytes -= size
        left = self.groups[group] - 1
        if left:
            self.groups[group] = left
        else:
            del self.groups[group]

    def remove(self, group: str, key: str, size: int) -> None:
        self.expiring.pop((group, key), None)
        self._take(group, size)

    def add(self, group: str, key: str, size: int, expires: int | None) -> None:
        self.keys += 1
        self.bytes += size
        self.groups[group] = self.groups.get(group, 0) + 1
        if expires is not None:
            self.expiring[(group, key)] = (expires, size)
            heapq.heappush(self.heap, (expires, group, key))


class _QuotaGuard:
    """The quota check of one ScopedStore, plugged into the store's single-key write path."""

    __slots__ = ("_bounds", "namespace", "quota")

    def __init__(self, namespace: str, quota: QuotaConfig) -> None:
        self.namespace = namespace
        self.quota = quota
        self._bounds = prefix_range(namespace + ":")

    def _ledger(self, store: Store, now: int) -> _Ledger:
        version = None
        if store._path != sql.MEMORY:  # only a file can be written by other connections
            version = store._cur.execute(sql.DATA_VERSION).fetchall()[0][0]
        ledger = store._ledgers.get(self.namespace)
        if ledger is None or ledger.version != version:
            ledger = _Ledger(store._cur, self._bounds, now, version)
            store._ledgers[self.namespace] = ledger
        ledger.advance(now)
        return ledger

    def before(
        self, store: Store, op: str, group: str, key: str, value: str | None, expires: int | None
    ) -> tuple[Any, ...]:
        now = now_ms()
        ledger = self._ledger(store, now)
        old_size = 0
        old_live = False
        rows = store._cur.execute(sql.ROW_SIZE, (group, key)).fetchall()
        if rows:
            size, old_expires = rows[0]
            if old_expires is None or old_expires > now:
                old_live, old_size = True, size
        if value is None:  # a delete never needs quota
            return (ledger, group, key, old_live, old_size, False, 0, None)
        new_size = _utf8_len(key) + _utf8_len(value)
        new_live = expires is None or expires > now
        if new_live:
            quota = self.quota
            if not old_live:
                if quota.max_keys and ledger.keys >= quota.max_keys:
                    raise QuotaExceededError.at(
                        op,
                        f"namespace {self.namespace!r} holds its limit of {quota.max_keys} keys",
                        group,
                        key,
                    )
                if (
                    quota.max_groups
                    and group not in ledger.groups
                    and len(ledger.groups) >= quota.max_groups
                ):
                    raise QuotaExceededError.at(
                        op,
                        f"namespace {self.namespace!r} holds its limit of "
                        f"{quota.max_groups} groups",
                        group,
                        key,
                    )
            growth = new_size - old_size
            if quota.max_bytes and growth > 0 and ledger.bytes + growth > quota.max_bytes:
                raise QuotaExceededError.at(
                    op,
                    f"namespace {self.namespace!r} would hold {ledger.bytes + growth} bytes, "
                    f"over its limit of {quota.max_bytes}",
                    group, key,
                )
        return (ledger, group, key, old_live, old_size, new_live, new_size, expires)

    def after(self, token: tuple[Any, ...], changed: bool) -> None:
        ledger, group, key, old_live, old_size, new_live, new_size, expires = token
        if old_live and changed:
            ledger.remove(group, key, old_size)
        if new_live:
            ledger.add(group, key, new_size, expires)


Backend = Union[Store, "Transaction"]


class ScopedStore:
    """A view of ``store`` confined to ``namespace``, optionally under a quota.

    Every group is stored as ``namespace + ":" + group``; ``groups()`` returns local names.

    :raises InvalidNamespaceError: ``namespace`` does not match ``^[a-zA-Z0-9-]+$``.

    >>> with Store() as store:
    ...     tenant = ScopedStore(store, "tenant-a", QuotaConfig(max_keys=100))
    ...     tenant.set("config", "colour", "blue")
    ...     store.get("tenant-a:config", "colour")
    'blue'
    """

    def __init__(self, store: Store, namespace: str, quota: QuotaConfig | None = None) -> None:
        if not isinstance(store, Store):
            raise TypeError(
                f"ScopedStore: store must be a gostore.Store, not {type(store).__name__}"
            )
        if not isinstance(namespace, str):
            raise TypeError(f"ScopedStore: namespace must be str, not {type(namespace).__name__}")
        if _NAMESPACE.fullmatch(namespace) is None:
            raise InvalidNamespaceError(
                f"ScopedStore: invalid namespace {namespace!r}: use letters, digits and '-' only",
                op="ScopedStore",
            )
        if quota is not None and not isinstance(quota, QuotaConfig):
            raise TypeError(f"ScopedStore: quota must be a QuotaConfig, not {type(quota).__name__}")
        self._store = store
        self._api: Backend = store
        self._namespace = namespace
        self._prefix = namespace + ":"
        self._quota = quota
        self._guard = _QuotaGuard(namespace, quota) if quota is not None and quota.limited else None

    @property
    def namespace(self) -> str:
        """The namespace, without the ``":"``."""
        return self._namespace

    @property
    def quota(self) -> QuotaConfig | None:
        """The quota, or ``None``."""
        return self._quota

    @property
    def store(self) -> Store:
        """The underlying store."""
        return self._store

    def __repr__(self) -> str:
        return f"<gostore.ScopedStore {self._namespace!r} quota={self._quota!r}>"

    def _group(self, op: str, group: object) -> str:
        if type(group) is not str:
            check_text(op, group=group)
        return self._prefix + group  # type: ignore[operator]

    def _writer(self) -> Store:
        """The real store, after checking that a scoped transaction is still usable."""
        if self._api is not self._store:
            self._api._live("write")  # type: ignore[union-attr]
        return self._store

    # -- reads ----------------------------------------------------------------------------------
    def get(self, group: str, key: str) -> str:
        return self._api.get(self._group("scoped.get", group), key)

    def exists(self, group: str, key: str) -> bool:
        return self._api.exists(self._group("scoped.exists", group), key)

    def count(self, group: str) -> int:
        return self._api.count(self._group("scoped.count", group))

    def get_all(self, group: str) -> dict[str, str]:
        return self._api.get_all(self._group("scoped.get_all", group))

    def all(self, group: str) -> Iterator[KeyValue]:
        return self._api.all(self._group("scoped.all", group))

    def get_page(self, group: str, offset: int = 0, limit: int = 100) -> list[KeyValue]:
        return self._api.get_page(self._group("scoped.get_page", group), offset, limit)

    def get_split(self, group: str, key: str, separator: str) -> Iterator[str]:
        return self._api.get_split(self._group("scoped.get_split", group), key, separator)

    def get_fields(self, group: str, key: str) -> Iterator[str]:
        return self._api.get_fields(self._group("scoped.get_fields", group), key)

    def render(self, template: str, group: str, *, strict: bool = False) -> str:
        return self._api.render(template, self._group("scoped.render", group), strict=strict)

    def get_many(self, group: str, keys: list[str] | tuple[str, ...]) -> dict[str, str]:
        return self._api.get_many(self._group("scoped.get_many", group), keys)

    def count_all(self, prefix: str = "") -> int:
        """Live keys in this namespace's groups starting with ``prefix``."""
        return self._api.count_all(self._group("scoped.count_all", prefix))

    def groups(self, prefix: str = "") -> list[str]:
        """This namespace's groups with a live key, as local names, ascending."""
        return list(self.groups_iter(prefix))

    def groups_iter(self, prefix: str = "") -> Iterator[str]:
        cut = len(self._prefix)
        names = self._api.groups_iter(self._group("scoped.groups", prefix))
        return (name[cut:] for name in names)

    # -- writes ---------------------------------------------------------------------------------
    def set(self, group: str, key: str, value: str) -> None:
        full = self._group("scoped.set", group)
        if self._guard is None:
            return self._api.set(full, key, value)
        if type(key) is not str or type(value) is not str:
            check_text("scoped.set", key=key, value=value)
        self._writer()._put("scoped.set", full, key, value, None, self._guard)
        return None

    def set_with_ttl(self, group: str, key: str, value: str, ttl: TTL) -> None:
        full = self._group("scoped.set_with_ttl", group)
        if self._guard is None:
            return self._api.set_with_ttl(full, key, value, ttl)
        if type(key) is not str or type(value) is not str:
            check_text("scoped.set_with_ttl", key=key, value=value)
        expires = expiry_ms("scoped.set_with_ttl", ttl, now_ms())
        self._writer()._put("scoped.set_with_ttl", full, key, value, expires, self._guard)
        return None

    def set_many(self, group: str, mapping: Mapping[str, str], ttl: TTL | None = None) -> None:
        """All entries in one transaction, checked against the quota as a whole."""
        full = self._group("scoped.set_many", group)
        if self._guard is None:
            return self._api.set_many(full, mapping, ttl)
        self._writer()._set_many("scoped.set_many", full, mapping, ttl, self._guard)
        return None

    def delete(self, group: str, key: str) -> None:
        full = self._group("scoped.delete", group)
        if self._guard is None:
            return self._api.delete(full, key)
        if type(key) is not str:
            check_text("scoped.delete", key=key)
        self._writer()._write_one(
            "scoped.delete", sql.DELETE, (full, key), EventType.DELETE, full, key, guard=self._guard
        )
        return None

    def delete_group(self, group: str) -> None:
        self._api.delete_group(self._group("scoped.delete_group", group))

    def delete_prefix(self, prefix: str) -> int:
        """Remove this namespace's groups starting with ``prefix``; returns rows removed."""
        return self._writer()._delete_range(
            "scoped.delete_prefix", self._group("scoped.delete_prefix", prefix)
        )

    def purge_expired(self) -> int:
        """Delete this namespace's expired rows now; returns how many."""
        lo, hi = prefix_range(self._prefix)
        return self._writer()._purge(
            "scoped.purge_expired", sql.PURGE_RANGE, sql.PURGE_RANGE_RETURNING, (lo, hi)
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[ScopedStore]:
        """A transaction on the underlying store, seen through this namespace and quota."""
        with self._store.transaction() as tx:
            scoped = ScopedStore(self._store, self._namespace, self._quota)
            scoped._api = tx
            yield scoped

    # -- events ---------------------------------------------------------------------------------
    def watch(self, group: str, key: str, *, buffer: int = 16) -> Watcher:
        """Watch ``(group, key)`` in this namespace; ``"*"`` as group watches all its groups."""
        if group == "*":
            return self._store._watch("scoped.watch", "*", key, buffer, self._namespace)
        return self._store._watch(
            "scoped.watch", self._group("scoped.watch", group), key, buffer, None
        )

    def unwatch(self, watcher: Watcher) -> None:
        self._store.unwatch(watcher)





