"""The atomic operations as :class:`~gostore.Store` methods (a base class of it): each is one
atomic step against every other thread and process, done by the functions above."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, overload

from ._atomic import UNSET, add, compare_and_set, incr, pop, touch, ttl

if TYPE_CHECKING:
    from ._core import TTL, Core

__all__ = ("AtomicMethods",)

D = TypeVar("D")


class AtomicMethods:
    """incr, add, compare_and_set, pop, touch and ttl on :class:`~gostore.Store`."""

    if TYPE_CHECKING:
        _core: Core

    # Each is one atomic step against every other thread and process (see _atomic.py). An
    # expired entry counts as absent, and none of them emits EXPIRE.

    def incr(self, group: str, key: str, delta: int = 1) -> int:
        """Add ``delta`` to the value read as a base-10 integer and store the result; returns it.

        A missing or expired key counts as ``0`` and is created without TTL; an existing TTL is
        kept. Emits ``SET``.

        :raises TypeError: ``delta`` is not an ``int`` (``bool`` included).
        :raises ValueError: the value does not match ``^[+-]?[0-9]+$``; nothing is written.

        >>> from gostore import Store
        >>> with Store() as store:
        ...     store.incr("hits", "home"), store.incr("hits", "home", 10)
        (1, 11)
        """
        return incr(self._core, "store.incr", group, key, delta, None)

    def add(self, group: str, key: str, value: str, ttl: TTL | None = None) -> bool:
        """Write ``value`` only when there is no live entry; True when it wrote (emits ``SET``).

        :param ttl: as :meth:`set_with_ttl`; ``None``: no expiry.
        """
        return add(self._core, "store.add", group, key, value, ttl, None)

    def compare_and_set(
        self, group: str, key: str, expected: str | None, value: str, ttl: TTL | None = None
    ) -> bool:
        """Write ``value`` only when the live value equals ``expected`` (``None``: only when
        there is no live entry); True when it wrote (emits ``SET``).

        :param ttl: as :meth:`set_with_ttl`; ``None`` clears any TTL, as :meth:`set` does.
        """
        op = "store.compare_and_set"
        return compare_and_set(self._core, op, group, key, expected, value, ttl, None)

    @overload
    def pop(self, group: str, key: str) -> str: ...
    @overload
    def pop(self, group: str, key: str, default: D) -> str | D: ...
    def pop(self, group: str, key: str, default: object = UNSET) -> object:
        """Remove the live entry and return its value (emits ``DELETE``).

        :returns: ``default`` when the key is absent or expired, if given.
        :raises NotFoundError: the key is absent or expired and no ``default`` was given.
        """
        return pop(self._core, "store.pop", group, key, default, None)

    def touch(self, group: str, key: str, ttl: TTL | None) -> bool:
        """Give a live entry a new expiry (``None``: none) without changing its value; False
        when it is absent or expired. Emits no event."""
        return touch(self._core, "store.touch", group, key, ttl, None)

    def ttl(self, group: str, key: str) -> float | None:
        """Seconds until the live entry expires, ``None`` when it never does.

        :raises NotFoundError: the key is absent or expired.
        """
        return ttl(self._core, "store.ttl", group, key)
