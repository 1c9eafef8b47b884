"""Change events: EventType, Event, Watcher, and the hub that routes events to watchers and
``on_change`` callbacks.

Watchers are found through an index keyed by what they watch (exact group and key, the ``"*"``
wildcards, or a whole namespace), so dispatching an event costs the same however many
non-matching watchers exist. Delivery never blocks the writer: a full buffer drops the event
and counts it in :attr:`Watcher.dropped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, NamedTuple

from ._accel import Gate, WatcherIndex

__all__ = ("Event", "EventType", "Watcher")

logger = logging.getLogger("gostore")


class EventType(enum.IntEnum):
    """What happened to a key. ``str(EventType.SET) == "set"``."""

    SET = 0
    DELETE = 1
    DELETE_GROUP = 2
    EXPIRE = 3

    def __str__(self) -> str:
        return self.name.lower()


class Event(NamedTuple):
    """One committed change.

    :ivar type: what happened.
    :ivar group: the full stored group name (``"tenant-a:config"`` for a scoped write).
    :ivar key: the key; ``""`` for :attr:`EventType.DELETE_GROUP`.
    :ivar value: the new value for :attr:`EventType.SET`, else ``""``.
    :ivar timestamp: ``time.time()`` of the write.
    :ivar seq: with the change feed on, the change's position in the feed (increasing in
        commit order, never reused); ``0`` for a store without the feed.
    """

    type: EventType
    group: str
    key: str
    value: str
    timestamp: float
    seq: int = 0


_CLOSED: Any = object()  # queued once by close(): it wakes blocked readers after the last event


class Watcher:
    """A bounded buffer of the events matching ``(group, key)``.

    Read it with :meth:`get`, :meth:`get_nowait`, ``for event in watcher`` (ends once closed and
    drained) or ``async for event in watcher`` (never blocks the event loop). Use it as a context
    manager to unwatch on exit.
    """

    # NOTE: the buffer is a C-level queue.SimpleQueue: put() wakes a blocked get() without the
    # Python-level bookkeeping of threading.Condition, so delivering an event costs the writer
    # a fraction of what it did. No lock of its own: delivery and close() both run under the
    # store's lock (EventHub's delivery lock), and the list of asyncio waiters is only ever
    # appended to, removed from, or swapped whole, which the GIL makes atomic.
    __slots__ = (
        "__weakref__",
        "_capacity",
        "_closed",
        "_queue",
        "_unwatch",
        "_waiters",
        "dropped",
        "group",
        "key",
        "namespace",
    )

    def __init__(
        self,
        group: str,
        key: str,
        buffer: int,
        unwatch: Callable[[Watcher], None],
        namespace: str | None = None,
    ) -> None:
        self.group = group
        self.key = key
        #: set for ``ScopedStore.watch("*", key)``: every group of this namespace.
        self.namespace = namespace
        #: events discarded because the buffer was full.
        self.dropped = 0
        self._capacity = buffer
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._unwatch = unwatch
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        where = f"namespace={self.namespace!r}" if self.namespace else f"group={self.group!r}"
        buffered = max(0, self._queue.qsize() - self._closed)
        return f"<Watcher {where} key={self.key!r} {state} buffered={buffered}>"

    @property
    def closed(self) -> bool:
        """True once unwatched or the store is closed (buffered events can still be read)."""
        return self._closed

    # -- writer side ------------------------------------------------------------------------
    def _offer(self, event: Event) -> None:
        """Buffer ``event`` or count it as dropped; never waits for the reader.

        Called only with the delivery lock held.
        """
        if self._closed:
            return
        if self._queue.qsize() >= self._capacity:
            self.dropped += 1
            return
        self._queue.put(event)
        if self._waiters:
            self._wake_async()

    def _close(self) -> None:
        """Called only with the delivery lock held."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_CLOSED)
        self._wake_async()

    def _wake_async(self) -> None:
        waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that event loop is closed; nobody is waiting any more
                pass

    # -- reader side ------------------------------------------------------------------------
    def _take(self, block: bool, timeout: float | None) -> Event | None:
        try:
            item = self._queue.get(block, timeout)
        except queue.Empty:
            return None
        if item is _CLOSED:
            self._queue.put(_CLOSED)  # leave it for the next reader: closed stays drained
            return None
        return item  # type: ignore[no-any-return]

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting up to ``timeout`` seconds (forever when ``None``).

        :returns: ``None`` on timeout, or when the watcher is closed and drained.
        """
        if timeout is not None and timeout <= 0:
            return self._take(False, None)
        return self._take(True, timeout)

    def get_nowait(self) -> Event | None:
        """The next buffered event, or ``None`` when nothing is buffered."""
        return self._take(False, None)

    def __iter__(self) -> Iterator[Event]:
        while (event := self.get()) is not None:
            yield event

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        loop = asyncio.get_running_loop()
        while True:
            event = self._take(False, None)
            if event is not None:
                return event
            if self._closed:
                raise StopAsyncIteration
            future: asyncio.Future[None] = loop.create_future()
            waiter = (loop, future)
            self._waiters.append(waiter)
            try:
                # Checked after registering, so an event put in between is never missed.
                if self._queue.qsize() == 0:
                    await future
            finally:
                with contextlib.suppress(ValueError):  # already swapped out by a wake-up
                    self._waiters.remove(waiter)

    def close(self) -> None:
        """Stop delivery (same as ``store.unwatch(watcher)``); idempotent."""
        self._unwatch(self)

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


Callback = Callable[[Event], None]


class EventHub:
    """Routes committed events to watchers (through the index) and to callbacks.

    ``active`` is False while nobody listens, so writers skip building events at all.
    """

    def __init__(
        self, delivery_lock: threading.RLock | None = None, gate: Gate | None = None
    ) -> None:
        self.active = False
        # The gate lets a write run without the lock only when no watcher or callback wants
        # its event (it asks this hub); a registration waits for the writes in flight, so
        # every write that ends after it returns has seen the new watcher or callback.
        self._gate = gate
        if gate is not None:
            gate.listener = self
        self.callbacks: tuple[Callback, ...] = ()
        # Held by whoever delivers (the store's lock); closing a watcher takes it too, so no
        # event can slip into a watcher after it is closed, without a lock in every Watcher.
        self._delivery_lock = delivery_lock if delivery_lock is not None else threading.RLock()
        self._index = WatcherIndex()
        #: the index's matcher: ``match(group, key, whole_group)`` -> watchers reached
        self.match = self._index.match
        self._watchers: set[Watcher] = set()
        self._lock = threading.Lock()  # guards registration only, never held while delivering
        self._closed = False  # set by close_all(): no watcher registers after it

    def _refresh(self) -> None:
        self.active = bool(self._watchers or self.callbacks)

    def _settle(self) -> None:
        """After a registration: wait for the writes that passed the gate before it."""
        gate = self._gate
        if gate is not None:
            gate.shut(writes_only=True)
            gate.reopen(writes_only=True)

    def watch(
        self, group: str, key: str, buffer: int, namespace: str | None = None
    ) -> Watcher | None:
        """A registered watcher, or ``None`` once :meth:`close_all` has run."""
        watcher = Watcher(group, key, buffer, self.unwatch, namespace)
        return watcher if self.add(watcher) else None

    def add(self, watcher: Watcher) -> bool:
        """Register ``watcher`` (made with ``unwatch=self.unwatch``); False once closed."""
        with self._lock:
            if self._closed:
                return False
            self._watchers.add(watcher)
            self._index.add(watcher)
            self._refresh()
        self._settle()
        return True

    def unwatch(self, watcher: Watcher) -> None:
        with self._lock:
            if watcher in self._watchers:
                self._watchers.discard(watcher)
                self._index.remove(watcher)
                self._refresh()
        with self._delivery_lock:
            watcher._close()

    def on_change(self, callback: Callback) -> Callable[[], None]:
        # A unique token so the same function registered twice is two registrations.
        entry = _CallbackEntry(callback)
        with self._lock:
            self.callbacks = (*self.callbacks, entry)
            self._refresh()
        self._settle()

        def unregister() -> None:
            with self._lock:
                self.callbacks = tuple(c for c in self.callbacks if c is not entry)
                self._refresh()

        return unregister

    def to_watchers(self, events: Iterable[Event]) -> None:
        match = self._index.match
        for event in events:
            for watcher in match(event.group, event.key, event.type is EventType.DELETE_GROUP):
                watcher._offer(event)

    def publish(self, kind: EventType, group: str, key: str, value: str) -> Event | None:
        """Deliver one committed change to its watchers; return its Event if callbacks need it.

        NOTE: matching comes first and the Event is built only when someone receives it, so a
        write costs next to nothing extra however many non-matching watchers exist.
        """
        watchers = self._index.match(group, key, kind is EventType.DELETE_GROUP)
        callbacks = self.callbacks
        if not watchers and not callbacks:
            return None
        event = Event(kind, group, key, value, time.time())
        for watcher in watchers:
            watcher._offer(event)
        return event if callbacks else None

    def to_callbacks(self, events: Iterable[Event]) -> None:
        for event in events:
            for callback in self.callbacks:
                try:
                    callback(event)
                except (Exception, SystemExit):  # a callback's sys.exit() is not the writer's
                    logger.exception("gostore: on_change callback %r failed on %s", callback, event)

    def after_fork(self, delivery_lock: threading.RLock, gate: Gate | None = None) -> None:
        """In a forked child: fresh locks, since a parent thread may have held them at fork."""
        self._delivery_lock = delivery_lock
        self._lock = threading.Lock()
        self._gate = gate

    def close_all(self) -> None:
        with self._lock:
            self._closed = True
            watchers, self._watchers = self._watchers, set()
            self._index = WatcherIndex()
            self.match = self._index.match
            self.callbacks = ()
            self._refresh()
        with self._delivery_lock:
            for watcher in watchers:
                watcher._close()


class _CallbackEntry:
    __slots__ = ("callback",)

    def __init__(self, callback: Callback) -> None:
        self.callback = callback

    def __call__(self, event: Event) -> None:
        self.callback(event)

    def __repr__(self) -> str:
        return repr(self.callback)
