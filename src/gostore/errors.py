"""The gostore error hierarchy.

Every error names the operation first, then the group/key, then the reason, as go-store's
``core.E("store.Get", ...)`` does. SQLite failures are wrapped in :class:`StoreError` with the
APSW exception chained as ``__cause__``.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = (
    "ChangesExpiredError",
    "InvalidNamespaceError",
    "NotFoundError",
    "QuotaExceededError",
    "StoreClosedError",
    "StoreError",
    "TemplateError",
)

_E = TypeVar("_E", bound="StoreError")

_SHOWN = 60  # longest group/key shown in a message; a 10K-character key would drown it


def _show(text: str) -> str:
    shown = repr(text[:_SHOWN])
    return shown if len(text) <= _SHOWN else shown + f"...({len(text)} chars)"


def describe(op: str, group: str | None = None, key: str | None = None) -> str:
    """``"store.get group='config' key='colour'"``: the operation and what it worked on."""
    parts = [op]
    if group is not None:
        parts.append(f"group={_show(group)}")
    if key is not None:
        parts.append(f"key={_show(key)}")
    return " ".join(parts)


class StoreError(Exception):
    """Base of every gostore error.

    :ivar op: the operation that failed, such as ``"store.get"``.
    :ivar group: the group it worked on, or ``None``.
    :ivar key: the key it worked on, or ``None``.
    """

    op: str
    group: str | None
    key: str | None

    def __init__(
        self, message: str, *, op: str = "", group: str | None = None, key: str | None = None
    ) -> None:
        super().__init__(message)
        self.op = op
        self.group = group
        self.key = key

    @classmethod
    def at(
        cls: type[_E], op: str, reason: str, group: str | None = None, key: str | None = None
    ) -> _E:
        """Build ``"<op> group=... key=...: <reason>"`` with the fields filled in."""
        return cls(f"{describe(op, group, key)}: {reason}", op=op, group=group, key=key)

    def __str__(self) -> str:
        # NOTE: KeyError.__str__ quotes its message; every gostore error prints it plainly.
        return str(self.args[0]) if self.args else ""


class NotFoundError(StoreError, KeyError):
    """The key is absent or has expired. Also a :class:`KeyError`."""


class QuotaExceededError(StoreError):
    """A write would take a namespace over one of its quota limits; nothing was written."""


class StoreClosedError(StoreError):
    """The store was closed; open a new one."""


class TemplateError(StoreError, ValueError):
    """A template failed to parse or render, or used a missing variable under ``strict=True``."""


class InvalidNamespaceError(StoreError, ValueError):
    """A namespace that does not match ``^[a-zA-Z0-9-]+$``."""


class ChangesExpiredError(StoreError):
    """The changes asked for are older than the change feed keeps (``change_retention``):
    read the current data again instead of resuming, and continue from ``last_seq()``."""
