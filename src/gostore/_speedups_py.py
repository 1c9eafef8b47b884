"""The pure-Python twin of the compiled ``gostore._speedups`` module.

Same names, signatures, results and exceptions as ``_speedups/_speedups.pyx``; the parity
tests run both over the same cases. Only ``_accel`` imports from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from itertools import repeat
from threading import Lock, RLock, get_ident
from typing import Any, TypeVar

_T = TypeVar("_T")

SEPARATOR = b"\xff"  # never occurs in valid UTF-8, so it cannot occur inside a key or value


def _split(
    count: int, keys: bytes | None, values: bytes | None
) -> tuple[list[bytes], list[bytes]] | None:
    if count == 0:
        return [], []
    if keys is None or values is None:
        return None
    key_parts = keys.split(SEPARATOR)
    value_parts = values.split(SEPARATOR)
    if len(key_parts) != count or len(value_parts) != count:
        return None
    return key_parts, value_parts


def decode_group(count: int, keys: bytes | None, values: bytes | None) -> dict[str, str] | None:
    """Decode a group fetched as two 0xFF-joined UTF-8 blobs into ``{key: value}``.

    :param count: how many rows SQLite aggregated.
    :returns: the mapping, or ``None`` when the blobs do not split into ``count`` parts
        (a row holding bytes that are not valid UTF-8); the caller then reads row by row.
    :raises UnicodeDecodeError: a part is not valid UTF-8.

    >>> decode_group(2, b"a\\xffb", b"1\\xff2")
    {'a': '1', 'b': '2'}
    """
    parts = _split(count, keys, values)
    if parts is None:
        return None
    return dict(zip(map(bytes.decode, parts[0]), map(bytes.decode, parts[1]), strict=True))


def decode_pairs(
    count: int, keys: bytes | None, values: bytes | None, pair: Callable[[str, str], _T]
) -> list[_T] | None:
    """Like :func:`decode_group` but keeps row order, as ``[pair(key, value), ...]``.

    A tuple subclass such as KeyValue is built with ``tuple.__new__``, skipping its
    Python-level ``__new__``, exactly as the compiled version fills it in place.
    """
    parts = _split(count, keys, values)
    if parts is None:
        return None
    decoded = zip(map(bytes.decode, parts[0]), map(bytes.decode, parts[1]), strict=True)
    builder: Any = pair  # Any: narrowing to type[tuple] would lose _T
    if isinstance(builder, type) and issubclass(builder, tuple):
        new_tuple: Any = tuple.__new__
        return list(map(new_tuple, repeat(builder), decoded))
    return [pair(key, value) for key, value in decoded]


class WatcherIndex:
    """Finds the watchers matching an event with a few dict lookups, however many exist.

    Watchers are filed by group, then key (either may be ``"*"``); namespace watchers by
    namespace, then key. Buckets are tuples replaced on change, so :meth:`match` never sees a
    half-updated bucket.
    """

    __slots__ = ("_by_group", "_by_namespace")

    def __init__(self) -> None:
        self._by_group: dict[str, dict[str, tuple[Any, ...]]] = {}
        self._by_namespace: dict[str, dict[str, tuple[Any, ...]]] = {}

    def _where(self, watcher: Any) -> tuple[dict[str, dict[str, tuple[Any, ...]]], str, str]:
        if watcher.namespace is not None:
            return self._by_namespace, watcher.namespace, watcher.key
        return self._by_group, watcher.group, watcher.key

    def add(self, watcher: Any) -> None:
        table, outer, inner = self._where(watcher)
        keys = table.setdefault(outer, {})
        keys[inner] = (*keys.get(inner, ()), watcher)

    def remove(self, watcher: Any) -> None:
        table, outer, inner = self._where(watcher)
        keys = table.get(outer)
        if keys is None:
            return
        bucket = tuple(w for w in keys.get(inner, ()) if w is not watcher)
        if bucket:
            keys[inner] = bucket
        else:
            keys.pop(inner, None)
            if not keys:
                del table[outer]

    @staticmethod
    def _collect(
        found: list[Any] | None,
        keys: dict[str, tuple[Any, ...]] | None,
        key: str,
        whole_group: bool,
    ) -> list[Any] | None:
        if keys is None:
            return found
        if not whole_group and key != "*":
            bucket = keys.get(key)
            if bucket is not None:
                found = [*found, *bucket] if found else list(bucket)
        bucket = keys.get("*")
        if bucket is not None:
            found = [*found, *bucket] if found else list(bucket)
        return found

    def match(self, group: str, key: str, whole_group: bool) -> Sequence[Any]:
        """The watchers an event on ``(group, key)`` reaches, each once (``()`` when none).

        :param whole_group: a DELETE_GROUP event, which reaches only watchers whose key is "*".
        """
        found: list[Any] | None = None
        by_group = self._by_group
        if by_group:
            found = self._collect(found, by_group.get(group), key, whole_group)
            if group != "*":
                found = self._collect(found, by_group.get("*"), key, whole_group)
        by_namespace = self._by_namespace
        if by_namespace:
            namespace, colon, _ = group.partition(":")
            if colon:
                found = self._collect(found, by_namespace.get(namespace), key, whole_group)
        return () if found is None else found


def _first_row(cursor: Any, rows: int) -> Any:
    """What a statement's cursor gives for ``rows`` (see :class:`BoundStatement`)."""
    row = None
    if rows:
        for row in cursor:  # noqa: B007
            break
        if rows == 2 and row is not None:
            for _ in cursor:
                pass
    return row


