"""Reads of whole groups and prefixes, as a mixin of Store: counts, get_all, the paged and
lazy iterators, group listings, Go-style splitting, templates, and the CLI's export.

Every method takes the store's lock for one SQL step at a time; the lazy iterators take it
again for each page, so a caller may stop early, or write, between pages.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import apsw

from . import _schema as sql
from ._accel import decode_group, decode_pairs
from ._render import RenderLimits
from ._render import render as _render
from ._types import KeyValue, check_text, go_fields, go_split, now_ms, prefix_range
from .errors import StoreError

__all__ = ("GroupReads",)

_PAGE = 1024  # rows fetched per step by the lazy iterators all() and groups_iter()
_INT64_MAX = 2**63 - 1


class GroupReads:
    """The read side of :class:`~gostore.Store` that works on whole groups or prefixes."""

    if TYPE_CHECKING:  # provided by Store
        _lock: threading.RLock
        _cur: Any

        def _ready(self, op: str) -> None: ...

        def _failure(
            self, op: str, exc: BaseException, group: str | None = None, key: str | None = None
        ) -> StoreError: ...

        def get(self, group: str, key: str) -> str: ...

    def count_all(self, prefix: str = "") -> int:
        """Live keys in all groups whose name starts with ``prefix`` (literal, case-sensitive)."""
        if type(prefix) is not str:
            check_text("store.count_all", prefix=prefix)
        lo, hi = prefix_range(prefix)
        return self._scalar("store.count_all", sql.COUNT_PREFIX, (lo, hi, now_ms()), prefix)

    def groups(self, prefix: str = "") -> list[str]:
        """Distinct groups with a live key whose name starts with ``prefix``, ascending."""
        return list(self.groups_iter(prefix))

    def groups_iter(self, prefix: str = "") -> Iterator[str]:
        """Like :meth:`groups`, fetched lazily a page at a time."""
        # Checked in full here (not at the first next()), so a bad prefix fails at the call.
        check_text("store.groups", prefix=prefix)
        self._ready("store.groups")
        return self._iter_groups(prefix)

    def _iter_groups(self, prefix: str) -> Iterator[str]:
        lo, hi = prefix_range(prefix)
        after = None
        while True:
            with self._lock:
                self._ready("store.groups")
                try:
                    if after is None:
                        statement, args = sql.GROUPS_FIRST, (lo, hi, lo, now_ms(), _PAGE)
                    else:
                        statement, args = sql.GROUPS_AFTER, (lo, hi, after, now_ms(), _PAGE)
                    rows = self._cur.execute(statement, args).fetchall()
                except apsw.Error as exc:
                    raise self._failure("store.groups", exc, prefix) from exc
            for (name,) in rows:
                yield name
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def _scalar(self, op: str, statement: str, args: tuple[Any, ...], group: str) -> int:
        self._ready(op)
        with self._lock:
            try:
                return int(self._cur.execute(statement, args).fetchall()[0][0])
            except apsw.Error as exc:
                raise self._failure(op, exc, group) from exc
            except UnicodeEncodeError:
                check_text(op, group=group)
                raise

    def count(self, group: str) -> int:
        """Live keys in ``group``."""
        if type(group) is not str:
            check_text("store.count", group=group)
        return self._scalar("store.count", sql.COUNT, (group, now_ms()), group)

    def get_all(self, group: str) -> dict[str, str]:
        """Every live entry of ``group`` as a dict."""
        if type(group) is not str:
            check_text("store.get_all", group=group)
        self._ready("store.get_all")
        args = (group, now_ms())
        with self._lock:
            try:
                count, keys, values = self._cur.execute(sql.GROUP_BLOB, args).fetchall()[0]
                entries = decode_group(count, keys, values)
                if entries is None:
                    entries = dict(self._cur.execute(sql.GROUP_ROWS, args).fetchall())
            except apsw.Error as exc:
                raise self._failure("store.get_all", exc, group) from exc
            except UnicodeError as exc:
                raise self._bad_text("store.get_all", exc, group) from exc
        return entries

    def _bad_text(self, op: str, exc: UnicodeError, group: str) -> Exception:
        if isinstance(exc, UnicodeEncodeError):
            check_text(op, group=group)
        return StoreError.at(op, "a stored key or value is not valid UTF-8", group)

    def _page(
        self, op: str, group: str, blob_sql: str, rows_sql: str, args: tuple[Any, ...]
    ) -> list[KeyValue]:
        self._ready(op)
        with self._lock:
            try:
                count, keys, values = self._cur.execute(blob_sql, args).fetchall()[0]
                page = decode_pairs(count, keys, values, KeyValue)
                if page is None:
                    page = [KeyValue(k, v) for k, v in self._cur.execute(rows_sql, args).fetchall()]
            except apsw.Error as exc:
                raise self._failure(op, exc, group) from exc
            except UnicodeError as exc:
                raise self._bad_text(op, exc, group) from exc
        return page

    def all(self, group: str) -> Iterator[KeyValue]:
        """Live entries of ``group`` ascending by key, fetched lazily a page at a time."""
        # Checked in full here (not at the first next()), so a bad group fails at the call.
        check_text("store.all", group=group)
        self._ready("store.all")
        return self._iter_all(group)

    def _iter_all(self, group: str) -> Iterator[KeyValue]:
        page = self._page(
            "store.all",
            group,
            sql.PAGE_OFFSET_BLOB,
            sql.PAGE_OFFSET_ROWS,
            (group, now_ms(), _PAGE, 0),
        )
        while True:
            yield from page
            if len(page) < _PAGE:
                return
            page = self._page(
                "store.all",
                group,
                sql.PAGE_AFTER_BLOB,
                sql.PAGE_AFTER_ROWS,
                (group, page[-1].key, now_ms(), _PAGE),
            )

    def get_page(self, group: str, offset: int = 0, limit: int = 100) -> list[KeyValue]:
        """One page of :meth:`all`: ``limit`` entries after skipping ``offset``."""
        if type(group) is not str:
            check_text("store.get_page", group=group)
        for name, number in (("offset", offset), ("limit", limit)):
            if isinstance(number, bool) or not isinstance(number, int):
                raise TypeError(f"store.get_page: {name} must be int, not {type(number).__name__}")
            if number < 0:
                raise ValueError(f"store.get_page: {name} must be >= 0, got {number}")
        if limit == 0:
            self._ready("store.get_page")
            return []
        # SQLite binds 64-bit integers only; a larger offset or limit means "all" just the same.
        return self._page(
            "store.get_page", group, sql.PAGE_OFFSET_BLOB, sql.PAGE_OFFSET_ROWS,
            (group, now_ms(), min(limit, _INT64_MAX), min(offset, _INT64_MAX)),
        )

    def get_split(self, group: str, key: str, separator: str) -> Iterator[str]:
        """The value split like Go's ``strings.Split`` (empty separator: one item a character).

        :raises NotFoundError: at the call, not at the first ``next()``.
        """
        # Checked here so that errors name store.get_split, not the store.get it calls.
        check_text("store.get_split", group=group, key=key, separator=separator)
        return iter(go_split(self.get(group, key), separator))

    def get_fields(self, group: str, key: str) -> Iterator[str]:
        """The value split on whitespace runs as Go's ``strings.Fields`` does."""
        check_text("store.get_fields", group=group, key=key)
        return iter(go_fields(self.get(group, key)))

    def render(
        self, template: str, group: str, *, strict: bool = False, limits: RenderLimits | None = None
    ) -> str:
        """Render a Jinja2 template (sandboxed) with the group's live entries as variables.

        :param strict: a missing variable raises :class:`TemplateError` instead of rendering "".
        :param limits: bounds on the render's work and output; None: ``RenderLimits()``.
        :raises TemplateError: syntax or runtime template errors, or a limit exceeded.
        """
        check_text("store.render", template=template, group=group)
        return _render("store.render", template, group, self.get_all(group), strict, limits)

    def get_many(self, group: str, keys: list[str] | tuple[str, ...]) -> dict[str, str]:
        """The live entries among ``keys`` (absent and expired keys are left out)."""
        op = "store.get_many"
        if type(group) is not str:
            check_text(op, group=group)
        keys = _text_list(op, keys)
        self._ready(op)
        found: dict[str, str] = {}
        now = now_ms()
        with self._lock:
            try:
                for key in keys:
                    rows = self._cur.execute(sql.GET_MANY_ROW, (group, key, now)).fetchall()
                    if rows:
                        found[key] = rows[0][0]
            except apsw.Error as exc:
                raise self._failure(op, exc, group) from exc
            except UnicodeEncodeError:
                check_text(op, group=group, **{f"keys[{i}]": k for i, k in enumerate(keys)})
                raise
        return found

    def _dump(self, op: str) -> Generator[tuple[str, str, str, int | None], None, None]:
        """Every live row with its ``expires_at``, in (group, key) order, from one SELECT.

        NOTE: for ``gostore export``: the public API never shows ``expires_at``. It runs on its
        own cursor and holds the lock until exhausted, so the rows are one consistent snapshot.
        """
        with self._lock:
            self._ready(op)
            try:
                yield from self._cur.connection.cursor().execute(sql.EXPORT, (now_ms(),))
            except apsw.Error as exc:
                raise self._failure(op, exc) from exc
            except UnicodeDecodeError as exc:  # a foreign (go-store) row that is not UTF-8
                raise StoreError.at(op, "a stored group, key or value is not valid UTF-8") from exc


def _text_list(op: str, keys: object) -> list[str]:
    if isinstance(keys, (str, bytes)) or not hasattr(keys, "__iter__"):
        raise TypeError(f"{op}: keys must be a list or tuple of str, not {type(keys).__name__}")
    result = list(keys)
    for i, key in enumerate(result):
        if type(key) is not str:
            check_text(op, **{f"keys[{i}]": key})
    return result
