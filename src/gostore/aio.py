"""gostore for asyncio: :class:`AsyncStore`, :class:`AsyncScopedStore` and async transactions.

Everything runs on the public API of :class:`gostore.Store`. Each ``AsyncStore`` owns one worker
thread that takes calls from a queue and runs them back to back; the event loop only queues a
call and awaits a future, so it never waits for SQLite or for the store's lock. The worker
completes futures in batches: one ``loop.call_soon_threadsafe`` for everything it finished
since the queue was last empty, instead of one thread hand-off per call.

Transactions run whole on the worker. While one is open, the worker serves only that
transaction's queue; calls from other tasks stay in the main queue until it ends, and calls
from the task that opened it (through the store, a scoped view, or ``tx``) join it, as a
thread's calls join its transaction in the synchronous API.

Cancellation never splits a call: a call the worker has started runs to completion (its result
is discarded); a call it has not started yet is dropped.
"""

from __future__ import annotations

import asyncio
import os
import queue
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from ._aio_facade import (
    Facade,
    TransactionContext,
    TransactionFacade,
    coroutine,
    discard,
    iterator,
    stop_if_closed,
)
from ._aio_worker import (
    EXIT,
    Call,
    Worker,
)
from ._core import Core, core_of
from ._types import now_ms
from .engine import AsyncReader, DatabaseError
from .errors import StoreError
from .events import Event, Watcher
from .scope import QuotaConfig, ScopedStore
from .store import Store
from .transaction import Transaction

__all__ = ("AsyncScopedStore", "AsyncStore", "AsyncTransaction")

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
_F = TypeVar("_F", bound="Facade")


class AsyncTransaction(TransactionFacade):
    """``tx`` in ``async with store.transaction() as tx``: every read and write method of
    :class:`gostore.Transaction`, awaitable; valid only inside its block."""

    _prefix = "transaction"

    def __init__(
        self, tx: Transaction, worker: Worker, calls: queue.SimpleQueue[Call]
    ) -> None:
        self._target = tx
        self._worker = worker
        self._loop = worker.loop
        self._queue = calls

    def __repr__(self) -> str:
        return f"<gostore.aio.AsyncTransaction {'ended' if self._ended else 'open'}>"

    get = coroutine(Transaction.get)
    exists = coroutine(Transaction.exists)
    count = coroutine(Transaction.count)
    count_all = coroutine(Transaction.count_all)
    get_all = coroutine(Transaction.get_all)
    get_page = coroutine(Transaction.get_page)
    groups = coroutine(Transaction.groups)
    render = coroutine(Transaction.render)
    get_many = coroutine(Transaction.get_many)
    incr = coroutine(Transaction.incr)
    add = coroutine(Transaction.add)
    compare_and_set = coroutine(Transaction.compare_and_set)
    pop = coroutine(Transaction.pop)
    touch = coroutine(Transaction.touch)
    ttl = coroutine(Transaction.ttl)
    set = coroutine(Transaction.set)
    set_with_ttl = coroutine(Transaction.set_with_ttl)
    set_many = coroutine(Transaction.set_many)
    delete = coroutine(Transaction.delete)
    delete_group = coroutine(Transaction.delete_group)
    delete_prefix = coroutine(Transaction.delete_prefix)
    purge_expired = coroutine(Transaction.purge_expired)
    all = iterator(Transaction.all)
    groups_iter = iterator(Transaction.groups_iter)
    get_split = iterator(Transaction.get_split)
    get_fields = iterator(Transaction.get_fields)


