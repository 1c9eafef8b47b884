"""Connections of the PostgreSQL engine: a pool, each thread's transaction, the write lock.

Threads: calls from different threads run concurrently, each on a connection of its own. A
call outside a transaction borrows an idle connection and gives it back when it returns; a
transaction keeps one connection, bound to its thread, from ``begin()`` to the end of its
outermost level, and other threads' calls never wait for it. The connections come from a
``psycopg_pool.ConnectionPool`` (which opens, replaces and limits them); the engine keeps the
ones it has borrowed in a free list, because taking one from the pool costs several times a
round trip to a local server, on every call.

``lock`` is an RLock for writes outside a transaction (so a write and the publication of its
events are one step in commit order), and free inside the calling thread's transaction: such a
write's events are only staged, and a thread holding the lock while the server makes it wait
for a row another thread's transaction holds would stop that transaction from going on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import psycopg.errors
import psycopg_pool
from psycopg import pq

from . import DatabaseError
from .postgres_errors import pool_error, reason

__all__ = (
    "READ_ONLY",
    "Connections",
    "ThreadState",
    "WriteLock",
    "changed",
    "every",
    "nothing",
    "one",
)

READ_ONLY = "the store is read-only (opened with readonly=True)"
_POOL_SIZE = 16  # connections at most: enough for the threads of one service process


class _Slot:
    """A borrowed connection and the cursor every statement on it runs through."""

    __slots__ = ("conn", "cur")

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.cur = conn.cursor()


class ThreadState(threading.local):
    """Per-thread transaction state (class attributes are each thread's starting values)."""

    slot: _Slot | None = None  # the connection of this thread's open transaction
    depth = 0
    poisoned_at = 0  # the level a failure poisoned (0: none)
    poison: DatabaseError | None = None
    held: list[bool] | None = None  # WriteLock: whether each acquire took the real lock
    #: the namespaces this thread's transaction holds the quota lock of, each with the change
    #: token read when it was taken; dropped by any rollback, since a savepoint rolled back
    #: may have taken the lock or its settings with it
    locked: dict[str, object] | None = None


class WriteLock:
    """``engine.lock`` on PostgreSQL: an RLock, except inside the calling thread's transaction
    (see the module docstring)."""

    __slots__ = ("_lock", "state")

    def __init__(self, state: ThreadState) -> None:
        self._lock = threading.RLock()
        self.state = state

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        state = self.state
        held = state.held
        if held is None:
            held = state.held = []
        if state.depth:
            held.append(False)
            return True
        if not self._lock.acquire(blocking, timeout):
            return False
        held.append(True)
        return True

    def release(self) -> None:
        held = self.state.held
        if not held:
            raise RuntimeError("cannot release un-acquired lock")
        if held.pop():
            self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class Connections:
    """The connections of one engine, and each thread's transaction on one of them."""

    def __init__(
        self,
        first: psycopg.Connection[Any],
        kwargs: dict[str, Any],
        *,
        target: str,
        busy: float,
        statement_timeout: float,
        wait: float,
        readonly: bool,
    ) -> None:
        self.readonly = readonly
        self.state = ThreadState()
        self.lock = WriteLock(self.state)
        self._closed = False
        self._busy = busy
        self.statement_timeout = statement_timeout
        self._wait = wait  # longest wait for a connection from the pool
        self._first = first
        self._idle: list[_Slot] = [_Slot(first)]
        self._pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            "",
            kwargs=kwargs,
            min_size=0,  # connections are opened when threads need more than the first
            max_size=_POOL_SIZE - 1,
            open=False,
            name=f"gostore {target}",
            timeout=wait,
            reconnect_timeout=max(60.0, 10 * wait),
        )
        self._pool.open(wait=False)

    # -- connections ----------------------------------------------------------------------------
    def _borrow(self) -> _Slot:
        """A connection of this engine's own: an idle one, else a new one from the pool."""
        try:
            return self._idle.pop()
        except IndexError:
            pass
        if self._closed:
            raise DatabaseError("the database is closed")
        try:
            conn = self._pool.getconn()
        except (psycopg_pool.PoolClosed, psycopg_pool.PoolTimeout) as exc:
            raise pool_error(exc, self._wait) from exc
        return _Slot(conn)

    def take(self) -> psycopg.Connection[Any]:
        """A connection for the caller to keep for as long as it likes (a LISTENing one, say),
        until it hands it to :meth:`release`; statements of this engine never run on it."""
        return self._borrow().conn

    def release(self, conn: psycopg.Connection[Any]) -> None:
        """Give back a connection from :meth:`take`, open or closed (the pool replaces it)."""
        self._put(conn)

    def _give_back(self, slot: _Slot) -> None:
        """Return a connection after a failure: keep it only if it is idle and healthy."""
        conn = slot.conn
        if (
            not self._closed
            and not conn.closed
            and conn.info.transaction_status == pq.TransactionStatus.IDLE
        ):
            self._idle.append(slot)
            return
        lost = conn.closed or conn.broken
        self._put(conn)
        if lost:
            self._drop_idle()

    def _put(self, conn: psycopg.Connection[Any]) -> None:
        if conn is self._first:  # not the pool's: it is closed instead, and not replaced
            conn.close()
            return
        try:
            self._pool.putconn(conn)
        except Exception:  # a pool that is closing: the connection just goes
            conn.close()

    def _drop_idle(self) -> None:
        """One connection was lost, so the server may have restarted: every idle connection
        is suspect. Close ours and let the pool replace them, and check the pool's own."""
        while True:
            try:
                slot = self._idle.pop()
            except IndexError:
                break
            slot.conn.close()
            self._put(slot.conn)
        if not self._closed:
            try:
                self._pool.check()
            except Exception:  # checking is a courtesy; the next call reports the failure
                pass

    def _fail(self, exc: psycopg.Error) -> DatabaseError:
        """Map ``exc``; inside this thread's transaction, poison it (see the engine protocol)."""
        readonly = self.readonly and isinstance(exc, psycopg.errors.ReadOnlySqlTransaction)
        error = DatabaseError(
            READ_ONLY if readonly else reason(exc, self._busy, self.statement_timeout),
            busy=isinstance(
                exc,
                (
                    psycopg.errors.LockNotAvailable,
                    psycopg.errors.DeadlockDetected,
                    psycopg.errors.SerializationFailure,
                ),
            ),
        )
        state = self.state
        if state.depth and not state.poisoned_at:
            slot = state.slot
            lost = slot is None or slot.conn.closed or slot.conn.broken
            state.poisoned_at = 1 if lost else state.depth
            state.poison = error
        return error

    def _refuse(self, state: ThreadState) -> Any:
        poison = state.poison
        raise DatabaseError(
            "the transaction failed earlier and will be rolled back "
            f"(first failure: {poison.reason if poison else 'unknown'}); "
            "leave the transaction block"
        )

    def run(
        self,
        statement: str,
        args: tuple[Any, ...],
        fetch: Callable[[psycopg.Cursor[Any]], Any],
        *,
        retry: bool = False,
    ) -> Any:
        """Run one statement in this thread's transaction, or on a borrowed connection.
        ``retry``: a read that found its connection lost runs once more on a fresh one."""
        state = self.state
        slot = state.slot
        if slot is not None:
            if state.poisoned_at:
                self._refuse(state)
            try:
                slot.cur.execute(statement, args, binary=True)
                return fetch(slot.cur)
            except psycopg.Error as exc:
                raise self._fail(exc) from exc
        while True:
            slot = self._borrow()
            try:
                slot.cur.execute(statement, args, binary=True)
                result = fetch(slot.cur)
            except psycopg.Error as exc:
                lost = slot.conn.closed or slot.conn.broken
                self._give_back(slot)
                if retry and lost and isinstance(exc, psycopg.OperationalError):
                    retry = False
                    continue
                raise self._fail(exc) from exc
            except BaseException:
                self._give_back(slot)
                raise
            self._idle.append(slot)
            return result

    def row(self, statement: str, args: tuple[Any, ...]) -> Any:
        """``run(statement, args, one, retry=True)``, inlined: the hot path of a get."""
        slot = self.state.slot
        if slot is not None:
            return self.run(statement, args, one)
        idle = self._idle
        try:
            slot = idle.pop()
        except IndexError:
            slot = self._borrow()
        try:
            cur = slot.cur
            cur.execute(statement, args, binary=True)
            found = cur.fetchone()
        except psycopg.Error as exc:
            lost = slot.conn.closed or slot.conn.broken
            self._give_back(slot)
            if not (lost and isinstance(exc, psycopg.OperationalError)):
                raise self._fail(exc) from exc
            return self.run(statement, args, one)  # once more, on a fresh connection
        idle.append(slot)
        return found

    def stream(self, statement: str, args: tuple[Any, ...], step: int) -> Iterator[Any]:
        """The rows of one statement, one snapshot read ``step`` rows at a time through a
        server-side cursor, inside this thread's transaction or a read-only one of its own."""
        state = self.state
        own = state.slot is None
        if own:
            self.begin()
        try:
            slot = state.slot
            assert slot is not None
            if state.poisoned_at:
                self._refuse(state)
            try:
                with slot.conn.cursor(name="gostore_dump", binary=True) as cursor:
                    cursor.itersize = step
                    cursor.execute(statement, args)
                    yield from cursor
            except psycopg.Error as exc:
                raise self._fail(exc) from exc
        except BaseException:
            if own:
                self.rollback()
            raise
        if own:
            self.commit()

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._put(self._idle.pop().conn)
        self._pool.close(timeout=1.0)

    def abandon(self) -> None:
        # NOTE: never close the parent's connections from a child: closing one sends the
        # server a goodbye on a socket the parent still uses. Keep them referenced and refuse.
        _INHERITED.append((self._pool, self._idle, self.state.slot))
        self._closed = True
        self._idle = []
        self.state = ThreadState()
        self.lock = WriteLock(self.state)
        self._pool = _NoPool()  # type: ignore[assignment]

    # -- transactions ---------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return self.state.depth

    def begin(self) -> None:
        state = self.state
        if state.depth == 0:
            slot = self._borrow()
            try:
                slot.cur.execute("BEGIN", prepare=False)
            except psycopg.Error as exc:
                self._give_back(slot)
                raise DatabaseError(reason(exc, self._busy, self.statement_timeout)) from exc
            except BaseException:
                self._give_back(slot)
                raise
            state.slot = slot
            state.locked = None
        else:
            if state.poisoned_at:
                self._refuse(state)
            current = state.slot
            assert current is not None
            try:
                current.cur.execute(f"SAVEPOINT gostore_{state.depth}", prepare=False)
            except psycopg.Error as exc:
                raise self._fail(exc) from exc
        state.depth += 1

    def commit(self) -> None:
        state = self.state
        slot = state.slot
        assert slot is not None
        level = state.depth
        if not state.poisoned_at and (
            slot.conn.info.transaction_status != pq.TransactionStatus.INTRANS
        ):
            # The server ended or aborted the transaction without an error reaching us.
            state.poisoned_at = 1
            state.poison = DatabaseError("the server ended the transaction")
        if state.poisoned_at:
            poison = state.poison
            self.rollback()
            raise DatabaseError(
                "the transaction was rolled back because a statement in it failed"
                + (f" ({poison.reason})" if poison is not None else "")
            )
        try:
            if level > 1:
                slot.cur.execute(f"RELEASE SAVEPOINT gostore_{level - 1}", prepare=False)
            else:
                slot.cur.execute("COMMIT", prepare=False)
        except psycopg.Error as exc:
            error = self._fail(exc)
            self.rollback()
            raise error from exc
        state.depth = level - 1
        if level == 1:
            state.slot = None
            state.locked = None
            self._idle.append(slot)

    def rollback(self) -> None:
        state = self.state
        slot = state.slot
        level = state.depth
        try:
            if slot is not None and not slot.conn.closed:
                if level > 1 and state.poisoned_at != 1:
                    slot.cur.execute(f"ROLLBACK TO SAVEPOINT gostore_{level - 1}", prepare=False)
                    slot.cur.execute(f"RELEASE SAVEPOINT gostore_{level - 1}", prepare=False)
                elif level == 1:
                    slot.cur.execute("ROLLBACK", prepare=False)
        except psycopg.Error:
            # The level cannot be undone on its own: the whole transaction must go (a lost
            # connection has ended it on the server already).
            state.poisoned_at = 1
        finally:
            state.depth = level - 1
            state.locked = None
            if state.poisoned_at >= level:  # the failed level is undone: usable again
                state.poisoned_at = 0
                state.poison = None
            if level == 1:
                state.slot = None
                if slot is not None:
                    self._give_back(slot)


class _NoPool:
    """The pool of an engine abandoned after fork(): every use refuses."""

    def getconn(self, timeout: float | None = None) -> Any:
        raise psycopg_pool.PoolClosed("the pool belongs to the parent process")

    def putconn(self, conn: Any) -> None:
        """Connections of the parent stay open (see ``PostgresEngine.abandon``)."""

    def check(self) -> None:
        """Nothing to check."""

    def close(self, timeout: float = 0) -> None:
        """Nothing to close."""


_INHERITED: list[object] = []  # pools and connections inherited through fork(), never closed


def one(cur: psycopg.Cursor[Any]) -> Any:
    return cur.fetchone()


def every(cur: psycopg.Cursor[Any]) -> list[Any]:
    return cur.fetchall()


def nothing(cur: psycopg.Cursor[Any]) -> None:
    return None


def changed(cur: psycopg.Cursor[Any]) -> bool:
    return cur.rowcount > 0
