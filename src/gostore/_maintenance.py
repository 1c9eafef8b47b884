"""The maintenance side of :class:`~gostore.Store` (backup, checkpoint, vacuum, integrity check
and statistics), as a base class of it: operating a store, not using it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

from ._types import StoreStats, now_ms
from .engine import DatabaseError
from .errors import StoreError

if TYPE_CHECKING:
    from ._core import Core

__all__ = ("CheckpointMode", "Maintenance")

CheckpointMode = Literal["passive", "full", "restart", "truncate"]


class Maintenance:
    """Operating a store: backup, checkpoint, vacuum, check and stats."""

    if TYPE_CHECKING:
        _core: Core

    # -- maintenance ----------------------------------------------------------------------------
    def _maintain(self, op: str) -> None:
        """Refuse maintenance inside this thread's open transaction (lock held)."""
        self._core.ready(op)
        if self._core.engine.depth:
            raise StoreError.at(op, "cannot run inside an open transaction")

    def backup(self, dest: str | os.PathLike[str]) -> None:
        """Copy the committed contents into the new database file ``dest``, consistently, while
        other threads and processes keep writing (SQLite's online backup). The copy opens as a
        :class:`Store`.

        :raises StoreError: ``dest`` exists or cannot be created (nothing is left behind).
        """
        op = "store.backup"
        if not isinstance(dest, (str, os.PathLike)):
            raise TypeError(f"{op}: dest must be str or os.PathLike, not {type(dest).__name__}")
        with self._core.lock:
            self._maintain(op)
        try:
            self._core.engine.backup(os.fsdecode(os.fspath(dest)))
        except DatabaseError as exc:
            raise self._core.failure(op, exc) from exc.__cause__

    def checkpoint(self, mode: CheckpointMode = "passive") -> tuple[int, int]:
        """Copy the write-ahead log into the database file.

        :param mode: ``"passive"`` (never waits), ``"full"``, ``"restart"`` or ``"truncate"``
            (waits for readers and writers, then resets or empties the log);
            https://www.sqlite.org/pragma.html#pragma_wal_checkpoint
        :returns: ``(frames in the log, frames checkpointed)``; ``(0, 0)`` for ``":memory:"``.
        """
        op = "store.checkpoint"
        if not isinstance(mode, str):
            raise TypeError(f"{op}: mode must be str, not {type(mode).__name__}")
        if mode not in ("passive", "full", "restart", "truncate"):
            raise ValueError(
                f"{op}: mode must be one of 'passive', 'full', 'restart', 'truncate', got {mode!r}"
            )
        with self._core.lock:
            self._maintain(op)
            try:
                return self._core.engine.checkpoint(mode)
            except DatabaseError as exc:
                raise self._core.failure(op, exc) from exc.__cause__

    def vacuum(self) -> None:
        """Rebuild the database file, returning its free pages to the operating system.

        Other threads' writes wait meanwhile (in memory, their reads too); it needs free disk
        space about the size of the file.
        """
        op = "store.vacuum"
        with self._core.lock:
            self._maintain(op)
            try:
                self._core.engine.vacuum()
            except DatabaseError as exc:
                raise self._core.failure(op, exc) from exc.__cause__

    def check(self) -> list[str]:
        """The problems the database's integrity check finds; ``[]`` when it is healthy."""
        op = "store.check"
        self._core.ready(op)
        try:
            return self._core.engine.check()
        except DatabaseError as exc:
            raise self._core.failure(op, exc) from exc.__cause__

    def stats(self) -> StoreStats:
        """Counts and sizes in one pass over the data, reading lengths only (cheap enough for
        a health endpoint).

        >>> from gostore import Store
        >>> with Store() as store:
        ...     store.set("config", "colour", "blue")
        ...     store.stats()
        StoreStats(keys=1, expired=0, groups=1, bytes=10, file_bytes=0, wal_bytes=0)
        """
        op = "store.stats"
        self._core.ready(op)
        try:
            return self._core.engine.stats(now_ms())
        except DatabaseError as exc:
            raise self._core.failure(op, exc) from exc.__cause__
