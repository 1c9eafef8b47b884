"""Stub for the compiled module built from ``_speedups/_speedups.pyx``.

Kept identical in names and signatures to the pure twin ``gostore/_speedups_py.py``, which type
checkers read inside the package (see ``_accel``); tests/test_typing.py checks that they agree.
"""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

_T = TypeVar("_T")

def decode_group(count: int, keys: bytes | None, values: bytes | None) -> dict[str, str] | None:
    """Decode a group fetched as two 0xFF-joined UTF-8 blobs into ``{key: value}``."""

def decode_pairs(
    count: int, keys: bytes | None, values: bytes | None, pair: Callable[[str, str], _T]
) -> list[_T] | None:
    """Like :func:`decode_group` but keeps row order, as ``[pair(key, value), ...]``."""

class WatcherIndex:
    """Finds the watchers matching an event with a few dict lookups, however many exist."""

    def __init__(self) -> None: ...
    def add(self, watcher: Any) -> None: ...
    def remove(self, watcher: Any) -> None: ...
    def match(self, group: str, key: str, whole_group: bool) -> Sequence[Any]:
        """The watchers an event on ``(group, key)`` reaches, each once (``()`` when none)."""

class BoundStatement:
    """One SQL statement as a single call: ``stmt(*args)`` returns the first row or ``None``."""

    execute: Callable[[str, tuple[Any, ...]], Any]
    def __init__(
        self,
        execute: Callable[[str, tuple[Any, ...]], Any],
        sql: str,
        rows: int,
        errors: type[BaseException] | tuple[type[BaseException], ...],
        on_error: Callable[[BaseException], BaseException],
        lock: Any = None,
    ) -> None: ...
    def __call__(self, *args: Any) -> Any: ...

class PooledRead:
    """A read statement as a single call on a pool of reader connections."""

    owner: int
    def __init__(
        self,
        writer: Callable[..., Any],
        sql: str,
        idle: list[Any],
        take: Callable[[], Any],
        notify: Callable[[], object],
        waiting: list[int],
        errors: type[BaseException] | tuple[type[BaseException], ...],
        on_error: Callable[[BaseException], BaseException],
    ) -> None: ...
    def __call__(self, *args: Any) -> Any: ...


class Gate:
    """Lets single statements run on a shared connection without the store's lock."""

    shut_all: int
    shut_writes: int
    listener: Any
    def __init__(self) -> None: ...
    @property
    def inflight(self) -> int: ...
    def enter(self, write: bool, group: Any = None, key: Any = None) -> bool: ...
    def leave(self) -> None: ...
    def shut(self, writes_only: bool = False) -> None: ...
    def reopen(self, writes_only: bool = False) -> None: ...

class GateLock:
    """A reentrant lock that shuts ``gate`` while it is held."""

    def __init__(self, gate: Gate) -> None: ...
    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> bool: ...
    def __exit__(self, *exc_info: object) -> None: ...

class GatedStatement:
    """One SQL statement as a single call, without the store's lock while ``gate`` is open."""

    def __init__(
        self,
        gate: Gate,
        write: bool,
        cursors: list[Any],
        new_cursor: Callable[[], Any],
        sql: str,
        rows: int,
        errors: type[BaseException] | tuple[type[BaseException], ...],
        on_error: Callable[[BaseException], BaseException],
        blocked: Callable[..., Any],
        busy: type[BaseException] | tuple[type[BaseException], ...],
    ) -> None: ...
    def __call__(self, *args: Any) -> Any: ...
