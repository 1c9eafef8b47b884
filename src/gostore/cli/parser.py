"""The arguments: global options, every subcommand and its options, ``--help`` and
``--version``. All subcommands are registered in :func:`build_parser`, in one place."""

from __future__ import annotations

import argparse
import math
import platform
from collections.abc import Callable
from typing import NoReturn

from .. import __version__
from .._accel import PURE_REQUESTED, SPEEDUPS
from ..engine import sqlite as sqlite_engine
from . import commands, jsonl, operations
from .common import (
    DEFAULT_DB,
    ENV_DB,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_STORE,
    EXIT_USAGE,
    CliError,
)
from .output import FORMATS

Handler = Callable[[argparse.Namespace], int]

#: exit code -> what it means; printed by --help (the README lists the same).
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_NOT_FOUND: "not found (get or delete of an absent or expired key, delete-group of an "
    "empty group)",
    EXIT_USAGE: "bad input or usage",
    EXIT_STORE: "database error (missing, unopenable, locked, not a database, ...)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class _Parser(argparse.ArgumentParser):
    # NOTE: argparse prints the usage and exits from inside parse_args; turning its errors into
    # a CliError keeps them to one line and lets main() return the code instead of exiting.
    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')", EXIT_USAGE)


def _ttl(text: str) -> int | float:
    """``--ttl``: a finite number of seconds greater than zero."""
    try:
        seconds: int | float = int(text)
    except ValueError:
        try:
            seconds = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return seconds


def version_text() -> str:
    """What ``--version`` prints: gostore's version, the speed-up mode in use (and, when pure,
    why) and the SQLite and APSW versions, since a build without a compiler silently installs
    the pure twin and pip hides the build's warning."""
    implementation = platform.python_implementation()
    if SPEEDUPS:
        mode = "compiled (gostore._speedups)"
    elif PURE_REQUESTED:
        mode = "pure Python (forced by GOSTORE_PURE)"
    elif implementation != "CPython":
        mode = f"pure Python (the compiled module is for CPython, this is {implementation})"
    else:
        mode = "pure Python (the compiled module gostore._speedups is not installed)"
    return (
        f"gostore {__version__}\n"
        f"speed-ups: {mode}\n"
        f"{sqlite_engine.versions()}"
    )


