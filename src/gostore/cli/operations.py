"""The handlers of the atomic and maintenance commands: incr, ttl, exists, touch, backup,
check, stats, vacuum and checkpoint. :mod:`gostore.cli.parser` registers them.

They follow the usual codes: ``ttl``, ``exists`` and ``touch`` exit 1 for an absent or expired
key, ``incr`` exits 2 for a value that is not an integer, and ``check`` exits 3 when the
database has problems (listed on stdout).
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import NotFoundError
from .common import EXIT_NOT_FOUND, EXIT_OK, EXIT_STORE, check_text, open_store
from .output import print_json


def _group_key(args: argparse.Namespace) -> tuple[str, str]:
    return check_text("GROUP", args.group), check_text("KEY", args.key)


def cmd_incr(args: argparse.Namespace) -> int:
    group, key = _group_key(args)
    with open_store(args) as store:
        value = store.incr(group, key, args.delta)
    if args.json:
        print_json({"group": group, "key": key, "value": value})
    else:
        sys.stdout.write(f"{value}\n")
    return EXIT_OK


def cmd_ttl(args: argparse.Namespace) -> int:
    group, key = _group_key(args)
    with open_store(args) as store:
        seconds = store.ttl(group, key)
    if args.json:
        print_json({"group": group, "key": key, "ttl": seconds})
    else:
        sys.stdout.write("none\n" if seconds is None else f"{seconds:.3f}\n")
    return EXIT_OK


def cmd_exists(args: argparse.Namespace) -> int:
    group, key = _group_key(args)
    with open_store(args) as store:
        found = store.exists(group, key)
    if args.json:
        print_json({"group": group, "key": key, "exists": found})
    else:
        sys.stdout.write("true\n" if found else "false\n")
    return EXIT_OK if found else EXIT_NOT_FOUND


def cmd_touch(args: argparse.Namespace) -> int:
    group, key = _group_key(args)
    with open_store(args) as store:
        if not store.touch(group, key, None if args.no_ttl else args.ttl):
            raise NotFoundError.at("store.touch", "not found", group, key)
    if args.json:
        print_json({"group": group, "key": key, "touched": True})
    return EXIT_OK


def cmd_backup(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.backup(args.dest)
        size = os.path.getsize(args.dest)
    if args.json:
        print_json({"backup": args.dest, "bytes": size})
    else:
        sys.stdout.write(f"backed up to {args.dest} ({size} bytes)\n")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        problems = store.check()
    if args.json:
        print_json({"ok": not problems, "problems": problems})
    else:
        for problem in problems or ["ok"]:
            sys.stdout.write(problem + "\n")
    return EXIT_STORE if problems else EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        stats = store.stats()
    if args.json:
        print_json(stats._asdict())
    else:
        for field, value in stats._asdict().items():
            sys.stdout.write(f"{field}: {value}\n")
    return EXIT_OK


def cmd_vacuum(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        before = store.stats().file_bytes
        store.vacuum()
        after = store.stats().file_bytes
    if args.json:
        print_json({"file_bytes_before": before, "file_bytes_after": after})
    else:
        sys.stdout.write(f"vacuumed: {before} -> {after} bytes\n")
    return EXIT_OK


def cmd_checkpoint(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        frames, done = store.checkpoint(args.mode)
    if args.json:
        print_json({"wal_frames": frames, "checkpointed_frames": done})
    else:
        sys.stdout.write(f"checkpointed {done} of {frames} WAL frames\n")
    return EXIT_OK
