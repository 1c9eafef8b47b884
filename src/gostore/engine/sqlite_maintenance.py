"""The SQLite engine's maintenance: stats, integrity check, vacuum, checkpoint and backup."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import apsw

from .._types import StoreStats
from . import DatabaseError
from . import sqlite_schema as sql

__all__ = ("Maintenance",)

READ_ONLY = "the store is read-only (opened with readonly=True)"


class Maintenance:
    """The maintenance of :class:`~gostore.engine.sqlite.SQLiteEngine`."""

    if TYPE_CHECKING:
        lock: Any
        readonly: bool
        _conn: apsw.Connection
        _memory: bool
        _files: tuple[str, str]
        _free: list[apsw.Cursor]
        _busy_timeout: float
        _execute: Any

        def _fetch(self, statement: str, args: tuple[Any, ...]) -> list[Any]: ...

        def _fail(self, exc: apsw.Error) -> DatabaseError: ...

        def _reason(self, exc: BaseException) -> str: ...

    def stats(self, now: int) -> StoreStats:
        keys, expired, groups, size = self._fetch(sql.STATS, (now,))[0]
        if self._memory:
            return StoreStats(keys, expired, groups, size, 0, 0)
        path, wal = self._files
        return StoreStats(keys, expired, groups, size, _file_size(path), _file_size(wal))

    def check(self) -> list[str]:
        with self.lock:
            try:
                rows = self._execute(sql.INTEGRITY_CHECK).fetchall()
            except (apsw.CorruptError, apsw.NotADBError) as exc:
                return [self._reason(exc)]  # the check itself stopped at the damage
            except apsw.Error as exc:
                raise self._fail(exc) from exc
        problems = [str(row[0]) for row in rows]
        return [] if problems == ["ok"] else problems

    def vacuum(self) -> None:
        if self.readonly:
            raise DatabaseError(READ_ONLY)
        with self.lock:
            # VACUUM refuses to run beside an unfinished statement (in memory, a gated get
            # leaves its statement after the one row): the idle cursors go, and reset theirs.
            self._free.clear()
            self._vacuum()

    def _vacuum(self) -> None:
        try:
            self._execute(sql.VACUUM)
            if not self._memory:
                # NOTE: in WAL mode VACUUM writes the rebuilt pages to the log; the file itself
                # shrinks only when a checkpoint copies them back and truncates it.
                self._execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except apsw.Error as exc:
            raise self._fail(exc) from exc

    def checkpoint(self, mode: str) -> tuple[int, int]:
        if self.readonly:
            raise DatabaseError(READ_ONLY)
        if self._memory:
            return (0, 0)
        try:
            statement = f"PRAGMA wal_checkpoint({mode.upper()})"
            _, frames, done = self._execute(statement).fetchall()[0]
        except apsw.Error as exc:
            raise self._fail(exc) from exc
        return (max(frames, 0), max(done, 0))  # -1: not in WAL mode

    def backup(self, dest: str) -> None:
        try:
            os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            raise DatabaseError(f"{dest!r} already exists; a backup never overwrites") from None
        except OSError as exc:
            raise DatabaseError(f"cannot create {dest!r}: {exc.strerror or exc}") from exc
        try:
            target = apsw.Connection(dest)
            try:
                if self._memory:
                    with self.lock:
                        _copy(self._conn, target)
                else:
                    # NOTE: a connection of its own, so the store's threads keep working while
                    # the copy runs; it reads one snapshot of the committed data, and in WAL
                    # mode other processes keep writing meanwhile.
                    path = self._files[0]
                    source = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
                    try:
                        source.set_busy_handler(sql.BusyWaiter(self._busy_timeout))
                        source.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
                        _copy(source, target)
                    finally:
                        source.close()
            finally:
                target.close()
        except BaseException as exc:
            for leftover in (dest, dest + "-wal", dest + "-shm", dest + "-journal"):
                with contextlib.suppress(OSError):
                    os.remove(leftover)
            if isinstance(exc, apsw.Error):
                reason = sql.failure_reason(exc)
                raise DatabaseError(f"backup to {dest!r} failed: {reason}") from exc
            raise


def _copy(source: apsw.Connection, target: apsw.Connection) -> None:
    # Every page in one step: the copy is one read snapshot of the source. Copying in pieces
    # would restart from the beginning each time another connection commits in between.
    with target.backup("main", source, "main") as backup:
        backup.step(-1)
        if not backup.done:  # pragma: no cover - step(-1) copies everything or raises
            raise apsw.BusyError("the backup did not finish")


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # no WAL file at the moment, or the file was removed
        return 0