class AsyncScopedStore(Facade):
    """:class:`gostore.ScopedStore` for asyncio; from :meth:`AsyncStore.scoped`."""

    _prefix = "scoped"

    def __init__(self, store: AsyncStore, scoped: ScopedStore) -> None:
        self._store = store
        self._target = scoped
        self._worker = store._worker
        self._loop = store._loop

    @property
    def namespace(self) -> str:
        """The namespace, without the ``":"``."""
        return str(self._target.namespace)

    @property
    def quota(self) -> QuotaConfig | None:
        """The quota, or ``None``."""
        quota: QuotaConfig | None = self._target.quota
        return quota

    @property
    def store(self) -> AsyncStore:
        """The underlying :class:`AsyncStore`."""
        return self._store

    def __repr__(self) -> str:
        return f"<gostore.aio.AsyncScopedStore {self.namespace!r} quota={self.quota!r}>"

    get = coroutine(ScopedStore.get)
    exists = coroutine(ScopedStore.exists)
    count = coroutine(ScopedStore.count)
    get_all = coroutine(ScopedStore.get_all)
    get_page = coroutine(ScopedStore.get_page)
    render = coroutine(ScopedStore.render)
    get_many = coroutine(ScopedStore.get_many)
    incr = coroutine(ScopedStore.incr)
    add = coroutine(ScopedStore.add)
    compare_and_set = coroutine(ScopedStore.compare_and_set)
    pop = coroutine(ScopedStore.pop)
    touch = coroutine(ScopedStore.touch)
    ttl = coroutine(ScopedStore.ttl)
    count_all = coroutine(ScopedStore.count_all)
    groups = coroutine(ScopedStore.groups)
    set = coroutine(ScopedStore.set)
    set_with_ttl = coroutine(ScopedStore.set_with_ttl)
    set_many = coroutine(ScopedStore.set_many)
    delete = coroutine(ScopedStore.delete)
    delete_group = coroutine(ScopedStore.delete_group)
    delete_prefix = coroutine(ScopedStore.delete_prefix)
    purge_expired = coroutine(ScopedStore.purge_expired)
    all = iterator(ScopedStore.all)
    groups_iter = iterator(ScopedStore.groups_iter)
    get_split = iterator(ScopedStore.get_split)
    get_fields = iterator(ScopedStore.get_fields)

    def transaction(self) -> TransactionContext[AsyncScopedStore]:
        """``async with scoped.transaction() as tx``: a transaction seen through the namespace
        and quota; ``tx`` is an :class:`AsyncScopedStore` valid inside the block."""
        store = self._store
        scoped = self._target

        def wrap(sync: ScopedStore, calls: queue.SimpleQueue[Call]) -> AsyncScopedStore:
            return _ScopedTransaction(store, sync, calls)

        return TransactionContext(self, "transaction", scoped.transaction, wrap)

    def watch(
        self, group: str, key: str, *, buffer: int = 16, since: int | None = None
    ) -> Watcher:
        """As :meth:`gostore.ScopedStore.watch`; read the Watcher with ``async for``."""
        watcher: Watcher = self._target.watch(group, key, buffer=buffer, since=since)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        """As :meth:`AsyncStore.unwatch`."""
        self._store.unwatch(watcher)


class _ScopedTransaction(AsyncScopedStore, TransactionFacade):
    """The ``tx`` of ``AsyncScopedStore.transaction()``: a scoped view on the open transaction."""

    def __init__(self, store: AsyncStore, scoped: ScopedStore, calls: queue.SimpleQueue[Call]):
        super().__init__(store, scoped)
        self._queue = calls

    def _calls(self, name: str) -> queue.SimpleQueue[Call] | None:
        return TransactionFacade._calls(self, name)


