"""Picks the compiled ``gostore._speedups`` or its pure twin, once, at import.

Pure mode is forced by ``GOSTORE_PURE=1`` (or ``true``) and used off CPython; otherwise the
compiled module is used when it was built. The rest of the package imports hot-path functions
from here only.
"""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING

PURE_REQUESTED = os.environ.get("GOSTORE_PURE", "").strip().lower() in {"1", "true"}
_PURE = PURE_REQUESTED or platform.python_implementation() != "CPython"

if TYPE_CHECKING or _PURE:
    from ._speedups_py import (
        BoundStatement,
        Gate,
        GatedStatement,
        GateLock,
        PooledRead,
        WatcherIndex,
        decode_group,
        decode_pairs,
    )

    SPEEDUPS = False
else:
    try:
        from ._speedups import (
            BoundStatement,
            Gate,
            GatedStatement,
            GateLock,
            PooledRead,
            WatcherIndex,
            decode_group,
            decode_pairs,
        )

        SPEEDUPS = True
    except ImportError:  # pragma: no cover - depends on how gostore was built
        from ._speedups_py import (
            BoundStatement,
            Gate,
            GatedStatement,
            GateLock,
            PooledRead,
            WatcherIndex,
            decode_group,
            decode_pairs,
        )

        SPEEDUPS = False

__all__ = (
    "SPEEDUPS",
    "BoundStatement",
    "Gate",
    "GateLock",
    "GatedStatement",
    "PooledRead", "WatcherIndex", "decode_group", "decode_pairs")
