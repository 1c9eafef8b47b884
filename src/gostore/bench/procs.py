"""Child processes of the benchmark (the GOSTORE_PURE=1 worker, ``go build``, the Go harness)
that never outlive it.

Each child starts in a process group of its own, so that stopping it also stops what it started
(``go build`` runs the compiler and linker as children of its own). Whatever way the runner
leaves a child's wait (Ctrl-C, SIGTERM, any exception), the child's group is sent SIGTERM, then
SIGKILL if it is still there after a grace period, and the child is reaped before the exception
goes on. :func:`terminating_as_exit` turns SIGTERM into ``SystemExit`` so those ``finally``
paths run for it too (Python's default for SIGTERM is to die on the spot).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ("run", "stop", "terminating_as_exit")

# Seconds a child is given to exit on SIGTERM before it is killed.
GRACE = 3.0


def run(
    cmd: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to completion, its output captured; stop it if this wait is interrupted."""
    options: dict[str, Any] = {}
    if sys.platform == "win32":
        options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        options["start_new_session"] = True
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        **options,
    )
    try:
        out, err = proc.communicate()
    except BaseException:
        stop(proc)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def stop(proc: subprocess.Popen[str], grace: float = GRACE) -> None:
    """Stop ``proc`` and its process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL if sys.platform != "win32" else signal.SIGTERM)
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _signal_group(proc: subprocess.Popen[str], signum: int) -> None:
    if sys.platform == "win32":
        proc.kill()
        return
    try:
        # The group's id is the child's pid (start_new_session); the group may outlive the
        # child itself, as when `go build` was interrupted between its tool runs.
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def terminating_as_exit() -> Iterator[None]:
    """Within the block, SIGTERM raises ``SystemExit(128 + SIGTERM)`` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        # None: a handler installed outside Python, which cannot be put back; the default then.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