class AsyncStore(Facade):
    """:class:`gostore.Store` for asyncio: the same methods, as coroutines.

    Open it with ``async with AsyncStore(target, **options) as store:`` or
    ``store = await AsyncStore.open(target, **options)`` (then ``await store.close()``);
    either way the database is opened on the store's worker thread, never on the loop.
    ``target`` and the options are those of :class:`gostore.Store`. The store belongs to the
    event loop that opened it.

    ``all``, ``groups_iter``, ``get_split`` and ``get_fields`` are async iterators;
    ``watch``, ``unwatch``, ``on_change`` and ``scoped`` are plain methods.
    """

    def __init__(self, target: str | os.PathLike[str] = ":memory:", **store_options: Any) -> None:
        self._args = (target, store_options)
        self._target: Store | None = None
        self._core: Core | None = None  # the target's, for get() on the loop's thread
        self._reads: AsyncReader | None = None  # PostgreSQL's reads on async connections
        self._worker: Worker | None = None
        self._closing: asyncio.Future[None] | None = None

    @classmethod
    async def open(
        cls, target: str | os.PathLike[str] = ":memory:", **store_options: Any
    ) -> AsyncStore:
        """Open a store without blocking the event loop."""
        store = cls(target, **store_options)
        await store._open()
        return store

    async def _open(self) -> None:
        if self._worker is not None:
            return
        loop = asyncio.get_running_loop()
        worker = Worker(loop)
        self._worker = worker
        self._loop = loop
        target, options = self._args
        future: asyncio.Future[Store] = loop.create_future()
        worker.calls.put((future, Store, (target,), options))
        try:
            self._target = await asyncio.shield(future)
            self._core = core_of(self._target)
            self._reads = self._core.engine.async_reads()
        except BaseException:
            self._worker = None
            # Cancelled while opening: close what the worker opens anyway, then let it end.
            future.add_done_callback(lambda f: discard(worker, f))
            raise

    async def __aenter__(self) -> AsyncStore:
        await self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __del__(self) -> None:
        worker = getattr(self, "_worker", None)
        store = getattr(self, "_target", None)
        if worker is not None and not worker.exited and store is not None:
            # Dropped without close(): the worker closes the store and ends.
            worker.calls.put((None, store.close, (), None))
            worker.exited = True
            worker.calls.put((None, EXIT, (), None))

    @property
    def path(self) -> str:
        """The database path, or ``":memory:"``."""
        if self._target is not None:
            return self._target.path
        return os.fspath(self._args[0])

    @property
    def closed(self) -> bool:
        """False only while the store is open."""
        return self._target is None or self._target.closed

    @property
    def store(self) -> Store:
        """The synchronous :class:`gostore.Store` underneath (for threads beside the loop)."""
        return self._sync("store")

    def __repr__(self) -> str:
        return f"<gostore.aio.AsyncStore {self.path!r}{' closed' if self.closed else ''}>"

    def _sync(self, name: str) -> Store:
        self._calls(name)
        assert self._target is not None
        return self._target

    async def close(self) -> None:
        """Close the store (as :meth:`gostore.Store.close`) and end its worker. Idempotent.

        It waits for calls queued before it, and for a transaction another task has open.
        """
        worker = self._worker
        if worker is None or worker.exited:
            return
        store = self._target
        assert store is not None
        calls = worker.route()
        if calls is not worker.calls:  # inside this task's transaction: Store.close() refuses
            await self._run("close", store.close)
            return
        if self._closing is None:
            self._closing = self._loop.create_future()
            calls.put((self._closing, store.close, (), None))
            self._closing.add_done_callback(lambda f: stop_if_closed(worker, f))
        # Shielded: cancelling the caller does not stop the close, already queued.
        closing = self._closing
        try:
            await asyncio.shield(closing)
        except StoreError:
            self._closing = None
            raise
        await asyncio.shield(worker.finished)
        reads, self._reads = self._reads, None
        if reads is not None:
            await reads.close()

    _queued_get = coroutine(Store.get)

    async def get(self, group: str, key: str) -> str:
        """As :meth:`gostore.Store.get`.

        In memory, a get that can run at once (no transaction open) runs on the loop's thread:
        about a microsecond, far less than the trip to the worker and back. On PostgreSQL it
        runs on one of the store's async connections (psycopg), beside other tasks' reads.
        Anything else (an open transaction in memory, the disk, an expired key's delete) goes
        to the worker as every other call.
        """
        core = self._direct()
        if core is not None:
            value = core.get_now("store.get", group, key)
            if value is not None:
                return value
            reads = self._reads
            if reads is not None and type(group) is str and type(key) is str:
                try:
                    row = await reads.get(group, key)
                except DatabaseError as exc:
                    raise core.failure("store.get", exc, group, key) from exc.__cause__
                except UnicodeEncodeError:
                    return await self._queued_get(group, key)  # it names the bad argument
                value = core.settle_get("store.get", group, key, row)
                if value is not None:
                    return value
        return await self._queued_get(group, key)

    _queued_exists = coroutine(Store.exists)

    async def exists(self, group: str, key: str) -> bool:
        """As :meth:`gostore.Store.exists` (on PostgreSQL, on an async connection as
        :meth:`get`)."""
        core, reads = self._direct(), self._reads
        if core is not None and reads is not None and type(group) is str and type(key) is str:
            try:
                return await reads.exists(group, key, now_ms())
            except DatabaseError as exc:
                raise core.failure("store.exists", exc, group, key) from exc.__cause__
            except UnicodeEncodeError:
                pass  # the worker's call names the bad argument
        return await self._queued_exists(group, key)

    def _direct(self) -> Core | None:
        """The core, when a call may bypass the worker: the store open, and the calling task
        not inside its own transaction (whose reads must see its writes)."""
        worker, core = self._worker, self._core
        if core is None or worker is None or worker.exited or core.closed:
            return None
        return core if worker.route() is worker.calls else None

    _queued_set = coroutine(Store.set)

    async def set(self, group: str, key: str, value: str) -> None:
        """As :meth:`gostore.Store.set`.

        In memory, a set nobody listens to that can run at once (no transaction open, no
        quota, no watcher or callback wanting the key) runs on the loop's thread, as
        :meth:`get` does; anything else goes to the worker.
        """
        core = self._direct()
        if core is not None and core.set_now(group, key, value, None):
            return
        await self._queued_set(group, key, value)
    set_with_ttl = coroutine(Store.set_with_ttl)
    delete = coroutine(Store.delete)
    delete_group = coroutine(Store.delete_group)
    delete_prefix = coroutine(Store.delete_prefix)
    count = coroutine(Store.count)
    count_all = coroutine(Store.count_all)
    get_all = coroutine(Store.get_all)
    get_page = coroutine(Store.get_page)
    groups = coroutine(Store.groups)
    render = coroutine(Store.render)
    purge_expired = coroutine(Store.purge_expired)
    set_many = coroutine(Store.set_many)
    get_many = coroutine(Store.get_many)
    incr = coroutine(Store.incr)
    add = coroutine(Store.add)
    compare_and_set = coroutine(Store.compare_and_set)
    pop = coroutine(Store.pop)
    touch = coroutine(Store.touch)
    ttl = coroutine(Store.ttl)
    backup = coroutine(Store.backup)
    check = coroutine(Store.check)
    checkpoint = coroutine(Store.checkpoint)
    stats = coroutine(Store.stats)
    vacuum = coroutine(Store.vacuum)
    import_entries = coroutine(Store.import_entries)
    all = iterator(Store.all)
    groups_iter = iterator(Store.groups_iter)
    get_split = iterator(Store.get_split)
    get_fields = iterator(Store.get_fields)
    export_entries = iterator(Store.export_entries)
    changes = iterator(Store.changes)
    last_seq = coroutine(Store.last_seq)

    def transaction(self) -> TransactionContext[AsyncTransaction]:
        """``async with store.transaction() as tx``: ``tx`` has the awaitable read and write
        methods; leaving the block commits, an exception rolls back. The whole transaction
        runs on the worker; other tasks' calls wait until it ends, while this task's calls on
        the store join it."""
        worker = self._worker
        target = self._target

        def enter() -> Any:
            assert target is not None
            return target.transaction()

        def wrap(tx: Transaction, calls: queue.SimpleQueue[Call]) -> AsyncTransaction:
            assert worker is not None
            return AsyncTransaction(tx, worker, calls)

        self._calls("transaction")
        return TransactionContext(self, "transaction", enter, wrap)

    def scoped(self, namespace: str, quota: QuotaConfig | None = None) -> AsyncScopedStore:
        """An :class:`AsyncScopedStore`, as :meth:`gostore.Store.scoped`."""
        return AsyncScopedStore(self, self._sync("scoped").scoped(namespace, quota))

    def watch(
        self, group: str, key: str, *, buffer: int = 16, since: int | None = None
    ) -> Watcher:
        """As :meth:`gostore.Store.watch`; read the Watcher with ``async for`` (a replay
        with ``since`` reads the record off the event loop).

        Stop it with :meth:`unwatch` (not ``Watcher.close()``, which may wait for the store).
        """
        return self._sync("watch").watch(group, key, buffer=buffer, since=since)

    def unwatch(self, watcher: Watcher) -> None:
        """Stop delivery to ``watcher`` and close it, after the calls already queued.

        A plain method that never waits: the worker closes the watcher next (a watcher's
        ``async for`` ends then), in order with this task's calls.
        """
        if not isinstance(watcher, Watcher):
            raise TypeError(f"store.unwatch: expected a Watcher, not {type(watcher).__name__}")
        worker = self._worker
        if worker is None or worker.exited:  # nothing can hold the store's lock any more
            watcher.close()
            return
        self._fire(watcher.close)

    def on_change(self, callback: Callable[[Event], Any]) -> Callable[[], None]:
        """Call ``callback(event)`` on the event loop after every committed change.

        ``callback`` may be a plain function or a coroutine function (its coroutine is
        scheduled as a task). For changes made through this store, plain callbacks run, and
        coroutine callbacks start, before the writer's ``await`` returns. A failure is logged
        on the ``gostore`` logger.

        :returns: an idempotent function that unregisters the callback.
        """
        store = self._sync("on_change")
        if not callable(callback):
            return store.on_change(callback)  # raises the synchronous API's TypeError
        worker = self._worker
        assert worker is not None
        note = worker.note

        def relay(event: Event) -> None:
            note(callback, event)

        return store.on_change(relay)


