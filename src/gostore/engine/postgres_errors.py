"""How the PostgreSQL engine words a failure: the driver's errors in plain words, and URLs
without their password."""

from __future__ import annotations

import urllib.parse

import psycopg
import psycopg.errors
import psycopg_pool

from . import DatabaseError

__all__ = ("first_line", "pool_error", "reason", "redact")


def pool_error(
    exc: psycopg_pool.PoolClosed | psycopg_pool.PoolTimeout, wait: float
) -> DatabaseError:
    """The failure to report when a pool gives no connection."""
    if isinstance(exc, psycopg_pool.PoolClosed):
        return DatabaseError("the database is closed")
    return DatabaseError(
        f"cannot connect to the server within {wait:g} s (is it running and reachable?)"
    )


def redact(url: str) -> str:
    """``url`` without its password, for messages and ``Store.path``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url.split("@")[-1]
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def reason(exc: BaseException, busy_timeout: float = 0, statement_timeout: float = 0) -> str:
    """A plain-words reason for a psycopg failure (the psycopg exception stays chained)."""
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return (
            "the data is locked by another connection "
            f"after waiting {busy_timeout:g} s (PostgreSQL lock_timeout)"
        )
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return f"the statement ran longer than {statement_timeout:g} s and was cancelled"
    if isinstance(exc, psycopg.errors.DeadlockDetected):
        return "a deadlock with another connection was detected; the transaction was aborted"
    if isinstance(exc, psycopg.errors.SerializationFailure):
        return "a concurrent update conflicted with this transaction"
    if isinstance(exc, psycopg.errors.DiskFull):
        return "the server's disk is full"
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return "the server is read-only"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return f"permission denied ({first_line(exc)})"
    if isinstance(exc, psycopg.errors.ProgramLimitExceeded):
        return f"a value is larger than PostgreSQL allows ({first_line(exc)})"
    if isinstance(exc, psycopg.OperationalError):
        return f"the connection to the server failed: {first_line(exc)}"
    sqlstate = getattr(exc, "sqlstate", None)
    code = f" {sqlstate}" if sqlstate else ""
    return f"PostgreSQL error{code}: {first_line(exc)}"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
