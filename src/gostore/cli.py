"""The ``gostore`` command line: read, write, export and import a database file from a shell.

Usage: ``gostore [--db PATH] [--json] COMMAND ...`` (also ``python -m gostore``).

The database is ``--db PATH``, else the ``GOSTORE_DB`` environment variable, else
``./gostore.db``. Only ``set`` and ``import`` create a missing database file; every other
command reports it as an error, so a mistyped path never leaves an empty file behind.

``export`` writes JSON Lines to stdout, one object per live entry::

    {"group": "config", "key": "colour", "value": "blue", "expires_at": null}

``expires_at`` is the expiry in Unix milliseconds, or ``null`` for no TTL, so TTLs survive a
round trip. ``import FILE`` (``-`` reads stdin) reads the same format in one transaction: it
checks every line first and, on the first bad one, reports ``line N: reason`` and writes
nothing. A line whose ``expires_at`` is already in the past is skipped (it would be expired,
and so invisible, the moment it was stored) and counted in the summary. When the same group
and key appear twice, the later line wins. Output is UTF-8.

Exit codes:

* ``0`` success
* ``1`` not found: ``get`` of a key that is absent or expired
* ``2`` bad input: usage errors (argparse's own code), a bad ``--ttl``, text that is not valid
  UTF-8, an unreadable or malformed import file
* ``3`` database error: the database is missing, cannot be opened, read or written
  (:class:`~gostore.StoreError`), or the ``bench`` module cannot be loaded

Errors are one line on stderr: ``gostore: error: ...``.

The atomic and maintenance commands (``incr``, ``ttl``, ``exists``, ``touch``, ``backup``,
``check``, ``stats``, ``vacuum``, ``checkpoint``) follow the same codes: ``ttl``, ``exists``
and ``touch`` exit 1 for an absent or expired key, ``incr`` exits 2 for a value that is not an
integer, and ``check`` exits 3 when the database has problems (listed on stdout).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import stat
import sys
import time
from collections.abc import Callable
from typing import IO, Any, NoReturn

from . import __version__
from ._accel import PURE_REQUESTED, SPEEDUPS
from ._types import now_ms
from .engine import is_url
from .engine import sqlite as sqlite_engine
from .errors import NotFoundError, StoreError
from .store import Store

__all__ = ("main",)

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_STORE = 3

DEFAULT_DB = "./gostore.db"
ENV_DB = "GOSTORE_DB"

# An import is "large" enough for a progress display from this size or this many lines.
LARGE_BYTES = 1 << 20
LARGE_ROWS = 10_000
_WRITE_CHUNK = 2_000  # rows written between progress updates
_MAX_MS = 2**63 - 1  # expires_at is a signed 64-bit integer in go-store's format

_FIELDS = ("group", "key", "value", "expires_at")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number",
               float: "a number", bool: "a boolean", type(None): "null"}

_EPILOG = f"""\
database:
  --db PATH, else ${ENV_DB}, else {DEFAULT_DB}. Only set and import create a missing file.

export/import format (JSON Lines, UTF-8), one live entry per line:
  {{"group": "g", "key": "k", "value": "v", "expires_at": 1767225600000}}
  expires_at is Unix milliseconds or null. import skips entries that have already expired,
  checks every line before writing, and writes all of them in one transaction.

exit codes:
  0  success
  1  not found (get of an absent or expired key)
  2  bad input or usage
  3  database error (missing, unopenable, locked, not a database, ...)
