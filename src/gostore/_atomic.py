"""Atomic operations on one core: incr, add, compare_and_set, pop, touch and ttl.

Each is one read-modify-write step: with the engine's lock held, a write transaction is opened
(on a database other connections may write; alone, the lock already excludes everyone), the
row is read with :meth:`~gostore.engine.Engine.get_for_update`, Python decides what to write,
the quota guard (if any) checks the :class:`~gostore._types.Change`, the engine writes, and the
event goes out through the core's publish path after the commit (staged inside a transaction).

An expired row counts as absent throughout, and nothing here emits ``EXPIRE``: such a row is
overwritten (``incr``, ``add``, ``compare_and_set``) or left for the purge (``pop``, ``touch``,
``ttl``). A call that writes nothing never reaches the quota check, so it never raises
:class:`~gostore.errors.QuotaExceededError`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ._reads import live_row
from ._types import Change, check_text, expiry_ms, now_ms
from .engine import DatabaseError
from .errors import NotFoundError, describe
from .events import EventType

if TYPE_CHECKING:
    from ._core import TTL, Core
    from ._quota import QuotaGuard

__all__ = ("UNSET", "Unset", "add", "compare_and_set", "incr", "pop", "touch", "ttl")

R = TypeVar("R")

_INTEGER = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: no spaces, underscores or others
# Python refuses int/str conversions of more digits than this (CVE-2020-10735 mitigation).
_MAX_DIGITS = 4000
_LIMIT = 10**_MAX_DIGITS


class Unset(enum.Enum):
    """The type of :data:`UNSET`, ``pop``'s "no default given"."""

    UNSET = 0

    def __repr__(self) -> str:
        return "<unset>"


UNSET = Unset.UNSET

# What a step decided: the change to make (None: write nothing), whether it only changes the
# expiry, the event to send, and the call's result.
Decision = tuple[Change | None, bool, EventType | None, R]


def _step(
    core: Core,
    op: str,
    group: str,
    key: str,
    guard: QuotaGuard | None,
    decide: Callable[[str | None, int | None, int], Decision[R]],
) -> R:
    """Read the row, decide, and write, as one atomic step; then publish the event."""
    core.ready(op)
    engine = core.engine
    callbacks: list[Any] = []
    lock = core.lock
    lock.acquire()
    try:
        # NOTE: alone (":memory:") the lock makes the step atomic, and inside a transaction
        # the step is one more statement of it; otherwise BEGIN IMMEDIATE keeps every other
        # connection out between the read and the write.
        own = engine.shared and not engine.depth
        try:
            if own:
                engine.begin()
            try:
                now = now_ms()
                value, expires = live_row(op, group, key, engine.get_for_update(group, key), now)
                change, expiry_only, kind, result = decide(value, expires, now)
                if change is not None:
                    core.apply(op, change, guard, expiry_only=expiry_only)
            except BaseException:
                if own:
                    engine.rollback()
                raise
            if own:
                engine.commit()
        except DatabaseError as exc:
            raise core.failure(op, exc, group, key) from exc.__cause__
        if kind is not None and core.hub.active:
            text = "" if change is None or change.value is None else change.value
            callbacks = core.publish_one(kind, group, key, text)
    finally:
        lock.release()
    if callbacks:
        core.hub.to_callbacks(callbacks)
    return result


def incr(core: Core, op: str, group: str, key: str, delta: int, guard: QuotaGuard | None) -> int:
    """Add ``delta`` to the integer value (absent: 0); the new value. Keeps any TTL."""
    check_text(op, group=group, key=key)
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError(f"{op}: delta must be int, not {type(delta).__name__}")
    delta = int(delta)

    def decide(value: str | None, expires: int | None, now: int) -> Decision[int]:
        number = delta
        if value is not None:
            if _INTEGER.fullmatch(value) is None:
                raise ValueError(
                    f"{describe(op, group, key)}: the value {value[:60]!r} is not a base-10 "
                    "integer"
                )
            if len(value) > _MAX_DIGITS + 1:  # the sign is not a digit
                number = _LIMIT
            else:
                number += int(value)
        if not -_LIMIT < number < _LIMIT:
            raise ValueError(
                f"{describe(op, group, key)}: the value or result has more than {_MAX_DIGITS} "
                "digits (Python's int/str conversion limit)"
            )
        return Change(group, key, str(number), expires), False, EventType.SET, number

    return _step(core, op, group, key, guard, decide)


def add(
    core: Core, op: str, group: str, key: str, value: str, ttl: TTL | None,
    guard: QuotaGuard | None,
) -> bool:
    """Write only when there is no live entry; True when it wrote."""
    check_text(op, group=group, key=key, value=value)
    new_expires = None if ttl is None else expiry_ms(op, ttl, now_ms())

    def decide(current: str | None, expires: int | None, now: int) -> Decision[bool]:
        if current is not None:
            return None, False, None, False
        return Change(group, key, value, new_expires), False, EventType.SET, True

    return _step(core, op, group, key, guard, decide)


def compare_and_set(
    core: Core, op: str, group: str, key: str, expected: str | None, value: str,
    ttl: TTL | None, guard: QuotaGuard | None,
) -> bool:
    """Write only when the live value equals ``expected`` (``None``: when there is none)."""
    check_text(op, group=group, key=key, value=value)
    if expected is not None:
        check_text(op, expected=expected)
    new_expires = None if ttl is None else expiry_ms(op, ttl, now_ms())

    def decide(current: str | None, expires: int | None, now: int) -> Decision[bool]:
        if current != expected:
            return None, False, None, False
        return Change(group, key, value, new_expires), False, EventType.SET, True

    return _step(core, op, group, key, guard, decide)


def pop(
    core: Core, op: str, group: str, key: str, default: object, guard: QuotaGuard | None
) -> object:
    """Remove the live entry and return its value; ``default`` (or NotFoundError) when none."""
    check_text(op, group=group, key=key)

    def decide(value: str | None, expires: int | None, now: int) -> Decision[str | None]:
        if value is None:
            return None, False, None, None
        return Change(group, key, None, None), False, EventType.DELETE, value

    found = _step(core, op, group, key, guard, decide)
    if found is not None:
        return found
    if default is UNSET:
        raise NotFoundError.at(op, "not found", group, key)
    return default


def touch(
    core: Core, op: str, group: str, key: str, ttl: TTL | None, guard: QuotaGuard | None
) -> bool:
    """Give a live entry a new expiry (``None``: none) without changing its value."""
    check_text(op, group=group, key=key)
    new_expires = None if ttl is None else expiry_ms(op, ttl, now_ms())

    def decide(value: str | None, expires: int | None, now: int) -> Decision[bool]:
        if value is None:
            return None, False, None, False
        # The change carries the value only so the quota ledger knows the entry's size.
        return Change(group, key, value, new_expires), True, None, True

    return _step(core, op, group, key, guard, decide)


def ttl(core: Core, op: str, group: str, key: str) -> float | None:
    """Seconds until the live entry expires; ``None`` when it never does."""
    check_text(op, group=group, key=key)
    core.ready(op)
    try:
        row = core.engine.get(group, key)
    except DatabaseError as exc:
        raise core.failure(op, exc, group, key) from exc.__cause__
    now = now_ms()
    value, expires = live_row(op, group, key, row, now)
    if value is None:
        core.ready(op)
        raise NotFoundError.at(op, "not found", group, key)
    return None if expires is None else (expires - now) / 1000
