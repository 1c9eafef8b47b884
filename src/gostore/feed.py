"""The change feed's delivery side: numbering a store's own events, delivering other
connections' changes from a background thread, replaying recorded changes.

The engine records every committed change with a ``seq`` (see
:class:`~gostore.engine.FeedEngine`). A store delivers its own writes itself, synchronously
as without the feed, each event numbered with the ``seq`` of its row. Changes recorded by other
connections are read by a background thread on a connection of its own, and delivered under
the store's lock; ``cursor`` (every other connection's change up to it is delivered) moves
only under that lock, so each such change is delivered once, whichever thread reads it.

Per-key order: before delivering its own events, a writer that learns another connection has
committed since it last looked reads those changes first and delivers everything in ``seq``
order, so a foreign change that committed before an own write is never delivered after it.
A transaction's events are delivered after its commit, and the store's lock is not held across
the commit on every engine (PostgreSQL's is free inside a transaction), so the transaction
announces them first (:meth:`Feed.committing`): whoever is about to deliver a later change
waits for that commit to end and delivers them first.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import TYPE_CHECKING, cast

from ._accel import WatcherIndex
from .engine import DatabaseError, Engine, FeedEngine, FeedListener, FeedRow
from .errors import ChangesExpiredError, StoreError
from .events import Event, EventHub, EventType, Watcher, logger

if TYPE_CHECKING:
    from ._core import Core

__all__ = ("Commit", "Feed", "ReplayWatcher", "check_seq", "feed_off")

PAGE = 512  # changes read per step
_BY_SEQ = attrgetter("seq")
_NONE: list[Event] = []
_KINDS = tuple(EventType)

#: how often the background thread looks for other connections' commits: fast while changes
#: arrive, slower when nothing happened for a while (an idle store costs almost no CPU)
POLL_BUSY = 0.001
POLL_IDLE = 0.006
_IDLE_AFTER = 0.2  # seconds without a change before polling slows down


def feed_off(op: str) -> StoreError:
    return StoreError.at(
        op, "the change feed is off; open the store with Store(path, change_feed=True)"
    )


def check_seq(op: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: {name} must be int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{op}: {name} must be >= 0, got {value}")


class Commit:
    """A transaction's numbered events from just before its commit until they are delivered."""

    __slots__ = ("committed", "ending", "events", "feed", "first", "sent")

    def __init__(self, feed: Feed, events: list[Event]) -> None:
        self.feed = feed
        self.events = events
        self.first = events[0].seq  # a transaction's events are numbered in order
        # NOTE: a lock held until the commit ends, cheaper to make than a threading.Event
        self.ending = threading.Lock()
        self.ending.acquire()
        self.committed = False
        self.sent = False  # delivered to watchers, by whichever thread came first

    def end(self, committed: bool) -> None:
        """The commit is over (the transaction's thread, no lock)."""
        self.committed = committed
        self.ending.release()

    def wait(self) -> None:
        """Until :meth:`end` has run."""
        with self.ending:
            pass

    def deliver(self) -> list[Event]:
        """After :meth:`end`, lock held: see :meth:`Feed.committed`."""
        return self.feed.committed(self)


def to_events(rows: list[FeedRow]) -> list[Event]:
    return [Event(_KINDS[r.kind], r.group, r.key, r.value, r.timestamp, r.seq) for r in rows]