class BoundStatement:
    """One SQL statement as a single call: ``stmt(*args)`` runs ``execute(sql, args)`` (under
    ``lock`` when one is given) and returns the first row or ``None``.

    ``rows`` picks what is read: 0 nothing (a write), 1 the first row, 2 the first row and then
    the statement run to its end (on a file, an unfinished SELECT pins a WAL snapshot).
    An exception that is an instance of ``errors`` is replaced by ``on_error(exc)``, raised from
    it. ``execute`` may be swapped at any time (a poisoned transaction, a closed store).
    """

    __slots__ = ("_acquire", "_errors", "_on_error", "_release", "_rows", "_sql", "execute")

    def __init__(
        self,
        execute: Callable[[str, tuple[Any, ...]], Any],
        sql: str,
        rows: int,
        errors: type[BaseException] | tuple[type[BaseException], ...],
        on_error: Callable[[BaseException], BaseException],
        lock: Any = None,
    ) -> None:
        self.execute = execute
        self._sql = sql
        self._rows = rows
        self._errors = errors
        self._on_error = on_error
        self._acquire = None if lock is None else lock.acquire
        self._release = None if lock is None else lock.release

    def __call__(self, *args: Any) -> Any:
        if self._acquire is not None:
            self._acquire()
        try:
            row = _first_row(self.execute(self._sql, args), self._rows)
        except self._errors as exc:
            raise self._on_error(exc) from exc
        finally:
            if self._release is not None:
                self._release()
        return row


class PooledRead:
    """A read statement as a single call on a pool of reader connections: ``stmt(*args)``
    runs ``sql`` on an idle reader cursor (taken from ``idle``, or from ``take()`` when none is
    idle) and returns the first row or ``None``, reading the statement to its end so that no
    snapshot stays open.

    A thread whose ident is ``owner`` (the thread with an open write transaction) calls
    ``writer(*args)`` instead, so it sees its own writes; so does every thread when ``take()``
    returns ``None`` (no reader could be opened). After use the cursor goes back to ``idle``;
    when ``waiting[0]`` is non-zero, ``notify()`` is called as well.
    """

    __slots__ = (
        "_errors", "_idle", "_notify", "_on_error", "_sql", "_take", "_waiting", "_writer", "owner"
    )

    def __init__(
        self,
        writer: Callable[..., Any],
        sql: str,
        idle: list[Any],
        take: Callable[[], Any],
        notify: Callable[[], object],
        waiting: list[int],
        errors: type[BaseException] | tuple[type[BaseException], ...],
        on_error: Callable[[BaseException], BaseException],
    ) -> None:
        self._writer = writer
        self._sql = sql
        self._idle = idle
        self._take = take
        self._notify = notify
        self._waiting = waiting
        self._errors = errors
        self._on_error = on_error
        self.owner = 0

    def __call__(self, *args: Any) -> Any:
        owner = self.owner
        if owner and owner == get_ident():
            return self._writer(*args)
        try:
            cursor = self._idle.pop()  # atomic: no other thread can take the same cursor
        except IndexError:
            cursor = self._take()
            if cursor is None:
                return self._writer(*args)
        row = None
        try:
            for row in cursor.execute(self._sql, args):  # noqa: B007
                break
            if row is not None:
                for _ in cursor:
                    pass
        except self._errors as exc:
            raise self._on_error(exc) from exc
        finally:
            self._idle.append(cursor)
            if self._waiting[0]:
                self._notify()
        return row


# A gated statement that found the connection busy in another thread for all of the driver's
# own waiting (APSW waits about a third of a second with the GIL released, then raises) tries
# again this many times before the failure is raised.
_BUSY_RETRIES = 100


