"""The ``gostore`` command line: read, write, export and import a database file from a shell.

Usage: ``gostore [--db PATH] [--json] COMMAND ... [--db PATH] [--json]`` (also
``python -m gostore``); the global options go before or after the command.

The database is ``--db PATH``, else the ``GOSTORE_DB`` environment variable, else
``./gostore.db``. Only ``set`` and ``import`` create a missing database file; every other
command reports it as an error, so a mistyped path never leaves an empty file behind.

``export`` writes JSON Lines to stdout, one object per live entry::

    {"group": "config", "key": "colour", "value": "blue", "expires_at": null}

``expires_at`` is the expiry in Unix milliseconds, or ``null`` for no TTL, so TTLs survive a
round trip. ``import FILE`` (``-`` reads stdin) reads the same format in one transaction,
streaming: it checks every line first and, when any is bad, lists them (``line N: reason``, up
to 20) and writes nothing. A line whose ``expires_at`` is already in the past is skipped (it
would be expired, and so invisible, the moment it was stored) and counted in the summary. When
the same group and key appear twice, the later line wins. Output is UTF-8.

Exit codes:

* ``0`` success
* ``1`` not found: ``get`` or ``delete`` of a key that is absent or expired, ``delete-group``
  of a group without keys
* ``2`` bad input: usage errors (argparse's own code), a bad ``--ttl``, text that is not valid
  UTF-8, an unreadable or malformed import file
* ``3`` database error: the database is missing, cannot be opened, read or written
  (:class:`~gostore.StoreError`), or the ``bench`` module cannot be loaded
* ``130`` interrupted (Ctrl-C)

Errors are one line on stderr, ``gostore: error: ...``, in the user's terms (``not found:
config/colour``); only import's list of bad lines adds indented lines below it.

The package: :mod:`.parser` (arguments, help, the one place subcommands are registered),
:mod:`.commands` (the handlers), :mod:`.jsonl` (export and import), :mod:`.output` (formats and
progress), :mod:`.common` (exit codes, errors, opening the database).
"""

from __future__ import annotations

import os
import sys

from ..errors import StoreError
from .commands import system_exit_code
from .common import (
    DEFAULT_DB,
    ENV_DB,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_STORE,
    EXIT_USAGE,
    CliError,
    store_error_text,
)
from .jsonl import LARGE_BYTES as LARGE_BYTES  # re-exported for tests
from .jsonl import LARGE_ROWS as LARGE_ROWS
from .output import silence_stdout, utf8_stdout
from .parser import build_parser as build_parser  # re-exported for documentation tools
from .parser import split_bench
from .parser import version_text as version_text

__all__ = ("main",)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it).

    :param argv: the arguments after the program name; ``sys.argv[1:]`` when ``None``.
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    utf8_stdout()
    own, rest = split_bench(arguments)
    command = "gostore"
    try:
        try:
            args = build_parser().parse_args(own)
        except SystemExit as exc:  # --help and --version print and "exit" successfully
            return system_exit_code(exc.code)
        command = args.command
        args.rest = rest
        if args.db is None:
            args.db = os.environ.get(ENV_DB) or DEFAULT_DB
        code: int = args.handler(args)
        sys.stdout.flush()
        return code
    except CliError as exc:
        return _fail(str(exc), exc.code, exc.details)
    except StoreError as exc:
        code = EXIT_NOT_FOUND if isinstance(exc, KeyError) else EXIT_STORE
        return _fail(store_error_text(command, exc), code)
    except ValueError as exc:  # the store refused an argument
        return _fail(f"{command}: {exc}", EXIT_USAGE)
    except BrokenPipeError:
        # The reader went away (`gostore export | head`): stop quietly, as cat does.
        silence_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)


def _fail(message: str, code: int, details: tuple[str, ...] = ()) -> int:
    # One line per message, whatever it holds.
    lines = [f"gostore: error: {_one_line(message)}"]
    lines += [f"  {_one_line(detail)}" for detail in details]
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
    return code


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")
