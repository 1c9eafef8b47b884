"""Small value types and conversions: KeyValue, TTL to Unix ms, input checks, prefix ranges,
and the Go string splitting that ``get_split``/``get_fields`` follow."""

from __future__ import annotations

import math
import re
import time
from datetime import timedelta
from typing import NamedTuple

__all__ = (
    "Change",
    "KeyValue",
    "StoreStats",
    "check_text",
    "expiry_ms",
    "go_fields",
    "go_split",
    "now_ms",
    "prefix_range",
)


_MAX_MS = 2**63 - 1  # expires_at is a signed 64-bit integer, as in go-store


class KeyValue(NamedTuple):
    """One entry of a group, as yielded by :meth:`Store.all`."""

    key: str
    value: str


class Change(NamedTuple):
    """What one write does to one key: the record the quota check observes.

    ``value`` is ``None`` for a deletion; ``expires`` is Unix ms or ``None`` (no expiry).
    """

    group: str
    key: str
    value: str | None
    expires: int | None


class StoreStats(NamedTuple):
    """What :meth:`Store.stats` reports: cheap enough for a health endpoint.

    :ivar keys: live entries.
    :ivar expired: rows that have expired and await the purge.
    :ivar groups: groups with a live entry.
    :ivar bytes: UTF-8 bytes of the live keys plus values.
    :ivar file_bytes: size of the database file (``0`` for ``":memory:"``).
    :ivar wal_bytes: size of its write-ahead log (``0`` for ``":memory:"`` or none).
    """

    keys: int
    expired: int
    groups: int
    bytes: int
    file_bytes: int
    wal_bytes: int


def now_ms() -> int:
    """The current time in Unix milliseconds, truncated as Go's ``time.Now().UnixMilli()``."""
    return time.time_ns() // 1_000_000


def check_text(op: str, **arguments: object) -> None:
    """Raise ``TypeError`` for a non-``str`` argument, ``ValueError`` for one that is not
    encodable as UTF-8 (a lone surrogate). The message names the operation and the argument.

    The hot paths test ``type(x) is str`` inline and call this only to build the error.
    """
    for name, value in arguments.items():
        if not isinstance(value, str):
            raise TypeError(f"{op}: {name} must be str, not {type(value).__name__}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{op}: {name} is not valid UTF-8 text (lone surrogate at index {exc.start})"
            ) from None


def expiry_ms(op: str, ttl: object, now: int) -> int:
    """The Unix-ms expiry for a TTL given in seconds (``int``/``float``) or as a ``timedelta``.

    ``ttl <= 0`` gives an already-expired time, as go-store stores it.
    """
    kind = type(ttl)
    # Exact int and float first: the common case costs two identity tests (set_with_ttl's path).
    if kind is float:
        if not -_MAX_SECONDS < ttl < _MAX_SECONDS:  # type: ignore[operator]
            if ttl <= 0 and ttl != -math.inf:  # type: ignore[operator]
                return _LONG_AGO  # any ttl <= 0 means "already expired", however far below
            raise _bad_float(op, ttl)
        return now + math.floor(ttl * 1000)  # type: ignore[operator]
    if kind is int:
        expires = now + ttl * 1000  # type: ignore[operator]
        if expires < _LONG_AGO:
            return _LONG_AGO
    elif isinstance(ttl, timedelta):
        # timedelta is exact to the microsecond; integer arithmetic keeps it so.
        micros = ttl.days * 86_400_000_000 + ttl.seconds * 1_000_000 + ttl.microseconds
        expires = now + micros // 1000
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):  # subclasses
        return expiry_ms(op, float(ttl) if isinstance(ttl, float) else int(ttl), now)
    else:
        raise TypeError(f"{op}: ttl must be int, float or timedelta, not {type(ttl).__name__}")
    if not -_MAX_MS <= expires <= _MAX_MS:
        raise ValueError(f"{op}: ttl {ttl!r} is out of range")
    return int(expires)


# A float TTL within this many seconds keeps the expiry inside int64 milliseconds.
_MAX_SECONDS = 9.2e15
_LONG_AGO = 0  # the expiry stored for a TTL too far below zero to represent: the Unix epoch


def _bad_float(op: str, ttl: object) -> ValueError:
    if ttl != ttl or ttl in (math.inf, -math.inf):
        return ValueError(f"{op}: ttl must be finite, got {ttl!r}")
    return ValueError(f"{op}: ttl {ttl!r} s is out of range")


def prefix_range(prefix: str) -> tuple[str, str | bytes]:
    """``(lo, hi)`` such that ``lo <= name < hi`` holds exactly for names starting with ``prefix``.

    SQLite's BINARY collation compares UTF-8 bytes, which orders like code points, so ``hi`` is
    the prefix with its last character incremented (trailing U+10FFFF dropped first, surrogates
    skipped). With no such string ``hi`` is ``b""``: every TEXT sorts before every BLOB.
    """
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return prefix, b""
    last = ord(stem[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:
        last = 0xE000
    return prefix, stem[:-1] + chr(last)


def go_split(text: str, separator: str) -> list[str]:
    """Go's ``strings.Split``: an empty separator splits after each character."""
    if separator == "":
        return list(text)
    return text.split(separator)


# Go's unicode.IsSpace: Latin-1 space characters plus the Unicode White_Space property.
# Python's str.split() also splits on U+001C..U+001F, which Go does not treat as space.
_GO_SPACE = re.compile(
    "[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
)
_NOT_GO_SPACE = re.compile("[\x1c-\x1f]")


def go_fields(text: str) -> list[str]:
    """Go's ``strings.Fields``: split on runs of ``unicode.IsSpace``, no empty fields."""
    if _NOT_GO_SPACE.search(text) is None:
        return text.split()
    return [field for field in _GO_SPACE.split(text) if field]
