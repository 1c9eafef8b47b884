"""What every command shares: exit codes, the error to report, opening the database, and the
shell-friendly text for a store error."""

from __future__ import annotations

import argparse
import os

from ..engine import is_url
from ..errors import NotFoundError, StoreError, describe
from ..store import Store

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_STORE = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C

DEFAULT_DB = "./gostore.db"
ENV_DB = "GOSTORE_DB"

_SHOWN = 60  # longest group/key shown in an error; a 10K-character key would drown the line


class CliError(Exception):
    """A failure to report as ``gostore: error: <message>`` with exit ``code``.

    :ivar details: further lines printed, indented, under the message (import's bad lines).
    """

    def __init__(self, message: str, code: int, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


def open_store(args: argparse.Namespace, *, create: bool = False) -> Store:
    """The store at ``args.db``; a missing file is an error unless ``create``."""
    path: str = args.db
    if not create and path != ":memory:" and not is_url(path) and not os.path.exists(path):
        raise CliError(f"database {path!r} does not exist (set --db or ${ENV_DB})", EXIT_STORE)
    # The CLI runs one command and exits, so no background purge thread.
    return Store(path, purge_interval=0)


def check_text(name: str, text: str) -> str:
    """``text`` from the command line or stdin, refused (exit 2) when it is not valid UTF-8.

    NOTE: Linux hands Python undecodable argument bytes as lone surrogates; saying so here gives
    the user the argument's name rather than the store's internal one.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CliError(
            f"{name} is not valid UTF-8 text (undecodable byte at character {exc.start + 1})",
            EXIT_USAGE,
        ) from None
    return text


def shown(text: str) -> str:
    """A group or key as printed in a message: as typed, shortened when very long."""
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}...({len(text)} chars)"


def where(group: str | None, key: str | None) -> str:
    """``config/colour``, ``group config`` or ``""``: what an error was about."""
    if group is not None and key is not None:
        return f"{shown(group)}/{shown(key)}"
    if group is not None:
        return f"group {shown(group)}"
    return ""


def store_error_text(command: str, exc: StoreError) -> str:
    """What a shell user reads for ``exc``: ``not found: config/nokey``, or
    ``get config/colour: database is locked``, without the store's internal operation name."""
    target = where(exc.group, exc.key)
    if isinstance(exc, NotFoundError):
        return f"not found: {target}" if target else "not found"
    head = f"{command} {target}" if target else command
    return f"{head}: {store_error_reason(exc)}"


def store_error_reason(exc: StoreError) -> str:
    """The reason part of ``"<op> group=... key=...: <reason>"``."""
    text = str(exc)
    if exc.op:
        for prefix in (describe(exc.op, exc.group, exc.key) + ": ", exc.op + ": "):
            if text.startswith(prefix):
                return text[len(prefix) :]
    return text


def plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many