"""


class CliError(Exception):
    """A failure to report as ``gostore: error: <message>`` with exit ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation tools and tests)."""
    parser = _Parser(
        prog="gostore",
        description="Work on a gostore (go-store compatible) SQLite key-value database.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=None,
        help=f"database file (default: ${ENV_DB} if set, else {DEFAULT_DB})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON for scripts (get, groups, count, all, ...)"
    )
    parser.add_argument(
        "--version",
        action="version",
        version=version_text(),
        help="show the version, the speed-up mode (compiled or pure) and the SQLite and APSW "
        "versions, and exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Callable[..., int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, allow_abbrev=False)
        sub.set_defaults(handler=handler)
        return sub

    sub = command("get", _cmd_get, "print the value of KEY in GROUP (exit 1 when not found)")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("key", metavar="KEY")
    sub = command("set", _cmd_set, "set KEY in GROUP to VALUE (put -- before a VALUE like -x)")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("key", metavar="KEY")
    sub.add_argument("value", metavar="VALUE")
    sub.add_argument("--ttl", type=_ttl, metavar="SECONDS", help="expire after SECONDS (> 0)")
    sub = command("delete", _cmd_delete, "delete KEY from GROUP (no error when absent)")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("key", metavar="KEY")
    sub = command("delete-group", _cmd_delete_group, "delete every key of GROUP")
    sub.add_argument("group", metavar="GROUP")
    sub = command("groups", _cmd_groups, "list the groups with a live key, ascending")
    sub.add_argument("prefix", metavar="PREFIX", nargs="?", default="",
                     help="only groups starting with PREFIX (literal, case-sensitive)")
    sub = command("count", _cmd_count, "print the number of live keys in GROUP")
    sub.add_argument("group", metavar="GROUP")
    sub = command("all", _cmd_all, "print the live entries of GROUP as KEY<TAB>VALUE, by key")
    sub.add_argument("group", metavar="GROUP")
    command("purge", _cmd_purge, "delete expired entries now")
    command("export", _cmd_export, "write every live entry to stdout as JSON Lines")
    sub = command("import", _cmd_import, "read JSON Lines (from export) in one transaction")
    sub.add_argument("file", metavar="FILE", help="JSON Lines file, or - for stdin")
    _add_operation_commands(command)
    # bench takes its own arguments: main() hands everything after the word "bench" to it.
    commands.add_parser(
        "bench", help="run the comparison benchmark (arguments go to the benchmark)", add_help=False
    ).set_defaults(handler=_cmd_bench)
    return parser


def _split_bench(argv: list[str]) -> tuple[list[str], list[str]]:
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


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it).

    :param argv: the arguments after the program name; ``sys.argv[1:]`` when ``None``.
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    _utf8_stdout()
    own, rest = _split_bench(arguments)
    try:
        try:
            args = build_parser().parse_args(own)
        except SystemExit as exc:  # --help and --version print and "exit" successfully
            return _exit_code(exc.code)
        args.rest = rest
        if args.db is None:
            args.db = os.environ.get(ENV_DB) or DEFAULT_DB
        code: int = args.handler(args)
        sys.stdout.flush()
        return code
    except CliError as exc:
        return _fail(str(exc), exc.code)
    except NotFoundError as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)
    except StoreError as exc:
        return _fail(str(exc), EXIT_STORE)
    except ValueError as exc:  # the store refused an argument (a lone surrogate from argv)
        return _fail(str(exc), EXIT_USAGE)
    except BrokenPipeError:
        # The reader went away (`gostore export | head`): stop quietly, as cat does.
        _silence_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def _fail(message: str, code: int) -> int:
    # One line, whatever the message holds.
    text = message.replace("\r", "\\r").replace("\n", "\\n")
    sys.stderr.write(f"gostore: error: {text}\n")
    sys.stderr.flush()
    return code


def _exit_code(code: object) -> int:
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def _utf8_stdout() -> None:
    """Write UTF-8 whatever the locale: export's format requires it, and values are Unicode."""
    stream = sys.stdout
    if isinstance(stream, io.TextIOWrapper) and stream.encoding.lower().replace("-", "") != "utf8":
        stream.reconfigure(encoding="utf-8")


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # pragma: no cover - stdout without a file descriptor
        pass


def _open(args: argparse.Namespace, *, create: bool = False) -> Store:
    path: str = args.db
    if not create and path != ":memory:" and not is_url(path) and not os.path.exists(path):
        raise CliError(f"database {path!r} does not exist (set --db or ${ENV_DB})", EXIT_STORE)
    # The CLI runs one command and exits, so no background purge thread.
    return Store(path, purge_interval=0)


def _print_json(data: object) -> None:
    sys.stdout.write(_dumps(data) + "\n")


def _dumps(data: object) -> str:
    # NOTE: json leaves U+0085, U+2028 and U+2029 unescaped, and str.splitlines() breaks lines
    # on them; escaping keeps one entry per line for every reader. They only occur in strings.
    text = json.dumps(data, ensure_ascii=False)
    if "\x85" in text or "\u2028" in text or "\u2029" in text:
        text = text.replace("\x85", "\\u0085").replace("\u2028", "\\u2028")
        text = text.replace("\u2029", "\\u2029")
    return text


# -- commands --------------------------------------------------------------------------------
def _cmd_get(args: argparse.Namespace) -> int:
    with _open(args) as store:
        value = store.get(args.group, args.key)
    if args.json:
        _print_json({"group": args.group, "key": args.key, "value": value})
    else:
        sys.stdout.write(value + "\n")
    return EXIT_OK