class Gate:
    """Lets single statements run on a shared connection without the store's lock, beside
    each other, until someone shuts it.

    A statement that passes (:meth:`enter`, or a :class:`GatedStatement`) counts itself in
    flight until it ends. :meth:`shut` closes the gate to every statement, or to writes only,
    and returns once the statements in flight have ended, so the caller then has the
    connection to itself; :meth:`reopen` undoes one :meth:`shut`. Shuts nest (a count).

    NOTE: a statement counts itself first and tests the gate second; :meth:`shut` shuts first
    and counts second. Under the GIL one of the two sees the other (list appends and pops are
    atomic; ``+= 1`` on an attribute is not, hence the list, and the mutex for the shuts).
    """

    __slots__ = ("_flight", "_mutex", "listener", "shut_all", "shut_writes")

    def __init__(self) -> None:
        self.shut_all = 0
        self.shut_writes = 0
        #: who may want a write's event (the store's event hub), or None: a write passes only
        #: while ``listener.active`` is false or no watcher or callback wants its key
        self.listener: Any = None
        self._flight: list[None] = []
        self._mutex = Lock()

    @property
    def inflight(self) -> int:
        """Statements running past the gate now."""
        return len(self._flight)

    def enter(self, write: bool, group: Any = None, key: Any = None) -> bool:
        """Count a statement in flight and return True, or False when the gate is shut to it
        or, for a write of ``group``/``key``, someone wants its event (then nothing is
        counted: run it under the lock instead)."""
        self._flight.append(None)
        if self.shut_all or (write and (self.shut_writes or self._wanted(group, key))):
            self._flight.pop()
            return False
        return True

    def _wanted(self, group: Any, key: Any) -> bool:
        listener = self.listener
        if listener is None or not listener.active:
            return False
        return bool(listener.callbacks) or bool(listener.match(group, key, False))

    def leave(self) -> None:
        """The statement counted by :meth:`enter` has ended."""
        self._flight.pop()

    def shut(self, writes_only: bool = False) -> None:
        """Shut the gate (to writes only, or to all) and wait for the statements in flight."""
        with self._mutex:
            if writes_only:
                self.shut_writes += 1
            else:
                self.shut_all += 1
        spins = 0
        while self._flight:  # statements last microseconds: yield the GIL to them
            spins += 1
            time.sleep(0 if spins < 100 else 0.0001)

    def reopen(self, writes_only: bool = False) -> None:
        """Undo one :meth:`shut`."""
        with self._mutex:
            if writes_only:
                self.shut_writes -= 1
            else:
                self.shut_all -= 1


class GateLock:
    """A reentrant lock that shuts ``gate`` while it is held: whoever holds it has the
    connection to itself, and gated statements run only while nobody holds it. Released by
    the thread that holds it only (as an ``RLock``)."""

    __slots__ = ("_acquire", "_depth", "_gate", "_release")

    def __init__(self, gate: Gate) -> None:
        lock = RLock()
        self._acquire = lock.acquire
        self._release = lock.release
        self._gate = gate
        self._depth = 0  # changed only by the holder, under the lock

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not self._acquire(blocking, timeout):
            return False
        self._depth += 1
        if self._depth == 1:
            try:
                self._gate.shut()
            except BaseException:
                self._depth -= 1
                self._release()
                raise
        return True

    def release(self) -> None:
        if self._depth == 1:
            self._gate.reopen()
        self._depth -= 1
        self._release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class GatedStatement:
    """One SQL statement as a single call that runs without the store's lock while ``gate``
    is open: ``stmt(*args)`` runs ``sql`` on a cursor of its own (taken from ``cursors``, or
    made by ``new_cursor()``) and returns what :class:`BoundStatement` would (``True`` for a
    write). When the gate is shut to it (to everything, or to writes when ``write``), or a
    write's ``(group, key, ...)`` is wanted by the gate's listener, it returns
    ``blocked(*args)`` instead. ``busy`` is the driver's exception for a connection
    busy in another thread, raised before the statement ran: it is run again.
    """

    __slots__ = (
        "_blocked", "_busy", "_cursors", "_errors", "_gate", "_new_cursor", "_on_error", "_rows",
        "_sql", "_write",
    )

    def __init__(
        self,
        gate: Gate,
        write: bool,
        cursors: list[Any],
        new_cursor: Callable[[], Any],
        sql: str,
        rows: int,
        errors: type[BaseException] | tuple[type[BaseException], ...],
        on_error: Callable[[BaseException], BaseException],
        blocked: Callable[..., Any],
        busy: type[BaseException] | tuple[type[BaseException], ...],
    ) -> None:
        self._gate = gate
        self._write = write
        self._cursors = cursors
        self._new_cursor = new_cursor
        self._sql = sql
        self._rows = rows
        self._errors = errors
        self._on_error = on_error
        self._blocked = blocked
        self._busy = busy

    def __call__(self, *args: Any) -> Any:
        gate = self._gate
        if not gate.enter(self._write, *args[:2]):
            return self._blocked(*args)
        try:
            try:
                cursor = self._cursors.pop()  # atomic: no other thread takes the same cursor
            except IndexError:
                cursor = self._new_cursor()
        except BaseException:
            gate.leave()
            raise
        try:
            tries = 0
            while True:
                try:
                    rows = cursor.execute(self._sql, args)
                    break
                except self._busy:
                    tries += 1
                    if tries > _BUSY_RETRIES:
                        raise
            row = _first_row(rows, self._rows) if self._rows else True
        except self._errors as exc:
            raise self._on_error(exc) from exc
        finally:
            self._cursors.append(cursor)
            gate.leave()
        return row
