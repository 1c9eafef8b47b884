"""ScopedStore: a namespace's view of a Store, with an optional quota checked atomically.

Groups are stored as ``namespace + ":" + group``. Every call goes to the store's core by one
route, inside a transaction or not; the quota (see ``_quota.py``) observes the writes.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, TypeVar, overload

from . import _atomic
from ._core import Core, core_of
from ._quota import QuotaConfig, QuotaGuard
from ._render import render as _render
from ._render_limits import RenderLimits
from ._types import KeyValue, check_text, expiry_ms, go_fields, go_split, now_ms
from .errors import InvalidNamespaceError
from .events import Watcher
from .transaction import TransactionScope

if TYPE_CHECKING:
    from ._core import TTL
    from .store import Store

__all__ = ("QuotaConfig", "ScopedStore")

_NAMESPACE = re.compile(r"[a-zA-Z0-9-]+")
D = TypeVar("D")


class ScopedStore:
    """A view of ``store`` confined to ``namespace``, optionally under a quota.

    Every group is stored as ``namespace + ":" + group``; ``groups()`` returns local names.

    :raises InvalidNamespaceError: ``namespace`` does not match ``^[a-zA-Z0-9-]+$``.

    >>> from gostore import Store
    >>> with Store() as store:
    ...     tenant = ScopedStore(store, "tenant-a", QuotaConfig(max_keys=100))
    ...     tenant.set("config", "colour", "blue")
    ...     store.get("tenant-a:config", "colour")
    'blue'
    """

    def __init__(self, store: Store, namespace: str, quota: QuotaConfig | None = None) -> None:
        try:
            core = core_of(store)
        except TypeError:
            raise TypeError(
                f"ScopedStore: store must be a gostore.Store, not {type(store).__name__}"
            ) from None
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
        self._core: Core = core
        self._tx: TransactionScope | None = None  # set on the view a transaction() yields
        self._namespace = namespace
        self._prefix = namespace + ":"
        self._quota = quota
        self._guard = QuotaGuard(namespace, quota) if quota is not None and quota.limited else None
        if self._guard is not None:
            core.quotas_in_use()

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
        """The stored group name, after checking a transaction view is still usable."""
        if self._tx is not None:
            self._tx.check(op)
        if type(group) is not str:
            check_text(op, group=group)
        return self._prefix + group  # type: ignore[operator]

    # -- reads ----------------------------------------------------------------------------------
    def get(self, group: str, key: str) -> str:
        return self._core.get("scoped.get", self._group("scoped.get", group), key)

    def exists(self, group: str, key: str) -> bool:
        return self._core.exists("scoped.exists", self._group("scoped.exists", group), key)

    def count(self, group: str) -> int:
        return self._core.count("scoped.count", self._group("scoped.count", group))

    def get_all(self, group: str) -> dict[str, str]:
        return self._core.get_all("scoped.get_all", self._group("scoped.get_all", group))

    def all(self, group: str) -> Iterator[KeyValue]:
        return self._core.all("scoped.all", self._group("scoped.all", group))

    def get_page(self, group: str, offset: int = 0, limit: int = 100) -> list[KeyValue]:
        full = self._group("scoped.get_page", group)
        return self._core.get_page("scoped.get_page", full, offset, limit)

    def get_split(self, group: str, key: str, separator: str) -> Iterator[str]:
        op = "scoped.get_split"
        full = self._group(op, group)
        check_text(op, key=key, separator=separator)
        return iter(go_split(self._core.get(op, full, key), separator))

    def get_fields(self, group: str, key: str) -> Iterator[str]:
        op = "scoped.get_fields"
        full = self._group(op, group)
        check_text(op, key=key)
        return iter(go_fields(self._core.get(op, full, key)))

    def render(
        self, template: str, group: str, *, strict: bool = False, limits: RenderLimits | None = None
    ) -> str:
        op = "scoped.render"
        full = self._group(op, group)
        check_text(op, template=template)
        return _render(op, template, full, self._core.get_all(op, full), strict, limits)

    def get_many(self, group: str, keys: list[str] | tuple[str, ...]) -> dict[str, str]:
        return self._core.get_many("scoped.get_many", self._group("scoped.get_many", group), keys)

    def count_all(self, prefix: str = "") -> int:
        """Live keys in this namespace's groups starting with ``prefix``."""
        return self._core.count_all("scoped.count_all", self._group("scoped.count_all", prefix))

    def groups(self, prefix: str = "") -> list[str]:
        """This namespace's groups with a live key, as local names, ascending."""
        full = self._group("scoped.groups", prefix)
        return list(self._core.groups_iter("scoped.groups", full, len(self._prefix)))

    def groups_iter(self, prefix: str = "") -> Iterator[str]:
        full = self._group("scoped.groups_iter", prefix)
        return self._core.groups_iter("scoped.groups_iter", full, len(self._prefix))

    # -- writes ---------------------------------------------------------------------------------
    def set(self, group: str, key: str, value: str) -> None:
        # NOTE: _group() inlined: a call level is a measurable share of a checked set.
        if self._tx is not None:
            self._tx.check("scoped.set")
        if type(group) is not str or type(key) is not str or type(value) is not str:
            check_text("scoped.set", group=group, key=key, value=value)
        self._core.write("scoped.set", self._prefix + group, key, value, None, self._guard)

    def set_with_ttl(self, group: str, key: str, value: str, ttl: TTL) -> None:
        op = "scoped.set_with_ttl"
        full = self._group(op, group)
        if type(key) is not str or type(value) is not str:
            check_text(op, key=key, value=value)
        self._core.write(op, full, key, value, expiry_ms(op, ttl, now_ms()), self._guard)

    def set_many(self, group: str, mapping: Mapping[str, str], ttl: TTL | None = None) -> None:
        """All entries in one transaction, checked against the quota as a whole."""
        full = self._group("scoped.set_many", group)
        self._core.set_many("scoped.set_many", full, mapping, ttl, self._guard)

    def delete(self, group: str, key: str) -> None:
        full = self._group("scoped.delete", group)
        if type(key) is not str:
            check_text("scoped.delete", key=key)
        self._core.write("scoped.delete", full, key, None, None, self._guard)

    def delete_group(self, group: str) -> None:
        self._core.delete_group("scoped.delete_group", self._group("scoped.delete_group", group))

    def delete_prefix(self, prefix: str) -> int:
        """Remove this namespace's groups starting with ``prefix``; returns rows removed."""
        full = self._group("scoped.delete_prefix", prefix)
        return self._core.delete_prefix("scoped.delete_prefix", full)

    def purge_expired(self) -> int:
        """Delete this namespace's expired rows now; returns how many."""
        op = "scoped.purge_expired"
        return self._core.purge_expired(op, self._group(op, ""))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[ScopedStore]:
        """A transaction on the underlying store, seen through this namespace and quota."""
        scope = TransactionScope()
        with self._core.atomic("scoped.transaction"):
            view = ScopedStore(self._store, self._namespace, self._quota)
            view._tx = scope
            try:
                yield view
            finally:
                scope.end()

    # -- events ---------------------------------------------------------------------------------
    def watch(
        self, group: str, key: str, *, buffer: int = 16, since: int | None = None
    ) -> Watcher:
        """Watch ``(group, key)`` in this namespace; ``"*"`` as group watches all its groups.
        ``since`` replays this namespace's recorded changes first, as ``Store.watch``."""
        if group == "*":
            return self._core.watch("scoped.watch", "*", key, buffer, self._namespace, since)
        full = self._group("scoped.watch", group)
        return self._core.watch("scoped.watch", full, key, buffer, None, since)

    def unwatch(self, watcher: Watcher) -> None:
        self._store.unwatch(watcher)

    # -- atomic operations: checked against the quota for what they would add -----------------
    def incr(self, group: str, key: str, delta: int = 1) -> int:
        full = self._group("scoped.incr", group)
        return _atomic.incr(self._core, "scoped.incr", full, key, delta, self._guard)

    def add(self, group: str, key: str, value: str, ttl: TTL | None = None) -> bool:
        full = self._group("scoped.add", group)
        return _atomic.add(self._core, "scoped.add", full, key, value, ttl, self._guard)

    def compare_and_set(
        self, group: str, key: str, expected: str | None, value: str, ttl: TTL | None = None
    ) -> bool:
        op = "scoped.compare_and_set"
        full = self._group(op, group)
        return _atomic.compare_and_set(
            self._core, op, full, key, expected, value, ttl, self._guard
        )

    @overload
    def pop(self, group: str, key: str) -> str: ...
    @overload
    def pop(self, group: str, key: str, default: D) -> str | D: ...
    def pop(self, group: str, key: str, default: object = _atomic.UNSET) -> object:
        full = self._group("scoped.pop", group)
        return _atomic.pop(self._core, "scoped.pop", full, key, default, self._guard)

    def touch(self, group: str, key: str, ttl: TTL | None) -> bool:
        full = self._group("scoped.touch", group)
        return _atomic.touch(self._core, "scoped.touch", full, key, ttl, self._guard)

    def ttl(self, group: str, key: str) -> float | None:
        return _atomic.ttl(self._core, "scoped.ttl", self._group("scoped.ttl", group), key)
