"""Quotas: the namespace ledger and the check that observes the write path.

A quota is enforced by a ledger of the namespace's live totals (keys, bytes, keys per group,
and the rows due to expire), built once by one scan and then kept up to date by every checked
write, so a check costs the same however many keys the namespace holds. The ledger is dropped,
and rebuilt on the next check, whenever something else may have changed the namespace: a write
that bypasses the quota, a rolled-back transaction, or a commit by another connection (the
engine's ``version()`` changes).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._types import now_ms, prefix_range
from .errors import QuotaExceededError

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ("Ledgers", "QuotaConfig", "QuotaGuard", "forget")


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


class _Ledger:
    """A namespace's live totals, valid while the engine's ``version()`` equals ``version``."""

    __slots__ = ("bytes", "expiring", "groups", "heap", "keys", "rows", "version")

    def __init__(self, engine: Engine, bounds: tuple[str, str | bytes], now: int, version: Any):
        self.version = version
        self.keys = 0
        self.bytes = 0
        self.groups: dict[str, int] = {}  # live keys per group; a group counts while > 0
        for group, count, size in engine.range_totals(*bounds, now):
            self.groups[group] = count
            self.keys += count
            self.bytes += size
        # Rows with a TTL, so they leave the totals when they expire: (group, key) -> (expiry, size)
        self.expiring: dict[tuple[str, str], tuple[int, int]] = {}
        self.heap: list[tuple[int, str, str]] = []
        for group, key, size, expires in engine.range_expiring(*bounds, now):
            self.expiring[(group, key)] = (expires, size)
            self.heap.append((expires, group, key))
        heapq.heapify(self.heap)
        #: ``(bytes, expires)`` of rows this ledger's writes left, or ``None`` for a row they
        #: removed: what ``row_size()`` would read, without the statement. Exact while the
        #: ledger is (every other write to the namespace drops the ledger); bounded.
        self.rows: dict[tuple[str, str], tuple[int, int | None] | None] = {}

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
            heap = self.heap
            heapq.heappush(heap, (expires, group, key))
            # NOTE: rewriting a key with a TTL leaves its old heap entry behind (skipped when
            # it comes up); rebuild once stale entries outnumber live ones, so the heap stays
            # proportional to the keys that really expire, not to the writes.
            if len(heap) > 2 * len(self.expiring) + 64:
                self.heap = [(exp, g, k) for (g, k), (exp, _) in self.expiring.items()]
                heapq.heapify(self.heap)


Ledgers = dict[str, _Ledger]  # a store's ledgers by namespace; a plain dict: tested on hot paths


def forget(ledgers: Ledgers, group: str) -> None:
    """A write outside the quota path touched ``group``: its namespace ledger is stale."""
    namespace, colon, _ = group.partition(":")
    if colon:
        ledgers.pop(namespace, None)


def _ledger(
    ledgers: Ledgers, engine: Engine, namespace: str, bounds: tuple[str, str | bytes], now: int
) -> _Ledger:
    version = engine.version(namespace)
    ledger = ledgers.get(namespace)
    if ledger is None or ledger.version != version:
        ledger = _Ledger(engine, bounds, now, version)
        ledgers[namespace] = ledger
    heap = ledger.heap
    if heap and heap[0][0] <= now:
        ledger.advance(now)
    return ledger


_UNKNOWN: Any = object()  # a row the ledger has no record of
#: rows a ledger remembers at most (a replaced key's size needs no statement while it is known)
_KNOWN_ROWS = 4096


class QuotaGuard:
    """The quota of one ScopedStore, observing the store's write path: :meth:`apply` checks a
    write against the ledger (raising to refuse it), runs it, and records it."""

    __slots__ = ("_bounds", "namespace", "quota")

    def __init__(self, namespace: str, quota: QuotaConfig) -> None:
        self.namespace = namespace
        self.quota = quota
        self._bounds = prefix_range(namespace + ":")

    def apply(
        self,
        engine: Engine,
        ledgers: Ledgers,
        op: str,
        group: str,
        key: str,
        value: str | None,
        expires: int | None,
        expiry_only: bool = False,
    ) -> bool:
        """Check, write and record one change (the caller holds the lock and, when other
        connections may write, a transaction): set ``value`` (``None``: delete); with
        ``expiry_only``, change the live row's expiry and nothing else. True when a row was
        written or removed.

        NOTE: one method, not check/write/record calls with a token between them: it runs
        beside every checked write, and each Python call level is a measurable share of it.
        """
        namespace = self.namespace
        if engine.shared:  # alone, nobody else can change the namespace
            engine.lock_namespace(namespace)
        # NOTE: the clock is read only when something can expire (a ledger with expiring rows,
        # an old or new row with an expiry): without TTLs a checked write never needs it.
        now = 0
        ledger = ledgers.get(namespace)
        if ledger is None or ledger.heap or ledger.version != engine.version(namespace):
            now = now_ms()
            ledger = _ledger(ledgers, engine, namespace, self._bounds, now)
        rows = ledger.rows
        row = rows.get((group, key), _UNKNOWN)
        if row is _UNKNOWN:
            row = engine.row_size(group, key)
        old_size = 0  # of the live row this write replaces (an expired row counts as none)
        old_live = False
        if row is not None:
            size, old_expires = row
            if old_expires is None:
                old_live, old_size = True, size
            else:
                now = now or now_ms()
                if old_expires > now:
                    old_live, old_size = True, size
        new_size = 0
        new_live = False
        if value is not None:  # a deletion never needs quota
            new_size = (len(key) if key.isascii() else len(key.encode("utf-8"))) + (
                len(value) if value.isascii() else len(value.encode("utf-8"))
            )
            if expires is None:
                new_live = True
            else:
                now = now or now_ms()
                new_live = expires > now
            # Only a new key or growth can pass a limit (a replacement that does not grow
            # cannot).
            if new_live and (not old_live or new_size > old_size):
                self._refuse_growth(op, ledger, group, key, old_live, new_size - old_size)
        try:
            if expiry_only:
                changed = engine.set_expiry(group, key, expires)
            elif value is None:
                changed = engine.delete(group, key)
            else:
                engine.put(group, key, value, expires)
                changed = True
        except BaseException:
            ledgers.clear()  # a refused write leaves the ledgers exact; this may not
            raise
        if len(rows) >= _KNOWN_ROWS:
            rows.clear()
        if not changed:
            rows.pop((group, key), None)
        else:
            rows[(group, key)] = None if value is None else (new_size, expires)
        if old_live and new_live and expires is None and not ledger.expiring:
            # A live key replaced by a value without TTL, in a namespace where nothing
            # expires (the common case): only the byte total moves.
            ledger.bytes += new_size - old_size
        else:
            if old_live and changed:
                ledger.remove(group, key, old_size)
            if new_live:
                ledger.add(group, key, new_size, expires)
        return changed

    def _refuse_growth(
        self, op: str, ledger: _Ledger, group: str, key: str, old_live: bool, growth: int
    ) -> None:
        quota = self.quota
        reason = None
        if not old_live:
            if quota.max_keys and ledger.keys >= quota.max_keys:
                reason = f"holds its limit of {quota.max_keys} keys"
            elif (
                quota.max_groups
                and group not in ledger.groups
                and len(ledger.groups) >= quota.max_groups
            ):
                reason = f"holds its limit of {quota.max_groups} groups"
        if reason is None and quota.max_bytes and growth > 0:
            total = ledger.bytes + growth
            if total > quota.max_bytes:
                reason = f"would hold {total} bytes, over its limit of {quota.max_bytes}"
        if reason is not None:
            raise QuotaExceededError.at(op, f"namespace {self.namespace!r} {reason}", group, key)