class Feed:
    """One store's side of the feed: numbering, catching up, the background reader."""

    def __init__(self, core: Core, engine: FeedEngine, retention: float) -> None:
        self.core = core
        self.engine = engine
        self.hub: EventHub = core.hub
        self.retention = retention
        #: every change of another connection with ``seq <= cursor`` has been delivered
        self.cursor = engine.feed_last_seq()
        #: transactions between their commit and the delivery of their events
        self._commits: list[Commit] = []
        self._listener: FeedListener | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- the writer's side (the store's lock held) ----------------------------------------------
    def stamp(self, events: list[Event]) -> list[Event]:
        """Number the events of the write just made: its rows are the newest recorded."""
        first = self.engine.feed_written() - len(events) + 1
        return [event._replace(seq=first + i) for i, event in enumerate(events)]

    def send(self, events: list[Event]) -> list[Event]:
        """Deliver committed own ``events`` to watchers, after any earlier foreign changes not
        yet delivered; return the events callbacks still need."""
        if self.engine.feed_pending():
            foreign = self._catch_up()
            if foreign:
                events = list(heapq.merge(foreign, events, key=_BY_SEQ))
        self.hub.to_watchers(self._after_commits(events) if self._commits else events)
        return events if self.hub.callbacks else _NONE

    def committing(self, events: list[Event]) -> Commit:
        """Announce a transaction's numbered ``events`` just before its commit (any thread, no
        lock): no change with a later ``seq`` is delivered before them. The transaction's
        thread then calls :meth:`Commit.end` whatever the commit did (it needs no lock, and the
        threads waiting for it hold the store's), and :meth:`Commit.deliver` with the lock."""
        commit = Commit(self, events)
        self._commits.append(commit)  # atomic under the GIL
        return commit

    def committed(self, commit: Commit) -> list[Event]:
        """Deliver an ended transaction's events unless a later change did (lock held); return
        the events its callbacks still need (they run in the transaction's thread)."""
        if commit in self._commits:
            self._commits.remove(commit)
        if not commit.committed:
            return _NONE
        if commit.sent:
            return commit.events if self.hub.callbacks else _NONE
        commit.sent = True
        return self.send(commit.events)

    def _after_commits(self, events: list[Event]) -> list[Event]:
        """``events`` (in ``seq`` order) with, before them, the events of every transaction
        that commits ahead of them but has not delivered yet (lock held)."""
        if not events:
            return events
        last = events[-1].seq
        ahead = [commit for commit in self._commits if commit.first < last]
        for commit in ahead:
            commit.wait()  # short: a change after it exists, so the commit is over
            self._commits.remove(commit)
            if commit.committed and not commit.sent:
                commit.sent = True
                events = list(heapq.merge(commit.events, events, key=_BY_SEQ))
        return events

    def _catch_up(self) -> list[Event]:
        found: list[Event] = []
        while True:
            rows, through = self.engine.feed_others(self.cursor, PAGE)
            found += self._take(rows, through)
            if len(rows) < PAGE:
                return found

    def _take(self, rows: list[FeedRow], through: int) -> list[Event]:
        """The events of ``rows`` (other connections' changes, complete through ``through``)
        not delivered yet."""
        cursor = self.cursor
        self.cursor = max(cursor, through)
        if rows and rows[0].seq <= cursor:
            rows = [row for row in rows if row.seq > cursor]
        return to_events(rows)

    # -- retention ------------------------------------------------------------------------------
    def trim(self) -> int:
        """Remove the changes older than the retention (the purge calls it, lock held)."""
        return self.engine.feed_trim(int((time.time() - self.retention) * 1000))

    def check_since(self, op: str, since: int) -> None:
        trimmed = self.engine.feed_trimmed()
        if since < trimmed:
            raise ChangesExpiredError.at(
                op,
                f"the changes after seq {since} are no longer kept (the feed keeps changes "
                f"for {self.retention:g} s; the oldest kept comes after seq {trimmed}); "
                "read the current data again and continue from store.last_seq()",
            )

    # -- reading the record ---------------------------------------------------------------------
    def changes(self, op: str, since: int, limit: int | None) -> Iterator[Event]:
        """The recorded changes after ``since``; expiry is checked at the call."""
        with self.core.lock:
            self.core.ready(op)
            self.check_since(op, since)
        return self._iter_changes(op, since, limit)

    def _iter_changes(self, op: str, since: int, limit: int | None) -> Iterator[Event]:
        left = limit
        while left is None or left > 0:
            step = PAGE if left is None else min(PAGE, left)
            with self.core.lock:
                self.core.ready(op)
                try:
                    rows = self.engine.feed_read(since, step)
                    # the purge may have trimmed past where this reader is
                    self.check_since(op, since)
                except DatabaseError as exc:
                    raise self.core.failure(op, exc) from exc.__cause__
            yield from to_events(rows)
            if len(rows) < step:
                return
            since = rows[-1].seq
            if left is not None:
                left -= len(rows)

    # -- the background reader ------------------------------------------------------------------
    def start(self, name: str) -> None:
        """Start delivering other connections' changes (not for an in-memory store)."""
        self._listener = listener = self.engine.feed_listen()
        self._thread = threading.Thread(target=self._run, args=(listener,), name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the background reader (idempotent; from a callback it runs, it just ends)."""
        self._stopping = True
        listener, thread = self._listener, self._thread
        if listener is None or thread is None:
            return
        listener.wake()
        if thread is not threading.current_thread():
            thread.join()
            self._listener = None
            listener.close()

    def abandon(self) -> None:
        """In a forked child: the thread is gone; its connection is the parent's."""
        self._stopping = True
        if self._listener is not None:
            _INHERITED.append(self._listener)
        self._listener = self._thread = None

    def _run(self, listener: FeedListener) -> None:
        interval = POLL_IDLE
        quiet_since = time.monotonic()
        try:
            while not self._stopping:
                try:
                    changed = listener.wait(interval)
                    if changed and not self._stopping:
                        self._poll(listener)
                except DatabaseError as exc:  # e.g. a file locked for longer than the timeout
                    logger.warning("gostore: change feed reader of %r: %s", self.engine.target, exc)
                    time.sleep(POLL_IDLE)
                except Exception:  # keep delivering; the next poll may succeed
                    logger.exception("gostore: change feed reader of %r failed", self.engine.target)
                    time.sleep(POLL_IDLE)
                now = time.monotonic()
                if changed:
                    quiet_since = now
                    interval = POLL_BUSY
                elif now - quiet_since > _IDLE_AFTER:
                    interval = POLL_IDLE
        finally:
            if self._listener is None:  # stop() from a callback of this thread: close here
                listener.close()

    def _poll(self, listener: FeedListener) -> None:
        hub = self.hub
        while True:
            rows, through = listener.read(self.cursor, PAGE)
            with self.core.lock:
                if self.core.closed:
                    return
                events = self._take(rows, through)
                if events and hub.active:
                    hub.to_watchers(self._after_commits(events) if self._commits else events)
                callbacks = events if hub.callbacks else _NONE
            if callbacks:
                hub.to_callbacks(callbacks)
            if len(rows) < PAGE:
                return

    # -- watch(since=N) -------------------------------------------------------------------------
    def watch(
        self,
        op: str,
        group: str,
        key: str,
        buffer: int,
        since: int,
        namespace: str | None = None,
    ) -> ReplayWatcher:
        with self.core.lock:
            self.core.ready(op)
            self.check_since(op, since)
        watcher = ReplayWatcher(group, key, buffer, self.hub.unwatch, namespace, self, since)
        if not self.hub.add(watcher):
            raise self.core.closed_error(op)
        return watcher


_INHERITED: list[FeedListener] = []  # listeners inherited through fork(), never closed


class ReplayWatcher(Watcher):
    """A watcher that first replays the recorded changes after ``since``, then goes live.

    While it replays, live events are ignored: they are recorded, so the replay reads them
    too. It reads the record a page at a time as it is consumed, and goes live (under the
    store's lock, which every delivery holds) once it has read the newest change; from then
    on it takes only events numbered after the last one it replayed, so nothing is missed or
    seen twice. Replayed events never count as dropped; the buffer bounds live events only.
    """

    __slots__ = ("_feed", "_floor", "_match", "_replay")

    def __init__(
        self,
        group: str,
        key: str,
        buffer: int,
        unwatch: Callable[[Watcher], None],
        namespace: str | None,
        feed: Feed,
        since: int,
    ) -> None:
        super().__init__(group, key, buffer, unwatch, namespace)
        self._feed: Feed | None = feed  # None once live
        self._floor = since  # the newest seq replayed
        self._replay: deque[Event] = deque()
        index = WatcherIndex()
        index.add(self)
        self._match = index.match

    def _offer(self, event: Event) -> None:
        if self._feed is None and event.seq > self._floor:
            Watcher._offer(self, event)

    def _take(self, block: bool, timeout: float | None) -> Event | None:
        if self._feed is not None or self._replay:
            event = self._replayed()
            if event is not None:
                return event
        return Watcher._take(self, block, timeout)

    def _replayed(self) -> Event | None:
        """The next replayed event, or ``None`` once live (then the buffer takes over)."""
        while not self._replay:
            feed = self._feed
            if feed is None:
                return None
            op = "watcher.get"
            with feed.core.lock:
                if self._closed or feed.core.closed:
                    self._feed = None
                    return None
                try:
                    rows = feed.engine.feed_read(self._floor, PAGE)
                    feed.check_since(op, self._floor)
                except DatabaseError as exc:
                    raise feed.core.failure(op, exc) from exc.__cause__
                match = self._match
                for event in to_events(rows):
                    if match(event.group, event.key, event.type is EventType.DELETE_GROUP):
                        self._replay.append(event)
                if rows:
                    self._floor = rows[-1].seq
                if len(rows) < PAGE:
                    self._feed = None  # live from here: every later delivery has a larger seq
        return self._replay.popleft()

    async def __anext__(self) -> Event:
        if self._feed is not None or self._replay:
            # NOTE: reading the record waits for the store's lock, which an asyncio
            # transaction may hold while it waits for this very event loop.
            event = self._replay.popleft() if self._replay else None
            if event is None:
                event = await asyncio.to_thread(self._replayed)
            if event is not None:
                return event
        return await Watcher.__anext__(self)

    @property
    def replaying(self) -> bool:
        """True until the replay has reached the newest recorded change."""
        return self._feed is not None or bool(self._replay)


def start_feed(core: Core, engine: Engine, retention: float) -> Feed:
    """The change feed of a store that opened with it on; its thread runs on a file."""
    feed = Feed(core, cast(FeedEngine, engine), retention)
    # Every write takes the lock: the feed numbers a write's events by the seqs the latest
    # write recorded (feed_written), which holds only while writes take turns.
    engine.gate.shut(writes_only=True)
    if engine.shared:  # in memory no other connection exists
        try:
            feed.start(f"gostore-feed {engine.target}")
        except DatabaseError as exc:
            engine.close()
            raise StoreError.at("store.open", exc.reason) from exc.__cause__
    return feed
