"""The core every view of a store shares: one engine, one write path, events, transactions.

:class:`~gostore.Store`, :class:`~gostore.Transaction` and :class:`~gostore.ScopedStore` are
thin views over one :class:`Core`; each passes the name of the operation its user called
(``"store.get"``, ``"tx.set"``, ``"scoped.delete"``) so errors name it.

Every write follows the same steps: with the engine's lock held, the quota guard (if any)
checks the change against its ledger, has the engine apply it and records it
(:meth:`~gostore._quota.QuotaGuard.apply`), and the events it caused go to watchers (or are
staged while a transaction is open); after the lock is released, ``on_change`` callbacks
run.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from ._quota import Ledgers, QuotaGuard, forget
from ._reads import CoreReads
from ._types import Change, check_text, expiry_ms, now_ms, prefix_range
from .engine import DatabaseError, Engine
from .errors import StoreClosedError, StoreError
from .events import Event, EventHub, EventType, Watcher, logger

if TYPE_CHECKING:
    from datetime import timedelta

    from .feed import Feed

    TTL = float | int | timedelta

__all__ = ("Core", "core_of")

NO_EVENTS: list[Event] = []  # shared empty result; never mutated
_SET = EventType.SET
_DELETE = EventType.DELETE

_CORES: weakref.WeakKeyDictionary[object, Core] = weakref.WeakKeyDictionary()


class _Staged(threading.local):
    """The events of the calling thread's open transaction, sent on commit. Per thread: on an
    engine whose transactions do not exclude other threads, several may be open at once."""

    def __init__(self) -> None:
        self.events: list[Event] = []


def core_of(store: object) -> Core:
    """The core of an open ``Store`` (how ScopedStore finds it without private access)."""
    try:
        return _CORES[store]
    except (KeyError, TypeError):
        raise TypeError(f"expected a gostore.Store, not {type(store).__name__}") from None


class Core(CoreReads):
    """The shared state and operations of one store; every method takes the operation name."""

    def __init__(self, owner: object, engine: Engine) -> None:
        self.engine = engine
        self.lock = engine.lock
        self.hub = EventHub(self.lock, engine.gate)
        self.ledgers: Ledgers = {}
        self._quotas = False  # a scoped view with a quota was made (see quotas_in_use)
        self.closed = False
        self.forked = False
        self._staged = _Staged()
        self.feed: Feed | None = None  # set by Store when the change feed is on
        _CORES[owner] = self

    # -- failures -------------------------------------------------------------------------------
    def closed_error(self, op: str) -> StoreError:
        if self.forked:
            return StoreError.at(
                op, "this Store was opened in the parent process; open a new Store after fork()"
            )
        return StoreClosedError.at(op, "the store is closed")

    def failure(
        self, op: str, exc: DatabaseError, group: str | None = None, key: str | None = None
    ) -> StoreError:
        """The StoreError to raise (``from exc.__cause__``) for an engine failure."""
        if self.closed:
            return self.closed_error(op)
        return StoreError.at(op, exc.reason, group, key)

    def ready(self, op: str) -> None:
        if self.closed:
            raise self.closed_error(op)

    def quotas_in_use(self) -> None:
        """A scoped view with a quota exists: from now on every write takes the lock, so that
        none slips past a namespace's ledger while it is built or kept up to date."""
        if not self._quotas:
            self._quotas = True
            self.engine.gate.shut(writes_only=True)

    # -- events ---------------------------------------------------------------------------------
    def publish(self, events: list[Event]) -> list[Event]:
        """Send committed ``events`` to watchers (lock held); return those callbacks still need.

        Inside a transaction they are staged instead, and sent on commit.
        """
        if self.feed is not None:
            events = self.feed.stamp(events)  # numbered now: their rows are the newest
        if self.engine.depth:
            self._staged.events.extend(events)
            return NO_EVENTS
        return self._send(events)

    def _send(self, events: list[Event]) -> list[Event]:
        if self.feed is not None:
            return self.feed.send(events)
        self.hub.to_watchers(events)
        return events if self.hub.callbacks else NO_EVENTS

    def publish_one(self, kind: EventType, group: str, key: str, value: str) -> list[Event]:
        """:meth:`publish` for one change, building the Event only if someone receives it."""
        if self.feed is not None:
            return self.publish([Event(kind, group, key, value, time.time())])
        if self.engine.depth:
            self._staged.events.append(Event(kind, group, key, value, time.time()))
            return NO_EVENTS
        event = self.hub.publish(kind, group, key, value)
        return NO_EVENTS if event is None else [event]

    # -- transactions ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def atomic(self, op: str, group: str | None = None) -> Iterator[None]:
        """Run the block as one write transaction (a savepoint when one is already open)."""
        self.ready(op)
        engine = self.engine
        try:
            engine.begin()  # on SQLite, takes the lock until commit() or rollback()
        except DatabaseError as exc:
            raise self.failure(op, exc, group) from exc.__cause__
        staged = self._staged
        mark = len(staged.events)
        callbacks = NO_EVENTS
        try:
            yield
        except BaseException:
            self._rollback(mark)
            raise
        outermost = engine.depth == 1
        feed = self.feed
        # With the feed, a later change must not be delivered before this transaction's events
        # in the moment between the commit and the lock taken below (see feed.py).
        commit = None
        if feed is not None and outermost and staged.events:
            commit = feed.committing(staged.events)
        committed = False
        try:
            engine.commit()  # rolls the level back itself when it fails
            committed = True
        except DatabaseError as exc:
            self._forget_level(mark)
            raise self.failure(op, exc, group) from exc.__cause__
        finally:
            if commit is not None:
                commit.end(committed)
                if not committed:
                    with self.lock:
                        commit.deliver()
        if outermost:
            events, staged.events = staged.events, []
            with self.lock:
                if commit is not None:
                    callbacks = commit.deliver()
                elif events:
                    callbacks = self._send(events)
        if callbacks:
            self.hub.to_callbacks(callbacks)

    def _rollback(self, mark: int) -> None:
        try:
            self.engine.rollback()
        finally:
            self._forget_level(mark)

    def _forget_level(self, mark: int) -> None:
        """A level was undone: its staged events go, and ledgers may count its writes."""
        del self._staged.events[mark:]
        self.ledgers.clear()

    def _expire(self, op: str, group: str, key: str) -> None:
        """The lazy delete of an expired key. The key is not found whatever happens here: a
        database that is locked or read-only just keeps the row for the purge."""
        callbacks = NO_EVENTS
        lock = self.lock
        lock.acquire()
        try:
            if self.engine.delete_expired(group, key, now_ms()) and self.hub.active:
                callbacks = self.publish_one(EventType.EXPIRE, group, key, "")
        except DatabaseError as exc:
            logger.debug("gostore: %s: lazy delete of %r/%r skipped: %s", op, group, key, exc)
        finally:
            lock.release()
        if callbacks:
            self.hub.to_callbacks(callbacks)

    # -- writes ---------------------------------------------------------------------------------
    def set_now(self, group: str, key: str, value: str, expires: int | None) -> bool:
        """A quiet set when it can finish at once without waiting (see ``Engine.put_now``):
        True when written; False when not (then call :meth:`write`, which reports any
        error)."""
        if type(group) is not str or type(key) is not str or type(value) is not str:
            return False
        try:
            return bool(self.engine.put_now(group, key, value, expires))
        except (DatabaseError, UnicodeEncodeError):
            return False

    def write(
        self,
        op: str,
        group: str,
        key: str,
        value: str | None,
        expires: int | None,
        guard: QuotaGuard | None = None,
        *,
        free_tried: bool = False,
    ) -> bool:
        """The single-key write path: set ``value`` (``None``: delete). True when a row was
        written or removed. ``free_tried``: the caller's ``put_free`` found the gate shut.

        NOTE: no closed check: a closed engine refuses the statement and ``failure`` names the
        closed store; this is the hottest write path.
        """
        callbacks = NO_EVENTS
        hub = self.hub
        lock = self.lock
        try:
            # A set nobody needs an event or a quota record of runs without the lock.
            if (
                not free_tried
                and value is not None
                and guard is None
                and self.engine.put_free(group, key, value, expires)
            ):
                return True
            lock.acquire()
            try:
                if guard is not None:
                    engine = self.engine
                    if engine.depth or not engine.shared:  # see _guarded
                        changed = guard.apply(engine, self.ledgers, op, group, key, value, expires)
                    else:
                        changed = self._guarded(op, group, key, value, expires, guard)
                else:
                    if self.ledgers:
                        forget(self.ledgers, group)
                    if value is None:
                        changed = self.engine.delete(group, key)
                    else:
                        self.engine.put(group, key, value, expires)
                        changed = True
                if hub.active and changed:
                    kind = _DELETE if value is None else _SET
                    if self.engine.depth or hub.callbacks or hub.match(group, key, False):
                        callbacks = self.publish_one(kind, group, key, value or "")
            finally:
                lock.release()
        except DatabaseError as exc:
            raise self.failure(op, exc, group, key) from exc.__cause__
        except UnicodeEncodeError:
            check_text(op, group=group, key=key, value=value or "")
            raise
        if callbacks:
            hub.to_callbacks(callbacks)
        return changed

    def apply(
        self, op: str, change: Change, guard: QuotaGuard | None, *, expiry_only: bool = False
    ) -> bool:
        """The quota check, the write and its record for one change (lock held, inside the
        caller's atomic step); True when a row was written or removed. ``expiry_only``: change
        the live row's expiry and nothing else."""
        engine = self.engine
        group, key, value, expires = change
        if guard is not None:
            return guard.apply(engine, self.ledgers, op, group, key, value, expires, expiry_only)
        if self.ledgers:
            forget(self.ledgers, group)
        if expiry_only:
            return engine.set_expiry(group, key, expires)
        if value is None:
            return engine.delete(group, key)
        engine.put(group, key, value, expires)
        return True

    def _guarded(
        self,
        op: str,
        group: str,
        key: str,
        value: str | None,
        expires: int | None,
        guard: QuotaGuard,
    ) -> bool:
        """Check, write and record in a transaction of its own (lock held, no transaction open,
        other connections may write): the transaction keeps them out between the check and the
        write. Alone, or inside an open transaction, :meth:`write` calls the guard directly:
        the lock (with a quota in use no write runs without it: see :meth:`quotas_in_use`) or
        the open transaction already makes the step atomic.
        """
        engine = self.engine
        engine.begin()
        try:
            changed = guard.apply(engine, self.ledgers, op, group, key, value, expires)
        except BaseException:
            engine.rollback()
            raise
        engine.commit()
        return changed

    def delete_group(self, op: str, group: str) -> None:
        if type(group) is not str:
            check_text(op, group=group)
        self.ready(op)
        callbacks = NO_EVENTS
        with self.lock:
            try:
                removed = self.engine.delete_group(group)
            except DatabaseError as exc:
                raise self.failure(op, exc, group) from exc.__cause__
            except UnicodeEncodeError:
                check_text(op, group=group)
                raise
            if self.ledgers:
                forget(self.ledgers, group)
            if removed and self.hub.active:
                callbacks = self.publish_one(EventType.DELETE_GROUP, group, "", "")
        if callbacks:
            self.hub.to_callbacks(callbacks)

    def delete_prefix(self, op: str, prefix: str) -> int:
        if type(prefix) is not str:
            check_text(op, prefix=prefix)
        lo, hi = prefix_range(prefix)
        with self.atomic(op, prefix):
            try:
                groups = self.engine.delete_range(lo, hi)
            except DatabaseError as exc:
                raise self.failure(op, exc, prefix) from exc.__cause__
            except UnicodeEncodeError:
                check_text(op, prefix=prefix)
                raise
            self.ledgers.clear()
            if self.hub.active:
                stamp = time.time()
                self.publish(
                    [Event(EventType.DELETE_GROUP, g, "", "", stamp) for g in dict.fromkeys(groups)]
                )
        return len(groups)

    def set_many(
        self,
        op: str,
        group: str,
        mapping: Mapping[str, str],
        ttl: TTL | None,
        guard: QuotaGuard | None = None,
    ) -> None:
        if type(group) is not str:
            check_text(op, group=group)
        if not isinstance(mapping, Mapping):
            raise TypeError(f"{op}: mapping must be a Mapping, not {type(mapping).__name__}")
        expires = None if ttl is None else expiry_ms(op, ttl, now_ms())
        # NOTE: the rows stream from the mapping into the engine, checked one by one: a bad
        # entry raises mid-way and the transaction writes nothing, as a check of every entry
        # first would, without a copy of the whole input.
        with self.atomic(op, group):
            try:
                self.write_rows(op, group, _checked(op, group, mapping, expires), guard)
            except UnicodeEncodeError:
                for k, v in mapping.items():
                    check_text(op, group=group, key=k, value=v)
                raise

    def write_rows(
        self,
        op: str,
        group: str,
        rows: Iterable[tuple[str, str, str, int | None]],
        guard: QuotaGuard | None = None,
    ) -> None:
        """Write ``rows`` inside the caller's transaction and stage their events. ``rows`` is
        read once; it is copied only when events or quota ledgers need it again."""
        engine = self.engine
        if (self.hub.active or self.ledgers) and not isinstance(rows, list):
            rows = list(rows)
        try:
            if guard is None:
                engine.put_many(rows)
                if self.ledgers and isinstance(rows, list):
                    for row_group in {row[0] for row in rows}:
                        forget(self.ledgers, row_group)
            else:
                ledgers = self.ledgers
                for row_group, key, value, expires in rows:
                    guard.apply(engine, ledgers, op, row_group, key, value, expires)
        except DatabaseError as exc:
            raise self.failure(op, exc, group) from exc.__cause__
        except UnicodeEncodeError:
            if isinstance(rows, list):
                for g, k, v, _ in rows:
                    check_text(op, group=g, key=k, value=v)
            raise
        if self.hub.active and isinstance(rows, list):
            stamp = time.time()
            self.publish([Event(_SET, g, k, v, stamp) for g, k, v, _ in rows])

    # -- watchers -------------------------------------------------------------------------------
    def watch(
        self,
        op: str,
        group: str,
        key: str,
        buffer: int,
        namespace: str | None = None,
        since: int | None = None,
    ) -> Watcher:
        check_text(op, group=group, key=key)
        if isinstance(buffer, bool) or not isinstance(buffer, int):
            raise TypeError(f"{op}: buffer must be int, not {type(buffer).__name__}")
        if buffer < 1:
            raise ValueError(f"{op}: buffer must be >= 1, got {buffer}")
        self.ready(op)
        if since is not None:
            from .feed import check_seq, feed_off

            check_seq(op, "since", since)
            if self.feed is None:
                raise feed_off(op)
            return self.feed.watch(op, group, key, buffer, since, namespace)
        watcher = self.hub.watch(group, key, buffer, namespace)
        if watcher is None:  # close() got there first
            raise self.closed_error(op)
        return watcher

    # -- expiry ---------------------------------------------------------------------------------
    def purge_expired(self, op: str, prefix: str = "") -> int:
        self.ready(op)
        lo, hi = prefix_range(prefix)
        callbacks = NO_EVENTS
        with self.lock:
            self.ready(op)
            try:
                rows = self.engine.purge(lo, hi, now_ms())
                if self.feed is not None:
                    self.feed.trim()
            except DatabaseError as exc:
                raise self.failure(op, exc) from exc.__cause__
            if rows and self.hub.active:
                stamp = time.time()
                callbacks = self.publish(
                    [Event(EventType.EXPIRE, g, k, "", stamp) for g, k in rows]
                )
        if callbacks:
            self.hub.to_callbacks(callbacks)
        return len(rows)


def _checked(
    op: str, group: str, mapping: Mapping[str, str], expires: int | None
) -> Iterator[tuple[str, str, str, int | None]]:
    for k, v in mapping.items():
        if type(k) is not str or type(v) is not str:
            check_text(op, key=k, value=v)
        yield (group, k, v, expires)