def _cmd_set(args: argparse.Namespace) -> int:
    with _open(args, create=True) as store:
        if args.ttl is None:
            store.set(args.group, args.key, args.value)
        else:
            store.set_with_ttl(args.group, args.key, args.value, args.ttl)
    return EXIT_OK


def _cmd_delete(args: argparse.Namespace) -> int:
    with _open(args) as store:
        store.delete(args.group, args.key)
    return EXIT_OK


def _cmd_delete_group(args: argparse.Namespace) -> int:
    with _open(args) as store:
        store.delete_group(args.group)
    return EXIT_OK


def _cmd_groups(args: argparse.Namespace) -> int:
    with _open(args) as store:
        if args.json:
            _print_json(store.groups(args.prefix))
        else:
            for group in store.groups_iter(args.prefix):
                sys.stdout.write(group + "\n")
    return EXIT_OK


def _cmd_count(args: argparse.Namespace) -> int:
    with _open(args) as store:
        count = store.count(args.group)
    if args.json:
        _print_json({"group": args.group, "count": count})
    else:
        sys.stdout.write(f"{count}\n")
    return EXIT_OK


def _cmd_all(args: argparse.Namespace) -> int:
    write = sys.stdout.write
    with _open(args) as store:
        if args.json:
            # One object {key: value, ...} in key order, streamed: a group may be large.
            write("{")
            for i, (key, value) in enumerate(store.all(args.group)):
                write(("" if i == 0 else ", ") + _dumps(key) + ": " + _dumps(value))
            write("}\n")
        else:
            for key, value in store.all(args.group):
                write(f"{key}\t{value}\n")
    return EXIT_OK


def _cmd_purge(args: argparse.Namespace) -> int:
    with _open(args) as store:
        removed = store.purge_expired()
    if args.json:
        _print_json({"purged": removed})
    else:
        sys.stdout.write(f"purged {removed} expired {_plural(removed, 'entry', 'entries')}\n")
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    write = sys.stdout.write
    # closing(): a reader that stops early (export | head) releases the store's lock at once.
    with _open(args) as store, contextlib.closing(store.export_entries()) as rows:
        for group, key, value, expires in rows:
            write(_dumps({"group": group, "key": key, "value": value, "expires_at": expires}))
            write("\n")
    return EXIT_OK


def _cmd_import(args: argparse.Namespace) -> int:
    now = now_ms()
    rows, skipped, size = _read_import(args.file, now)
    total = sum(len(group_rows) for group_rows in rows.values())
    progress = _Progress(
        "importing", total, "entries",
        enabled=total >= LARGE_ROWS or (size is not None and size >= LARGE_BYTES),
    )
    with _open(args, create=True) as store:
        done = 0
        with store.transaction():
            for group_rows in rows.values():
                for start in range(0, len(group_rows), _WRITE_CHUNK):
                    chunk = group_rows[start : start + _WRITE_CHUNK]
                    # NOTE: import_entries keeps each exported expires_at exactly (set_with_ttl
                    # would recompute it from a later "now"); the transaction makes it atomic.
                    store.import_entries(chunk)
                    done += len(chunk)
                    progress.update(done)
        progress.finish()
    if args.json:
        _print_json({"imported": total, "skipped_expired": skipped})
    else:
        line = f"imported {total} {_plural(total, 'entry', 'entries')}"
        if skipped:
            line += f" ({skipped} expired {_plural(skipped, 'entry', 'entries')} skipped)"
        sys.stdout.write(line + "\n")
    return EXIT_OK


Row = tuple[str, str, str, int | None]


def _read_import(path: str, now: int) -> tuple[dict[str, list[Row]], int, int | None]:
    """Parse and check a JSON Lines file: ``(rows by group, expired skipped, size in bytes)``.

    :raises CliError: the file cannot be read or a line is bad (the first one is reported,
        with how many more there are).
    """
    name = "stdin" if path == "-" else repr(path)
    own = path != "-"
    try:
        stream: IO[bytes] = open(path, "rb") if own else sys.stdin.buffer
    except OSError as exc:
        raise CliError(f"import: cannot read {name}: {exc.strerror or exc}", EXIT_USAGE) from exc
    rows: dict[str, list[Row]] = {}
    skipped = 0
    first_error: str | None = None
    bad = 0
    try:
        size = _file_size(stream)
        progress = _Progress(
            f"reading {name}", size, "bytes",
            enabled=size is not None and size >= LARGE_BYTES,
        )
        read = 0
        for number, raw in enumerate(stream, 1):
            read += len(raw)
            if number % 1024 == 0:
                progress.update(read)
            try:
                row = _parse_line(raw, number)
            except ValueError as exc:
                bad += 1
                if first_error is None:
                    first_error = f"line {number}: {exc}"
                continue
            if row is None or first_error is not None:
                continue  # a blank line, or no point keeping rows that will not be written
            if row[3] is not None and row[3] <= now:
                skipped += 1
                continue
            rows.setdefault(row[0], []).append(row)
        progress.update(read)
        progress.finish()
    except OSError as exc:
        raise CliError(f"import: cannot read {name}: {exc.strerror or exc}", EXIT_USAGE) from exc
    finally:
        if own:
            stream.close()
    if first_error is not None:
        more = f"{bad - 1} more bad {_plural(bad - 1, 'line', 'lines')}; " if bad > 1 else ""
        raise CliError(f"import {name}: {first_error} ({more}nothing was imported)", EXIT_USAGE)
    return rows, skipped, size


