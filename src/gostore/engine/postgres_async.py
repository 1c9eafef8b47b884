"""The PostgreSQL engine's single-key reads on psycopg's async connections, for an event loop.

``gostore.aio`` runs every call of a store on one worker thread, so that the synchronous core
(locks, quotas, events, transactions) serves asyncio unchanged. On PostgreSQL that would make
a store's reads wait for each other's round trips to the server; a read needs none of the
core, though (no lock, no transaction: reads synchronise themselves, and the server shows
each statement the last committed state). So these reads run on the loop itself, each on a
connection of an ``AsyncConnectionPool`` with the engine's own settings, as many at once as
tasks await them.
"""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg_pool

from . import DatabaseError
from .postgres_errors import pool_error, reason
from .postgres_sql import EXISTS, GET

__all__ = ("AsyncReads", "text_row")

_POOL_SIZE = 16  # connections at most: as the synchronous engine's pool


def text_row(row: tuple[Any, Any] | None) -> tuple[Any, Any] | None:
    """A ``(value, expires)`` row with the value decoded, or left as bytes when it is not
    UTF-8 (the caller names the stored value)."""
    if row is None:
        return None
    value, expires = row
    try:
        return value.decode(), expires
    except UnicodeDecodeError:
        return value, expires


class AsyncReads:
    """``get`` and ``exists`` of :class:`~gostore.engine.postgres.PostgresEngine` as
    coroutines. Made on the loop's thread and used there only; :meth:`close` releases it."""

    def __init__(
        self, kwargs: dict[str, Any], *, target: str, wait: float, statement_timeout: float
    ) -> None:
        self._target = target
        self._wait = wait
        self._statement_timeout = statement_timeout
        self._pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
            "",
            kwargs=kwargs,
            min_size=0,  # opened as tasks need them
            max_size=_POOL_SIZE,
            open=False,
            name=f"gostore async {target}",
            timeout=wait,
            reconnect_timeout=max(60.0, 10 * wait),
        )
        self._opened = False

    async def _run(self, statement: str, args: tuple[Any, ...]) -> Any:
        """The first row of ``statement``, or ``None``."""
        if not self._opened:
            await self._pool.open(wait=False)
            self._opened = True
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(statement, args, binary=True)
                return await cur.fetchone()
        except (psycopg_pool.PoolClosed, psycopg_pool.PoolTimeout) as exc:
            raise pool_error(exc, self._wait) from exc
        except psycopg.Error as exc:
            raise DatabaseError(reason(exc, 0, self._statement_timeout)) from exc

    async def get(self, group: str, key: str) -> tuple[Any, Any] | None:
        """As the engine's ``get``: ``(value, expires)``, the value as bytes when it is not
        UTF-8 (the caller names it), or ``None``."""
        return text_row(await self._run(GET, (group.encode(), key.encode())))

    async def exists(self, group: str, key: str, now: int) -> bool:
        return await self._run(EXISTS, (group.encode(), key.encode(), now)) is not None

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
