"""The handlers of the commands that read and write single entries and groups.

Each handler takes the parsed arguments, does the whole command (open, act, print) and returns
the exit code; :mod:`gostore.cli.parser` registers them. Store errors propagate to
:func:`gostore.cli.main`, which prints them.
"""

from __future__ import annotations

import argparse
import sys

from .common import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_STORE,
    EXIT_USAGE,
    CliError,
    check_text,
    open_store,
    plural,
    where,
)
from .output import print_json, write_entries

STDIN_VALUE = "-"


def cmd_get(args: argparse.Namespace) -> int:
    group, key = check_text("GROUP", args.group), check_text("KEY", args.key)
    with open_store(args) as store:
        value = store.get(group, key)
    if args.json:
        print_json({"group": group, "key": key, "value": value})
    else:
        sys.stdout.write(value + "\n")
    return EXIT_OK


def cmd_set(args: argparse.Namespace) -> int:
    group, key = check_text("GROUP", args.group), check_text("KEY", args.key)
    value = read_stdin_value() if args.value == STDIN_VALUE else check_text("VALUE", args.value)
    with open_store(args, create=True) as store:
        if args.ttl is None:
            store.set(group, key, value)
        else:
            store.set_with_ttl(group, key, value, args.ttl)
    if args.json:
        print_json({"group": group, "key": key, "ttl": args.ttl})
    return EXIT_OK


def read_stdin_value() -> str:
    """``set``'s VALUE ``-``: all of stdin as UTF-8, less one trailing newline.

    NOTE: ``echo`` and here-strings end the text with a newline the user did not mean as part
    of the value (``$(...)`` strips it for the same reason). Exactly one ``\\n`` goes, so a value
    that should end in a newline is stored by sending one more.
    """
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(
            f"set: VALUE from stdin is not valid UTF-8 (byte {exc.start + 1})", EXIT_USAGE
        ) from None
    return text[:-1] if text.endswith("\n") else text


def cmd_delete(args: argparse.Namespace) -> int:
    group, key = check_text("GROUP", args.group), check_text("KEY", args.key)
    with open_store(args) as store, store.transaction() as tx:
        # In one transaction, so what is reported is what this delete removed.
        found = tx.exists(group, key)
        tx.delete(group, key)
    if args.json:
        # The object says what happened; the exit code still tells a script "not found".
        print_json({"group": group, "key": key, "deleted": found})
    elif found:
        sys.stdout.write(f"deleted {where(group, key)}\n")
    else:
        raise CliError(f"not found: {where(group, key)}", EXIT_NOT_FOUND)
    return EXIT_OK if found else EXIT_NOT_FOUND


def cmd_delete_group(args: argparse.Namespace) -> int:
    group = check_text("GROUP", args.group)
    with open_store(args) as store, store.transaction() as tx:
        removed = tx.count(group)  # live keys only: expired ones were already gone to a reader
        tx.delete_group(group)
    if args.json:
        print_json({"group": group, "deleted": removed})
    elif removed:
        keys = plural(removed, "key", "keys")
        sys.stdout.write(f"deleted {removed} {keys} from {where(group, None)}\n")
    else:
        raise CliError(f"not found: {where(group, None)}", EXIT_NOT_FOUND)
    return EXIT_OK if removed else EXIT_NOT_FOUND


def cmd_groups(args: argparse.Namespace) -> int:
    prefix = check_text("PREFIX", args.prefix)
    with open_store(args) as store:
        if args.json:
            print_json(store.groups(prefix))
        else:
            for group in store.groups_iter(prefix):
                sys.stdout.write(group + "\n")
    return EXIT_OK


def cmd_count(args: argparse.Namespace) -> int:
    group = check_text("GROUP", args.group)
    with open_store(args) as store:
        count = store.count(group)
    if args.json:
        print_json({"group": group, "count": count})
    else:
        sys.stdout.write(f"{count}\n")
    return EXIT_OK


def cmd_all(args: argparse.Namespace) -> int:
    group = check_text("GROUP", args.group)
    form = args.format or ("json" if args.json else "tsv")
    with open_store(args) as store:
        write_entries(store.all(group), form)
    return EXIT_OK


def cmd_purge(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        removed = store.purge_expired()
    if args.json:
        print_json({"purged": removed})
    else:
        sys.stdout.write(f"purged {removed} expired {plural(removed, 'entry', 'entries')}\n")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    # Imported here: the benchmark module is large and optional; every other command works
    # without it.
    try:
        from .. import bench
    except ImportError as exc:
        raise CliError(f"bench: cannot load gostore.bench: {exc}", EXIT_STORE) from exc
    try:
        code = bench.main(args.rest)
    except SystemExit as exc:  # the benchmark's own argument parser
        return system_exit_code(exc.code)
    return code if isinstance(code, int) else EXIT_OK


def system_exit_code(code: object) -> int:
    """The exit code a ``SystemExit(code)`` stands for, as the interpreter would use it."""
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1