def _file_size(stream: IO[bytes]) -> int | None:
    """The size of a regular file, or ``None`` for a pipe or terminal."""
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None


def _parse_line(raw: bytes, number: int) -> Row | None:
    """One import line as a row, ``None`` for a blank line; ``ValueError`` says what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 (byte {exc.start + 1})") from None
    if number == 1:
        text = text.removeprefix("\ufeff")  # a BOM some editors write
    if not text.strip():
        return None
    try:
        entry: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:  # an entry is one flat object; a line nested this deep is not one
        raise ValueError("invalid JSON: nested too deeply to be an entry") from None
    if not isinstance(entry, dict):
        raise ValueError(f"expected a JSON object, got {_json_type(entry)}")
    for field in entry:
        if field not in _FIELDS:
            raise ValueError(f"unknown field {field!r} (expected {', '.join(_FIELDS)})")
    texts = []
    for field in ("group", "key", "value"):
        if field not in entry:
            raise ValueError(f"missing field {field!r}")
        item = entry[field]
        if not isinstance(item, str):
            raise ValueError(f"{field!r} must be a string, not {_json_type(item)}")
        try:
            item.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{field!r} holds a lone surrogate at index {exc.start}") from None
        texts.append(item)
    expires = entry.get("expires_at")
    if expires is not None:
        if isinstance(expires, bool) or not isinstance(expires, int):
            raise ValueError(
                f"'expires_at' must be an integer (Unix ms) or null, not {_json_type(expires)}"
            )
        if not -_MAX_MS <= expires <= _MAX_MS:
            raise ValueError(f"'expires_at' {expires} is out of range")
    return texts[0], texts[1], texts[2], expires


def _json_type(item: object) -> str:
    return _JSON_TYPES.get(type(item), type(item).__name__)


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _cmd_bench(args: argparse.Namespace) -> int:
    # Imported here: the benchmark module is large and optional; every other command works
    # without it.
    try:
        from . import bench
    except ImportError as exc:
        raise CliError(f"bench: cannot load gostore.bench: {exc}", EXIT_STORE) from exc
    try:
        code = bench.main(args.rest)
    except SystemExit as exc:  # the benchmark's own argument parser
        return _exit_code(exc.code)
    return code if isinstance(code, int) else EXIT_OK


class _Progress:
    """A one-line progress display on stderr, shown only when stderr is a terminal.

    NOTE: never when stderr is piped or redirected: log files would fill with carriage returns.
    """

    _INTERVAL = 0.1  # seconds between redraws

    def __init__(self, label: str, total: int | None, unit: str, *, enabled: bool) -> None:
        self._label = label
        self._total = total
        self._unit = unit
        self._enabled = enabled and _is_terminal(sys.stderr)
        self._shown = False
        self._last = 0.0
        self._done = 0

    def update(self, done: int) -> None:
        if not self._enabled:
            return
        self._done = done
        clock = time.monotonic()
        if self._shown and clock - self._last < self._INTERVAL:
            return
        self._last = clock
        self._draw()

    def _draw(self) -> None:
        total = self._total
        if total:
            percent = min(100, self._done * 100 // total)
            text = f"{self._label}: {percent:3d}% ({self._done}/{total} {self._unit})"
        else:
            text = f"{self._label}: {self._done} {self._unit}"
        sys.stderr.write(f"\r{text}")
        sys.stderr.flush()
        self._shown = True

    def finish(self) -> None:
        if self._enabled and self._shown:
            self._draw()
            sys.stderr.write("\n")
            sys.stderr.flush()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# -- atomic and maintenance commands ---------------------------------------------------------
def _add_operation_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    sub = command("incr", _cmd_incr, "add DELTA (default 1) to the integer in KEY; print it")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("key", metavar="KEY")
    sub.add_argument("delta", metavar="DELTA", type=int, nargs="?", default=1,
                     help="an integer, may be negative (put -- before it)")
    sub = command("ttl", _cmd_ttl, "print the seconds until KEY expires, or 'none' (exit 1 "
                  "when not found)")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("key", metavar="KEY")
    sub = command("exists", _cmd_exists, "print true and exit 0 when KEY is live, else print "
                  "false and exit 1")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("key", metavar="KEY")
    sub = command("touch", _cmd_touch, "give a live KEY a new expiry, keeping its value (exit 1 "
                  "when not found)")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("key", metavar="KEY")
    expiry = sub.add_mutually_exclusive_group(required=True)
    expiry.add_argument("--ttl", type=_ttl, metavar="SECONDS", help="expire after SECONDS (> 0)")
    expiry.add_argument("--no-ttl", action="store_true", help="never expire")
    sub = command("backup", _cmd_backup, "copy the database into the new file DEST, "
                  "consistently, while others keep writing")
    sub.add_argument("dest", metavar="DEST")
    command("check", _cmd_check, "run SQLite's integrity check (exit 0 when healthy, 3 when not)")
    command("stats", _cmd_stats, "print keys, expired rows, groups, bytes and file sizes")
    command("vacuum", _cmd_vacuum, "rebuild the file, returning free pages to the OS")
    sub = command("checkpoint", _cmd_checkpoint, "copy the write-ahead log into the database")
    sub.add_argument("--mode", choices=("passive", "full", "restart", "truncate"),
                     default="passive", help="SQLite's checkpoint mode (default: passive)")


def _cmd_incr(args: argparse.Namespace) -> int:
    with _open(args) as store:
        value = store.incr(args.group, args.key, args.delta)
    if args.json:
        _print_json({"group": args.group, "key": args.key, "value": value})
    else:
        sys.stdout.write(f"{value}\n")
    return EXIT_OK


def _cmd_ttl(args: argparse.Namespace) -> int:
    with _open(args) as store:
        seconds = store.ttl(args.group, args.key)
    if args.json:
        _print_json({"group": args.group, "key": args.key, "ttl": seconds})
    else:
        sys.stdout.write("none\n" if seconds is None else f"{seconds:.3f}\n")
    return EXIT_OK


def _cmd_exists(args: argparse.Namespace) -> int:
    with _open(args) as store:
        found = store.exists(args.group, args.key)
    if args.json:
        _print_json({"group": args.group, "key": args.key, "exists": found})
    else:
        sys.stdout.write("true\n" if found else "false\n")
    return EXIT_OK if found else EXIT_NOT_FOUND


def _cmd_touch(args: argparse.Namespace) -> int:
    with _open(args) as store:
        if not store.touch(args.group, args.key, None if args.no_ttl else args.ttl):
            raise NotFoundError.at("store.touch", "not found", args.group, args.key)
    return EXIT_OK


def _cmd_backup(args: argparse.Namespace) -> int:
    with _open(args) as store:
        store.backup(args.dest)
        size = os.path.getsize(args.dest)
    if args.json:
        _print_json({"backup": args.dest, "bytes": size})
    else:
        sys.stdout.write(f"backed up to {args.dest} ({size} bytes)\n")
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    with _open(args) as store:
        problems = store.check()
    if args.json:
        _print_json({"ok": not problems, "problems": problems})
    else:
        for problem in problems or ["ok"]:
            sys.stdout.write(problem + "\n")
    return EXIT_STORE if problems else EXIT_OK


def _cmd_stats(args: argparse.Namespace) -> int:
    with _open(args) as store:
        stats = store.stats()
    if args.json:
        _print_json(stats._asdict())
    else:
        for field, value in stats._asdict().items():
            sys.stdout.write(f"{field}: {value}\n")
    return EXIT_OK


def _cmd_vacuum(args: argparse.Namespace) -> int:
    with _open(args) as store:
        before = store.stats().file_bytes
        store.vacuum()
        after = store.stats().file_bytes
    if args.json:
        _print_json({"file_bytes_before": before, "file_bytes_after": after})
    else:
        sys.stdout.write(f"vacuumed: {before} -> {after} bytes\n")
    return EXIT_OK


def _cmd_checkpoint(args: argparse.Namespace) -> int:
    with _open(args) as store:
        frames, done = store.checkpoint(args.mode)
    if args.json:
        _print_json({"wal_frames": frames, "checkpointed_frames": done})
    else:
        sys.stdout.write(f"checkpointed {done} of {frames} WAL frames\n")
    return EXIT_OK
