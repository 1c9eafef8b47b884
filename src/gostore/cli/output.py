"""How the command line writes: JSON, the formats of ``all``, and the progress display."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from collections.abc import Iterable
from typing import IO

FORMATS = ("tsv", "jsonl", "json", "csv")

# One pass over the text does every escape; order matters only for the backslash itself.
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def dumps(data: object) -> str:
    """``data`` as one line of JSON (UTF-8 text, not ASCII escapes)."""
    # NOTE: json leaves U+0085, U+2028 and U+2029 unescaped, and str.splitlines() breaks lines
    # on them; escaping keeps one entry per line for every reader. They only occur in strings.
    text = json.dumps(data, ensure_ascii=False)
    if "\x85" in text or "\u2028" in text or "\u2029" in text:
        text = text.replace("\x85", "\\u0085").replace("\u2028", "\\u2028")
        text = text.replace("\u2029", "\\u2029")
    return text


def print_json(data: object) -> None:
    sys.stdout.write(dumps(data) + "\n")


def tsv_field(text: str) -> str:
    """``text`` with backslash, tab, newline and carriage return escaped as ``\\\\``, ``\\t``,
    ``\\n`` and ``\\r``, so one entry is always one line of two tab-separated fields."""
    return text.translate(_TSV_ESCAPES)


def write_entries(entries: Iterable[tuple[str, str]], form: str) -> None:
    """Stream ``(key, value)`` pairs to stdout in ``form`` (one of :data:`FORMATS`)."""
    write = sys.stdout.write
    if form == "tsv":
        for key, value in entries:
            write(f"{tsv_field(key)}\t{tsv_field(value)}\n")
    elif form == "jsonl":
        for key, value in entries:
            write(dumps({"key": key, "value": value}) + "\n")
    elif form == "json":
        # One object {key: value, ...} in key order, streamed: a group may be large.
        write("{")
        for i, (key, value) in enumerate(entries):
            write(("" if i == 0 else ", ") + dumps(key) + ": " + dumps(value))
        write("}\n")
    elif form == "csv":
        # RFC 4180: a header, fields quoted when they hold a comma, quote or line break.
        out = csv.writer(sys.stdout)
        out.writerow(("key", "value"))
        for key, value in entries:
            out.writerow((key, value))
    else:  # pragma: no cover - argparse only lets FORMATS through
        raise ValueError(f"unknown format {form!r}")


def utf8_stdout() -> None:
    """Write UTF-8 whatever the locale: export's format requires it, and values are Unicode."""
    stream = sys.stdout
    if isinstance(stream, io.TextIOWrapper) and stream.encoding.lower().replace("-", "") != "utf8":
        stream.reconfigure(encoding="utf-8")


def silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush into a closed pipe is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # pragma: no cover - stdout without a file descriptor
        pass


class Progress:
    """A one-line progress display on stderr, shown only when stderr is a terminal.

    NOTE: never when stderr is piped or redirected: log files would fill with carriage returns.
    """

    _INTERVAL = 0.1  # seconds between redraws

    def __init__(self, label: str, total: int | None, unit: str, *, enabled: bool) -> None:
        self._label = label
        self._total = total
        self._unit = unit
        self._enabled = enabled and is_terminal(sys.stderr)
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


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
