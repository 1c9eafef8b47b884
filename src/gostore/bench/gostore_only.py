"""The workloads only gostore runs: a set() among 10,000 watchers, scoped writes under a quota,
and the accelerated paths (batch decoding, watcher matching and delivery) timed directly.

The accelerated paths are measured below the public API on purpose: ``_accel`` picks the
compiled module or its pure twin, and the event hub is the structure watchers live in, so a
GOSTORE_PURE=1 run of the same rows gives the compiled/pure speed-up.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from gostore import Event, EventType, KeyValue, QuotaConfig

from .. import _accel
from ..events import EventHub
from .fixtures import GROUP, SEPARATOR, VALUE, Config, Fixture, Instance, cycle, keys, sql

__all__ = (
    "decode_group",
    "decode_pairs",
    "new_key_workload",
    "set_10k_watchers",
    "watcher_dispatch",
    "watcher_match",
)


# -- watchers and quotas --------------------------------------------------------------------
def set_10k_watchers(impl: str, cfg: Config) -> Instance:
    """Set with 10,000 registered watchers, none matching (compare with Set)."""
    fx = Fixture(impl, cfg)
    assert fx.store is not None
    store, names = fx.store, keys(10_000)
    # Same group, other keys, and other groups with "*": buckets next to the ones probed.
    for i in range(5_000):
        store.watch(GROUP, f"other-{i}")
        store.watch(f"other-{i}", "*")
    put = store.set

    def loop(n: int) -> None:
        for k in cycle(names, n):
            put(GROUP, k, VALUE)

    return Instance(loop, fx.close)


_NAMESPACE = "tenant"
_NAMESPACE_KEYS = 100_000


def new_key_workload(scoped: bool) -> Callable[[str, Config], Instance]:
    """set() of a new key each op, next to 100,000 live keys in a namespace with a quota."""

    def make(impl: str, cfg: Config) -> Instance:
        fx = Fixture(impl, cfg)
        fx.fill(keys(_NAMESPACE_KEYS), group=f"{_NAMESPACE}:{GROUP}")
        counter = itertools.count()
        if fx.store is not None:
            if scoped:
                view = fx.store.scoped(_NAMESPACE, QuotaConfig(max_keys=10**9))
                view.set(GROUP, "warm-up", VALUE)  # builds the quota ledger, untimed
                put = view.set
            else:
                put = fx.store.set

            def loop(n: int) -> None:
                for c in itertools.islice(counter, n):
                    put(GROUP, f"new-{c}", VALUE)
        else:
            ex, q = fx.cur.execute, sql.SET

            def loop(n: int) -> None:
                for c in itertools.islice(counter, n):
                    ex(q, (GROUP, f"new-{c}", VALUE, None))

        return Instance(loop, fx.close)

    return make


# -- the accelerated paths (_speedups vs _speedups_py, through _accel) ----------------------
def _blob_10k() -> tuple[int, bytes, bytes]:
    names = keys(10_000)
    return (
        len(names),
        SEPARATOR.join(k.encode() for k in names),
        SEPARATOR.join([b"value"] * 10_000),
    )


def decode_group(impl: str, cfg: Config) -> Instance:
    count, kb, vb = _blob_10k()
    decode = _accel.decode_group

    def loop(n: int) -> None:
        for _ in range(n):
            decode(count, kb, vb)

    return Instance(loop, lambda: None)


def decode_pairs(impl: str, cfg: Config) -> Instance:
    count, kb, vb = _blob_10k()
    decode = _accel.decode_pairs

    def loop(n: int) -> None:
        for _ in range(n):
            decode(count, kb, vb, KeyValue)

    return Instance(loop, lambda: None)


def _watcher_hub() -> EventHub:
    """10,000 non-matching watchers, plus one per bucket form matching ("bench", "key-1")."""
    hub = EventHub()
    for i in range(5_000):
        hub.watch(GROUP, f"other-{i}", 16)
        hub.watch(f"other-{i}", "*", 16)
    for group, key in ((GROUP, "key-1"), (GROUP, "*"), ("*", "key-1"), ("*", "*")):
        hub.watch(group, key, 16)
    return hub


def watcher_match(impl: str, cfg: Config) -> Instance:
    hub = _watcher_hub()
    match = hub.match

    def loop(n: int) -> None:
        for _ in range(n):
            match(GROUP, "key-1", False)

    return Instance(loop, hub.close_all)


def watcher_dispatch(impl: str, cfg: Config) -> Instance:
    # NOTE: the buffers fill after 16 events; from then on each offer counts a drop, the
    # steady state of a watcher nobody reads.
    hub = _watcher_hub()
    events = [Event(EventType.SET, GROUP, "key-1", VALUE, time.time())]
    dispatch = hub.to_watchers

    def loop(n: int) -> None:
        for _ in range(n):
            dispatch(events)

    return Instance(loop, hub.close_all)