def _add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    # NOTE: each subcommand repeats the global options with SUPPRESS as default, so a value given
    # after the command name is kept and one given before it is not overwritten by a default.
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=None if defaults else argparse.SUPPRESS,
        help=f"database file (default: ${ENV_DB} if set, else {DEFAULT_DB})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if defaults else argparse.SUPPRESS,
        help="print JSON for scripts",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation tools and tests)."""
    parser = _Parser(
        prog="gostore",
        description="Work on a gostore (go-store compatible) SQLite key-value database.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    _add_global_options(parser, defaults=True)
    parser.add_argument(
        "--version",
        action="version",
        version=version_text(),
        help="show the version, the speed-up mode (compiled or pure) and the SQLite and APSW "
        "versions, and exit",
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    json_commands: list[str] = []

    def command(
        name: str, handler: Handler, help: str, *, json: bool = True
    ) -> argparse.ArgumentParser:
        """Register subcommand ``name``; ``json``: ``--json`` changes what it prints."""
        sub = subcommands.add_parser(
            name, help=help, description=help, allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_global_options(sub, defaults=False)
        sub.set_defaults(handler=handler)
        if json:
            json_commands.append(name)
        return sub

    # -- every subcommand, in the order --help lists them -------------------------------------
    sub = command("get", commands.cmd_get,
                  "print the value of KEY in GROUP (exit 1 when not found)")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("key", metavar="KEY")

    sub = command("set", commands.cmd_set, "set KEY in GROUP to VALUE")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("key", metavar="KEY")
    sub.add_argument(
        "value", metavar="VALUE",
        help="the value; - reads it from stdin (UTF-8, one trailing newline removed, so "
        "'echo hello | gostore set g k -' stores 'hello'); put -- before a VALUE like -x",
    )
    sub.add_argument("--ttl", type=_ttl, metavar="SECONDS", help="expire after SECONDS (> 0)")

    sub = command("delete", commands.cmd_delete,
                  "delete KEY from GROUP and say so (exit 1 when it was not there)")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("key", metavar="KEY")

    sub = command("delete-group", commands.cmd_delete_group,
                  "delete every key of GROUP and say how many (exit 1 when it had none)")
    sub.add_argument("group", metavar="GROUP")

    sub = command("groups", commands.cmd_groups, "list the groups with a live key, ascending")
    sub.add_argument("prefix", metavar="PREFIX", nargs="?", default="",
                     help="only groups starting with PREFIX (literal, case-sensitive)")

    sub = command("count", commands.cmd_count, "print the number of live keys in GROUP")
    sub.add_argument("group", metavar="GROUP")

    sub = command("all", commands.cmd_all, "print the live entries of GROUP, by key")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument(
        "--format", choices=FORMATS, default=None,
        help="tsv (the default): KEY<TAB>VALUE per line, with backslash, tab, newline and "
        "carriage return escaped as \\\\, \\t, \\n and \\r so every entry is one line; "
        'jsonl: {"key": ..., "value": ...} per line; json: one {KEY: VALUE, ...} object '
        "(the default with --json); csv: RFC 4180 with a key,value header",
    )

    command("purge", commands.cmd_purge, "delete expired entries now and say how many")

    # export's output is JSON Lines whatever --json says.
    command("export", jsonl.cmd_export, "write every live entry to stdout as JSON Lines",
            json=False)

    sub = command("import", jsonl.cmd_import,
                  "read JSON Lines (from export) in one transaction; writes nothing unless "
                  "every line is good")
    sub.add_argument("file", metavar="FILE", help="JSON Lines file, or - for stdin")

    # -- atomic and maintenance commands -------------------------------------------------------
    sub = command("incr", operations.cmd_incr,
                  "add DELTA (default 1) to the integer in KEY and print it")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("key", metavar="KEY")
    sub.add_argument("delta", metavar="DELTA", type=int, nargs="?", default=1,
                     help="an integer, may be negative (put -- before it)")

    sub = command("ttl", operations.cmd_ttl,
                  "print the seconds until KEY expires, or 'none' (exit 1 when not found)")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("key", metavar="KEY")

    sub = command("exists", operations.cmd_exists,
                  "print true and exit 0 when KEY is live, else print false and exit 1")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("key", metavar="KEY")

    sub = command("touch", operations.cmd_touch,
                  "give a live KEY a new expiry, keeping its value (exit 1 when not found)")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("key", metavar="KEY")
    expiry = sub.add_mutually_exclusive_group(required=True)
    expiry.add_argument("--ttl", type=_ttl, metavar="SECONDS", help="expire after SECONDS (> 0)")
    expiry.add_argument("--no-ttl", action="store_true", help="never expire")

    sub = command("backup", operations.cmd_backup,
                  "copy the database into the new file DEST, consistently, while others write")
    sub.add_argument("dest", metavar="DEST")

    command("check", operations.cmd_check,
            "run the database's integrity check (exit 0 when healthy, 3 when not)")
    command("stats", operations.cmd_stats,
            "print keys, expired rows, groups, bytes and file sizes")
    command("vacuum", operations.cmd_vacuum, "rebuild the file, returning free pages to the OS")
    sub = command("checkpoint", operations.cmd_checkpoint,
                  "copy the write-ahead log into the database file")
    sub.add_argument("--mode", choices=("passive", "full", "restart", "truncate"),
                     default="passive", help="SQLite's checkpoint mode (default: passive)")

    # bench takes its own arguments: main() hands everything after the word "bench" to it.
    subcommands.add_parser(
        "bench", help="run the comparison benchmark (arguments go to the benchmark)",
        add_help=False,
    ).set_defaults(handler=commands.cmd_bench)

    parser.epilog = _epilog(json_commands)
    return parser


def _epilog(json_commands: list[str]) -> str:
    codes = "\n".join(f"  {code:<3}  {meaning}" for code, meaning in EXIT_CODES.items())
    return f"""\
global options (--db, --json) go before or after the command: gostore get g k --json

database:
  --db PATH, else ${ENV_DB}, else {DEFAULT_DB}. Only set and import create a missing file.

--json works with: {", ".join(json_commands)}
  (export always writes JSON Lines)

export/import format (JSON Lines, UTF-8), one live entry per line:
  {{"group": "g", "key": "k", "value": "v", "expires_at": 1767225600000}}
  expires_at is Unix milliseconds or null. import checks every line before writing (and lists
  the bad ones), skips entries that have already expired, keeps the last line for a repeated
  key, and writes everything in one transaction.

exit codes:
{codes}
"""


def split_bench(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split ``argv`` after a ``bench`` command word: ``(gostore's part, bench's part)``."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--db":
            i += 2
        elif arg == "--json" or arg.startswith("--db="):
            i += 1
        elif arg == "bench":
            return argv[: i + 1], argv[i + 1 :]
        else:
            break  # the command word, or something argparse will report
    return argv, []
