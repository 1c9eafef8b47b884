"""``export`` and ``import``: JSON Lines, one entry per line.

``import`` streams: a first pass checks every line and keeps only what the summary needs (the
bad lines, up to :data:`MAX_REPORTED`, and one 8-byte hash per entry to count distinct keys);
a second pass parses again and writes, chunk by chunk, in one transaction. A file that cannot
be read twice (stdin, a pipe) is first copied to a temporary file. Nothing is written unless
every line is good, and memory does not grow with the input's size beyond those hashes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator
from typing import IO, Any

from .common import EXIT_OK, EXIT_USAGE, CliError, open_store, plural
from .output import Progress, dumps, print_json

# An import is "large" enough for a progress display from this size or this many lines.
LARGE_BYTES = 1 << 20
LARGE_ROWS = 10_000
MAX_REPORTED = 20  # bad lines listed one by one; the rest are counted
WRITE_CHUNK = 2_000  # rows written between progress updates
_MAX_MS = 2**63 - 1  # expires_at is a signed 64-bit integer in go-store's format
_SPOOL_CHUNK = 1 << 20

FIELDS = ("group", "key", "value", "expires_at")
_FIELD_SET = frozenset(FIELDS)
_decode = json.JSONDecoder().decode
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number",
               float: "a number", bool: "a boolean", type(None): "null"}

Row = tuple[str, str, str, int | None]


# -- export ---------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    write = sys.stdout.write
    # closing(): a reader that stops early (export | head) releases the store's lock at once.
    with open_store(args) as store, contextlib.closing(store.export_entries()) as rows:
        for group, key, value, expires in rows:
            write(dumps({"group": group, "key": key, "value": value, "expires_at": expires}))
            write("\n")
    return EXIT_OK


# -- import ---------------------------------------------------------------------------------
def cmd_import(args: argparse.Namespace) -> int:
    now = time.time_ns() // 1_000_000  # one "now" for both passes: they agree on what expired
    name = "stdin" if args.file == "-" else repr(args.file)
    with _source(args.file, name) as stream:
        size = _file_size(stream)
        summary = _check(stream, name, size, now)
        stream.seek(0)
        enabled = summary.entries >= LARGE_ROWS or (size is not None and size >= LARGE_BYTES)
        progress = Progress("importing", summary.entries, "entries", enabled=enabled)
        with open_store(args, create=True) as store, store.transaction():
            # NOTE: import_entries keeps each exported expires_at exactly (set_with_ttl would
            # recompute it from a later "now"); the transaction makes the whole file atomic.
            done = 0
            for chunk in _chunks(_rows(stream, name, now), WRITE_CHUNK):
                store.import_entries(chunk)
                done += len(chunk)
                progress.update(done)
        progress.finish()
    _report(args, summary)
    return EXIT_OK


class _Summary:
    """What the checking pass learnt: counts for the report, and the bad lines."""

    def __init__(self) -> None:
        self.entries = 0  # lines to write
        self.distinct = 0  # distinct (group, key) among them
        self.expired = 0
        self.bad = 0
        self.errors: list[str] = []


def _check(stream: IO[bytes], name: str, size: int | None, now: int) -> _Summary:
    """The first pass: every line parsed and checked, nothing kept but the summary.

    :raises CliError: listing the bad lines (up to :data:`MAX_REPORTED`), when there are any.
    """
    summary = _Summary()
    # NOTE: a (group, key) is remembered as its 64-bit hash, in 256 arrays chosen by the top
    # byte, so counting distinct keys costs 8 bytes an entry, never the keys themselves. Two
    # different keys with one hash would count once: for a million keys the odds are about
    # 1 in 36 million, and only the reported number, never the data, would be off.
    buckets = [array("q") for _ in range(256)]
    progress = Progress(
        f"reading {name}", size, "bytes", enabled=size is not None and size >= LARGE_BYTES
    )
    read = 0
    try:
        for number, raw in enumerate(stream, 1):
            read += len(raw)
            if number % 1024 == 0:
                progress.update(read)
            try:
                row = parse_line(raw, number)
            except ValueError as exc:
                summary.bad += 1
                if len(summary.errors) < MAX_REPORTED:
                    summary.errors.append(f"line {number}: {exc}")
                continue
            if row is None:
                continue
            if row[3] is not None and row[3] <= now:
                summary.expired += 1
                continue
            summary.entries += 1
            digest = hash((row[0], row[1]))
            buckets[(digest >> 56) & 0xFF].append(digest)
    except OSError as exc:
        raise CliError(f"import: cannot read {name}: {exc.strerror or exc}", EXIT_USAGE) from exc
    progress.update(read)
    progress.finish()
    if summary.bad:
        _refuse(name, summary)
    for i, bucket in enumerate(buckets):
        summary.distinct += len(set(bucket))
        buckets[i] = array("q")  # free as we go
    return summary


def _refuse(name: str, summary: _Summary) -> None:
    if summary.bad == 1:
        raise CliError(f"import {name}: {summary.errors[0]} (nothing was imported)", EXIT_USAGE)
    details = list(summary.errors)
    hidden = summary.bad - len(details)
    if hidden:
        details.append(f"... and {hidden} more bad {plural(hidden, 'line', 'lines')}")
    raise CliError(
        f"import {name}: {summary.bad} bad lines, nothing was imported", EXIT_USAGE, tuple(details)
    )


def _rows(stream: IO[bytes], name: str, now: int) -> Iterator[Row]:
    """The second pass: the rows to write, in file order."""
    try:
        for number, raw in enumerate(stream, 1):
            try:
                row = parse_line(raw, number)
            except ValueError as exc:  # the file changed since it was checked
                raise CliError(
                    f"import {name}: line {number}: {exc} (the file changed while importing; "
                    "nothing was imported)",
                    EXIT_USAGE,
                ) from None
            if row is not None and (row[3] is None or row[3] > now):
                yield row
    except OSError as exc:
        raise CliError(f"import: cannot read {name}: {exc.strerror or exc}", EXIT_USAGE) from exc


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _report(args: argparse.Namespace, summary: _Summary) -> None:
    replaced = summary.entries - summary.distinct
    if args.json:
        print_json({
            "imported": summary.distinct,
            "replaced": replaced,
            "skipped_expired": summary.expired,
        })
        return
    notes = []
    if replaced:
        notes.append(
            f"{replaced} {plural(replaced, 'line', 'lines')} replaced "
            f"{plural(replaced, 'an earlier one', 'earlier ones')} for the same key"
        )
    if summary.expired:
        notes.append(
            f"{summary.expired} expired {plural(summary.expired, 'entry', 'entries')} skipped"
        )
    line = f"imported {summary.distinct} {plural(summary.distinct, 'entry', 'entries')}"
    if notes:
        line += f" ({'; '.join(notes)})"
    sys.stdout.write(line + "\n")


@contextlib.contextmanager
def _source(path: str, name: str) -> Iterator[IO[bytes]]:
    """The input, open for reading twice: a regular file as it is, anything else (stdin, a
    pipe, a FIFO) first copied to a temporary file that is deleted afterwards."""
    try:
        stream: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")
    except OSError as exc:
        raise CliError(f"import: cannot read {name}: {exc.strerror or exc}", EXIT_USAGE) from exc
    try:
        if path != "-" and _seekable(stream):
            yield stream
            return
        with tempfile.TemporaryFile(prefix="gostore-import-") as spool:
            try:
                shutil.copyfileobj(stream, spool, _SPOOL_CHUNK)
            except OSError as exc:
                raise CliError(
                    f"import: cannot read {name}: {exc.strerror or exc}", EXIT_USAGE
                ) from exc
            spool.seek(0)
            yield spool
    finally:
        if path != "-":
            stream.close()


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return stream.seekable() and stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, io.UnsupportedOperation):
        return False


def _file_size(stream: IO[bytes]) -> int | None:
    try:
        return os.fstat(stream.fileno()).st_size
    except (OSError, ValueError, io.UnsupportedOperation):
        return None


def parse_line(raw: bytes, number: int) -> Row | None:
    """One import line as a row, ``None`` for a blank line; ``ValueError`` says what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 (byte {exc.start + 1})") from None
    if number == 1:
        text = text.removeprefix("\ufeff")  # a BOM some editors write
    try:
        entry: Any = _decode(text)
    except json.JSONDecodeError as exc:
        if not text.strip():
            return None
        raise ValueError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:  # an entry is one flat object; a line nested this deep is not one
        raise ValueError("invalid JSON: nested too deeply to be an entry") from None
    # NOTE: the common line, an export's, passes these few tests and is returned at once; every
    # import reads each line twice, so the checks that name a problem run only when one exists.
    # Decoded UTF-8 never holds a lone surrogate; only a \u escape can make one.
    if type(entry) is dict and "\\u" not in text and entry.keys() <= _FIELD_SET:
        group, key, value = entry.get("group"), entry.get("key"), entry.get("value")
        expires = entry.get("expires_at")
        if (
            type(group) is str and type(key) is str and type(value) is str
            and (expires is None or (type(expires) is int and -_MAX_MS <= expires <= _MAX_MS))
        ):
            return group, key, value, expires
    return _checked(entry)


def _checked(entry: Any) -> Row:
    """``entry`` as a row, or ``ValueError`` naming the first thing wrong with it."""
    if not isinstance(entry, dict):
        raise ValueError(f"expected a JSON object, got {_json_type(entry)}")
    for field in entry:
        if field not in FIELDS:
            raise ValueError(f"unknown field {field!r} (expected {', '.join(FIELDS)})")
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
