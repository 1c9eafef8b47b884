"""gostore: a SQLite key-value store with groups, TTL expiry, namespaces with quotas and live
change events; the Python counterpart of the Go library go-store."""

from ._accel import SPEEDUPS
from ._render_limits import RenderLimits
from ._types import KeyValue, StoreStats
from .errors import (
    ChangesExpiredError,
    InvalidNamespaceError,
    NotFoundError,
    QuotaExceededError,
    StoreClosedError,
    StoreError,
    TemplateError,
)
from .events import Event, EventType, Watcher
from .scope import QuotaConfig, ScopedStore
from .store import Store
from .transaction import Transaction

__version__ = "0.1.0"

__all__ = (
    "ChangesExpiredError",
    "Event",
    "EventType",
    "InvalidNamespaceError",
    "KeyValue",
    "NotFoundError",
    "QuotaConfig",
    "QuotaExceededError",
    "RenderLimits",
    "SPEEDUPS",
    "ScopedStore",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreStats",
    "TemplateError",
    "Transaction",
    "Watcher",
    "__version__",
)
