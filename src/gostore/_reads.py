"""The read side of :class:`~gostore._core.Core`, as a base class of it: single keys, groups,
pages, lazy iterators and the export snapshot. Every method takes the operation name."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._types import KeyValue, check_text, now_ms, prefix_range
from .engine import DatabaseError, Engine
from .errors import NotFoundError, StoreError

if TYPE_CHECKING:
    from .events import EventHub

__all__ = ("CoreReads", "live_row")

_PAGE = 1024  # rows fetched per step by the lazy iterators
_INT64_MAX = 2**63 - 1


class CoreReads:
    """Reads; the state and the failure mapping come from :class:`~gostore._core.Core`."""

    if TYPE_CHECKING:
        engine: Engine
        lock: threading.RLock
        hub: EventHub

        def failure(
            self, op: str, exc: DatabaseError, group: str | None = None, key: str | None = None
        ) -> StoreError: ...

        def ready(self, op: str) -> None: ...

        def _expire(self, op: str, group: str, key: str) -> None: ...

    # -- single-key reads -----------------------------------------------------------------------
    def get(self, op: str, group: str, key: str) -> str:
        if type(group) is not str or type(key) is not str:
            check_text(op, group=group, key=key)
        try:
            row = self.engine.get(group, key)
        except DatabaseError as exc:
            raise self.failure(op, exc, group, key) from exc.__cause__
        except UnicodeEncodeError:
            check_text(op, group=group, key=key)
            raise
        if row is not None and row[1] is None and type(row[0]) is str:
            return row[0]
        return self.finish_get(op, group, key, row)

    def get_now(self, op: str, group: str, key: str) -> str | None:
        """:meth:`get` when it can finish at once without waiting (see ``Engine.get_now``):
        the value, or ``None`` when it cannot (then call :meth:`get`, where waiting is fine).

        :raises NotFoundError: the key is absent.
        """
        if type(group) is not str or type(key) is not str:
            return None  # get() names the bad argument
        try:
            row = self.engine.get_now(group, key)
        except (DatabaseError, UnicodeEncodeError):
            return None  # get() reports it
        if row is False:
            return None
        return self.settle_get(op, group, key, row)

    def settle_get(self, op: str, group: str, key: str, row: tuple[Any, Any] | None) -> str | None:
        """The value of a row read for :meth:`get` outside the engine's ``get``, or ``None``
        when only :meth:`get` can finish it (an expired row, a row of another program).

        :raises NotFoundError: the key is absent.
        """
        if row is None:
            raise NotFoundError.at(op, "not found", group, key)
        value, expires = row
        live = expires is None or (type(expires) is int and expires > now_ms())
        if live and type(value) is str:
            return value
        return None  # expired (its lazy delete takes the lock), or a row of another program

    def finish_get(self, op: str, group: str, key: str, row: tuple[Any, Any] | None) -> str:
        """The rest of a get: expiry, the lazy delete, and rows written by other programs."""
        value, _ = live_row(op, group, key, row, now_ms())
        if value is not None:
            return value
        if row is not None:  # expired
            self._expire(op, group, key)
        else:
            self.ready(op)
        raise NotFoundError.at(op, "not found", group, key)

    def exists(self, op: str, group: str, key: str) -> bool:
        if type(group) is not str or type(key) is not str:
            check_text(op, group=group, key=key)
        self.ready(op)
        try:
            return self.engine.exists(group, key, now_ms())
        except DatabaseError as exc:
            raise self.failure(op, exc, group, key) from exc.__cause__
        except UnicodeEncodeError:
            check_text(op, group=group, key=key)
            raise

    def get_many(self, op: str, group: str, keys: Iterable[str]) -> dict[str, str]:
        if type(group) is not str:
            check_text(op, group=group)
        keys = _text_list(op, keys)
        self.ready(op)
        try:
            return self.engine.get_many(group, keys, now_ms())
        except DatabaseError as exc:
            raise self.failure(op, exc, group) from exc.__cause__
        except UnicodeEncodeError:
            check_text(op, group=group, **{f"keys[{i}]": k for i, k in enumerate(keys)})
            raise

    # -- group reads ----------------------------------------------------------------------------
    def count(self, op: str, group: str) -> int:
        if type(group) is not str:
            check_text(op, group=group)
        self.ready(op)
        try:
            return self.engine.count(group, now_ms())
        except DatabaseError as exc:
            raise self.failure(op, exc, group) from exc.__cause__
        except UnicodeEncodeError:
            check_text(op, group=group)
            raise

    def count_all(self, op: str, prefix: str) -> int:
        if type(prefix) is not str:
            check_text(op, prefix=prefix)
        self.ready(op)
        lo, hi = prefix_range(prefix)
        try:
            return self.engine.count_range(lo, hi, now_ms())
        except DatabaseError as exc:
            raise self.failure(op, exc, prefix) from exc.__cause__
        except UnicodeEncodeError:
            check_text(op, prefix=prefix)
            raise

    def get_all(self, op: str, group: str) -> dict[str, str]:
        if type(group) is not str:
            check_text(op, group=group)
        self.ready(op)
        try:
            return self.engine.entries(group, now_ms())
        except DatabaseError as exc:
            raise self.failure(op, exc, group) from exc.__cause__
        except UnicodeEncodeError:
            check_text(op, group=group)
            raise

    def get_page(self, op: str, group: str, offset: int, limit: int) -> list[KeyValue]:
        if type(group) is not str:
            check_text(op, group=group)
        for name, number in (("offset", offset), ("limit", limit)):
            if isinstance(number, bool) or not isinstance(number, int):
                raise TypeError(f"{op}: {name} must be int, not {type(number).__name__}")
            if number < 0:
                raise ValueError(f"{op}: {name} must be >= 0, got {number}")
        self.ready(op)
        if limit == 0:
            return []
        # SQLite binds 64-bit integers only; a larger offset or limit means "all" just the same.
        return self._page(
            op, group, None, min(limit, _INT64_MAX), min(offset, _INT64_MAX)
        )

    def _page(
        self, op: str, group: str, after: str | None, limit: int, offset: int = 0
    ) -> list[KeyValue]:
        try:
            if after is None:
                return self.engine.page(group, now_ms(), limit, offset)
            return self.engine.page_after(group, after, now_ms(), limit)
        except DatabaseError as exc:
            raise self.failure(op, exc, group) from exc.__cause__
        except UnicodeEncodeError:
            check_text(op, group=group)
            raise

    def all(self, op: str, group: str) -> Iterator[KeyValue]:
        # Checked in full here (not at the first next()), so a bad group fails at the call.
        check_text(op, group=group)
        self.ready(op)
        return self._iter_all(op, group)

    def _iter_all(self, op: str, group: str) -> Iterator[KeyValue]:
        page = self._page(op, group, None, _PAGE)
        while True:
            yield from page
            if len(page) < _PAGE:
                return
            page = self._page(op, group, page[-1].key, _PAGE)

    def groups_iter(self, op: str, prefix: str, strip: int = 0) -> Iterator[str]:
        """Groups starting with ``prefix``, lazily; ``strip`` characters cut from each name."""
        check_text(op, prefix=prefix)
        self.ready(op)
        return self._iter_groups(op, prefix, strip)

    def _iter_groups(self, op: str, prefix: str, strip: int) -> Iterator[str]:
        lo, hi = prefix_range(prefix)
        after = None
        while True:
            self.ready(op)
            try:
                names = self.engine.groups_page(lo, hi, after, now_ms(), _PAGE)
            except DatabaseError as exc:
                raise self.failure(op, exc, prefix) from exc.__cause__
            for name in names:
                yield name[strip:]
            if len(names) < _PAGE:
                return
            after = names[-1]

    def dump(self, op: str) -> Generator[tuple[str, str, str, int | None], None, None]:
        """Every live row with its expiry, in (group, key) order, as one snapshot."""
        with self.lock:
            self.ready(op)
            try:
                yield from self.engine.dump(now_ms())
            except DatabaseError as exc:
                raise self.failure(op, exc) from exc.__cause__

def _text_list(op: str, keys: object) -> list[str]:
    if isinstance(keys, (str, bytes)) or not hasattr(keys, "__iter__"):
        raise TypeError(f"{op}: keys must be a list or tuple of str, not {type(keys).__name__}")
    result = list(keys)
    for i, key in enumerate(result):
        if type(key) is not str:
            check_text(op, **{f"keys[{i}]": key})
    return result


def live_row(
    op: str, group: str, key: str, row: tuple[Any, Any] | None, now: int
) -> tuple[str | None, int | None]:
    """``(value, expires)`` of a row as the engine returned it if it is live, ``(None, None)``
    when it is absent or expired. Rows written by other programs may hold a BLOB (decoded when
    it is UTF-8), a NULL or a non-numeric expiry: those raise :class:`StoreError`."""
    if row is None:
        return None, None
    value, expires = row
    if expires is not None:
        if isinstance(expires, bool) or not isinstance(expires, (int, float)):
            raise StoreError.at(
                op, f"the stored expires_at is {type(expires).__name__}, not a number", group, key
            )
        if expires <= now:
            return None, None
        expires = int(expires)
    if type(value) is not str:
        if not isinstance(value, bytes):
            raise StoreError.at(
                op, f"the stored value is {type(value).__name__}, not text", group, key
            )
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise StoreError.at(
                op, "the stored value is a BLOB that is not valid UTF-8", group, key
            ) from None
    return value, expires
