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
import inspect
import itertools
import os
import queue
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from .errors import StoreError
from .events import Event, Watcher, logger
from .scope import QuotaConfig, ScopedStore
from .store import Store
from .transaction import Transaction

__all__ = ("AsyncScopedStore", "AsyncStore", "AsyncTransaction")

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
_F = TypeVar("_F", bound="_Facade")

#: futures completed in one hand-off at most; bounds the wait of the first caller in a batch
_BATCH = 256
#: items an async iterator fetches per trip to the worker
_CHUNK = 512

# A queued call is ``(future or None, function, args, kwargs or None)``. These functions are
# markers the worker recognises instead of calling them.


def _BEGIN(*_: object) -> None:  # (enter the transaction, its queue): serve it until _END
    raise AssertionError("marker")  # pragma: no cover


def _END(*_: object) -> None:  # (rollback: bool,): close the transaction being served
    raise AssertionError("marker")  # pragma: no cover


def _EXIT(*_: object) -> None:  # the worker thread ends
    raise AssertionError("marker")  # pragma: no cover


_Call = tuple[
    "asyncio.Future[Any] | None", Callable[..., Any], tuple[Any, ...], "dict[str, Any] | None"
]
_Done = tuple["asyncio.Future[Any]", bool, Any]
_Note = tuple[Callable[[Event], Any], Event]


class _Rollback(Exception):
    """Thrown into a synchronous transaction to roll it back (the caller's own exception stays
    in the event loop's thread)."""


class _Worker:
    """The thread that runs one store's calls, and the loop it reports back to."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        #: open transactions, innermost last: (task that opened it, its queue)
        self.tx_stack: list[tuple[asyncio.Task[Any] | None, queue.SimpleQueue[_Call]]] = []
        #: set on the loop's thread once the store is closed and nothing more is queued
        self.exited = False
        self._done: list[_Done] = []
        self._notes: list[_Note] = []
        self._tasks: set[asyncio.Task[Any]] = set()  # running coroutine callbacks
        #: resolved once the thread has ended
        self.finished: asyncio.Future[None] = loop.create_future()
        self.thread = threading.Thread(target=self._main, name="gostore-aio", daemon=True)
        self.thread.start()

    def route(self) -> queue.SimpleQueue[_Call]:
        """The queue for a call made now: the open transaction's if this task opened it."""
        stack = self.tx_stack
        if stack:
            try:
                task = asyncio.current_task()
            except RuntimeError:  # no running loop (an async generator finalised late)
                task = None
            if stack[-1][0] is task:
                return stack[-1][1]
        return self.calls

    def stop(self) -> None:
        """Let the thread end once it has run what is queued (call on the loop's thread)."""
        if not self.exited:
            self.exited = True
            self.calls.put((None, _EXIT, (), None))

    # -- the worker thread ----------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._serve(self.calls)
        finally:
            self._flush()
            try:
                self.loop.call_soon_threadsafe(_resolve, self.finished)
            except RuntimeError:  # the loop is closed
                pass

    def _serve(self, calls: queue.SimpleQueue[_Call]) -> _Call:
        """Run ``calls`` until an _END or _EXIT item, which is returned."""
        done = self._done
        get = calls.get
        get_nowait = calls.get_nowait
        while True:
            try:
                item = get_nowait()
            except queue.Empty:
                self._flush()  # about to sleep: hand back everything finished so far
                item = get()
            future, fn, args, kwargs = item
            if fn is _END or fn is _EXIT:
                return item
            if future is not None and future.cancelled():
                continue  # not started, so dropped whole
            if fn is _BEGIN:
                end = self._transaction(future, *args)
                if end is not None:
                    return end
                continue
            try:
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except BaseException as exc:  # handed to the awaiting task, whatever it is
                if future is None:
                    logger.exception("gostore: asyncio call %r failed", fn)
                else:
                    done.append((future, False, exc))
            else:
                if future is not None:
                    done.append((future, True, result))
            if len(done) >= _BATCH:
                self._flush()

    def _transaction(
        self,
        future: asyncio.Future[Any] | None,
        enter: Callable[[], Any],
        calls: queue.SimpleQueue[_Call],
    ) -> _Call | None:
        """Open a synchronous transaction here, serve its queue, close it on _END.

        Returns an _EXIT item met while serving (the thread must end), else None.
        """
        try:
            manager = enter()
            tx = manager.__enter__()
        except BaseException as exc:
            if future is not None:
                self._done.append((future, False, exc))
            return None
        if future is not None:
            self._done.append((future, True, tx))
        end = self._serve(calls)
        finished, fn, args, _ = end
        rollback = fn is _EXIT or bool(args[0])
        try:
            if rollback:
                manager.__exit__(_Rollback, _Rollback(), None)
            else:
                manager.__exit__(None, None, None)
        except BaseException as exc:
            if finished is not None and fn is _END:
                self._done.append((finished, False, exc))
        else:
            if finished is not None and fn is _END:
                self._done.append((finished, True, None))
        return end if fn is _EXIT else None

    def note(self, callback: Callable[[Event], Any], event: Event) -> None:
        """An on_change relay: run ``callback(event)`` on the loop, before the writer resumes."""
        if threading.get_ident() == self.thread.ident:
            self._notes.append((callback, event))
            return
        try:  # written by another thread (the purge, or a synchronous user of the Store)
            self.loop.call_soon_threadsafe(self._dispatch, callback, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    def _flush(self) -> None:
        if not self._done and not self._notes:
            return
        # Copied and cleared, not swapped: _serve keeps a reference to these lists.
        done = self._done.copy()
        self._done.clear()
        notes = self._notes.copy()
        self._notes.clear()
        try:
            self.loop.call_soon_threadsafe(self._complete, done, notes)
        except RuntimeError:  # the loop is closed: nobody awaits these futures any more
            pass

    # -- the event loop's thread ----------------------------------------------------------------
    def _complete(self, done: list[_Done], notes: list[_Note]) -> None:
        for callback, event in notes:
            self._dispatch(callback, event)
        for future, ok, value in done:
            if future.done():  # cancelled while its call ran; the call finished anyway
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _dispatch(self, callback: Callable[[Event], Any], event: Event) -> None:
        try:
            result = callback(event)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result, loop=self.loop)
                self._tasks.add(task)
                task.add_done_callback(self._callback_done)
        except Exception:
            logger.exception("gostore: on_change callback %r failed on %s", callback, event)

    def _callback_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "gostore: on_change coroutine %r failed", task.get_coro(), exc_info=task.exception()
            )


def _open_iterator(
    method: Callable[..., Iterator[T]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Iterator[T], list[T]]:
    """Runs on the worker: the synchronous iterator and its first chunk, in one trip."""
    iterator = iter(method(*args, **kwargs))
    return iterator, list(itertools.islice(iterator, _CHUNK))


def _next_chunk(iterator: Iterator[T]) -> list[T]:
    return list(itertools.islice(iterator, _CHUNK))


def _close_iterator(iterator: Iterator[Any]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


# -- the method table's generators ---------------------------------------------------------------
def _coroutine(
    method: Callable[Concatenate[Any, P], R],
) -> Callable[Concatenate[_F, P], Coroutine[Any, Any, R]]:
    """An awaitable twin of the synchronous ``method``, run on the store's worker."""
    name = method.__name__

    async def call(self: _F, /, *args: P.args, **kwargs: P.kwargs) -> R:
        calls = self._calls(name)
        fn = getattr(self._target, name)
        if calls is None:  # closed or ended: the synchronous object raises, without waiting
            return fn(*args, **kwargs)  # type: ignore[no-any-return]
        future = self._loop.create_future()
        calls.put((future, fn, args, kwargs))
        return await future  # type: ignore[no-any-return]

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


def _iterator(
    method: Callable[Concatenate[Any, P], Iterator[T]],
) -> Callable[Concatenate[_F, P], AsyncIterator[T]]:
    """An async-iterator twin of ``method``; its errors (NotFoundError...) come at the first
    ``__anext__``. Items are fetched from the worker a chunk at a time."""
    name = method.__name__

    async def call(self: _F, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        fn = getattr(self._target_for(name), name)
        iterator, chunk = await self._run(name, _open_iterator, fn, args, kwargs)
        exhausted = len(chunk) < _CHUNK
        try:
            while True:
                for item in chunk:
                    yield item
                if exhausted:
                    return
                chunk = await self._run(name, _next_chunk, iterator)
                exhausted = len(chunk) < _CHUNK
        finally:
            if not exhausted:
                self._fire(_close_iterator, iterator)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


class _Facade:
    """What the generated methods need: the synchronous target, the loop, the queue to use."""

    _target: Any
    _loop: asyncio.AbstractEventLoop
    _worker: _Worker | None
    _prefix = "store"

    def _calls(self, name: str) -> queue.SimpleQueue[_Call] | None:
        """The queue for a call now, or None to call the synchronous object directly."""
        worker = self._worker
        if worker is None:
            raise StoreError.at(
                f"{self._prefix}.{name}",
                "the store is not open: use 'async with AsyncStore(...)' or "
                "'await AsyncStore.open(...)'",
            )
        if worker.exited:
            return None
        return worker.route()

    def _target_for(self, name: str) -> Any:
        self._calls(name)  # the not-open error, raised here rather than as an AttributeError
        return self._target

    async def _run(self, name: str, fn: Callable[..., R], *args: Any) -> R:
        calls = self._calls(name)
        if calls is None:
            return fn(*args)
        future: asyncio.Future[R] = self._loop.create_future()
        calls.put((future, fn, args, None))
        return await future

    def _fire(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the worker, in order with this task's calls, without waiting."""
        calls = self._calls(fn.__name__)
        if calls is None:
            fn(*args)
        else:
            calls.put((None, fn, args, None))


class _TransactionFacade(_Facade):
    """A facade bound to one open transaction's queue."""

    _queue: queue.SimpleQueue[_Call]
    _ended: bool = False

    def _calls(self, name: str) -> queue.SimpleQueue[_Call] | None:
        return None if self._ended else self._queue


class _TransactionContext(Generic[T]):
    """``async with``: enters the synchronous transaction on the worker and serves it there."""

    def __init__(
        self,
        owner: _Facade,
        name: str,
        enter: Callable[[], Any],
        wrap: Callable[[Any, queue.SimpleQueue[_Call]], T],
    ) -> None:
        self._owner = owner
        self._name = name
        self._enter = enter
        self._wrap = wrap
        self._queue: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._facade: T | None = None

    async def __aenter__(self) -> T:
        if self._facade is not None:
            raise StoreError.at(f"{self._owner._prefix}.{self._name}", "already entered")
        owner = self._owner
        calls = owner._calls(self._name)
        if calls is None:
            if isinstance(owner, _TransactionFacade):
                raise StoreError.at(f"{owner._prefix}.{self._name}", "the transaction has ended")
            with self._enter():  # the store is closed: the synchronous API raises its error
                pass
            raise AssertionError("a closed store opened a transaction")  # pragma: no cover
        future: asyncio.Future[Any] = owner._loop.create_future()
        calls.put((future, _BEGIN, (self._enter, self._queue), None))
        try:
            sync_tx = await future
        except asyncio.CancelledError:
            # The worker may have opened it already; then this ends it. Otherwise this queue
            # is never served and the item is dropped with it.
            self._queue.put((None, _END, (True,), None))
            raise
        worker = owner._worker
        assert worker is not None
        worker.tx_stack.append((asyncio.current_task(), self._queue))
        self._facade = self._wrap(sync_tx, self._queue)
        return self._facade

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        worker = self._owner._worker
        assert worker is not None and self._facade is not None
        stack = worker.tx_stack
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][1] is self._queue:
                del stack[i]
                break
        self._facade._ended = True  # type: ignore[attr-defined]
        future: asyncio.Future[None] = self._owner._loop.create_future()
        # Queued before any await: even if this task is cancelled now, the worker ends the
        # transaction (an _END is never dropped).
        self._queue.put((future, _END, (exc_type is not None,), None))
        await future


class AsyncTransaction(_TransactionFacade):
    """``tx`` in ``async with store.transaction() as tx``: every read and write method of
    :class:`gostore.Transaction`, awaitable; valid only inside its block."""

    _prefix = "transaction"

    def __init__(
        self, tx: Transaction, worker: _Worker, calls: queue.SimpleQueue[_Call]
    ) -> None:
        self._target = tx
        self._worker = worker
        self._loop = worker.loop
        self._queue = calls

    def __repr__(self) -> str:
        return f"<gostore.aio.AsyncTransaction {'ended' if self._ended else 'open'}>"

    get = _coroutine(Transaction.get)
    exists = _coroutine(Transaction.exists)
    count = _coroutine(Transaction.count)
    count_all = _coroutine(Transaction.count_all)
    get_all = _coroutine(Transaction.get_all)
    get_page = _coroutine(Transaction.get_page)
    groups = _coroutine(Transaction.groups)
    render = _coroutine(Transaction.render)
    get_many = _coroutine(Transaction.get_many)
    set = _coroutine(Transaction.set)
    set_with_ttl = _coroutine(Transaction.set_with_ttl)
    set_many = _coroutine(Transaction.set_many)
    delete = _coroutine(Transaction.delete)
    delete_group = _coroutine(Transaction.delete_group)
    delete_prefix = _coroutine(Transaction.delete_prefix)
    purge_expired = _coroutine(Transaction.purge_expired)
    all = _iterator(Transaction.all)
    groups_iter = _iterator(Transaction.groups_iter)
    get_split = _iterator(Transaction.get_split)
    get_fields = _iterator(Transaction.get_fields)


class AsyncScopedStore(_Facade):
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

    get = _coroutine(ScopedStore.get)
    exists = _coroutine(ScopedStore.exists)
    count = _coroutine(ScopedStore.count)
    get_all = _coroutine(ScopedStore.get_all)
    get_page = _coroutine(ScopedStore.get_page)
    render = _coroutine(ScopedStore.render)
    get_many = _coroutine(ScopedStore.get_many)
    count_all = _coroutine(ScopedStore.count_all)
    groups = _coroutine(ScopedStore.groups)
    set = _coroutine(ScopedStore.set)
    set_with_ttl = _coroutine(ScopedStore.set_with_ttl)
    set_many = _coroutine(ScopedStore.set_many)
    delete = _coroutine(ScopedStore.delete)
    delete_group = _coroutine(ScopedStore.delete_group)
    delete_prefix = _coroutine(ScopedStore.delete_prefix)
    purge_expired = _coroutine(ScopedStore.purge_expired)
    all = _iterator(ScopedStore.all)
    groups_iter = _iterator(ScopedStore.groups_iter)
    get_split = _iterator(ScopedStore.get_split)
    get_fields = _iterator(ScopedStore.get_fields)

    def transaction(self) -> _TransactionContext[AsyncScopedStore]:
        """``async with scoped.transaction() as tx``: a transaction seen through the namespace
        and quota; ``tx`` is an :class:`AsyncScopedStore` valid inside the block."""
        store = self._store
        scoped = self._target

        def wrap(sync: ScopedStore, calls: queue.SimpleQueue[_Call]) -> AsyncScopedStore:
            return _ScopedTransaction(store, sync, calls)

        return _TransactionContext(self, "transaction", scoped.transaction, wrap)

    def watch(
        self, group: str, key: str, *, buffer: int = 16, since: int | None = None
    ) -> Watcher:
        """As :meth:`gostore.ScopedStore.watch`; read the Watcher with ``async for``."""
        watcher: Watcher = self._target.watch(group, key, buffer=buffer, since=since)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        """As :meth:`AsyncStore.unwatch`."""
        self._store.unwatch(watcher)


class _ScopedTransaction(AsyncScopedStore, _TransactionFacade):
    """The ``tx`` of ``AsyncScopedStore.transaction()``: a scoped view on the open transaction."""

    def __init__(self, store: AsyncStore, scoped: ScopedStore, calls: queue.SimpleQueue[_Call]):
        super().__init__(store, scoped)
        self._queue = calls

    def _calls(self, name: str) -> queue.SimpleQueue[_Call] | None:
        return _TransactionFacade._calls(self, name)


class AsyncStore(_Facade):
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
        self._worker: _Worker | None = None
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
        worker = _Worker(loop)
        self._worker = worker
        self._loop = loop
        target, options = self._args
        future: asyncio.Future[Store] = loop.create_future()
        worker.calls.put((future, Store, (target,), options))
        try:
            self._target = await asyncio.shield(future)
        except BaseException:
            self._worker = None
            # Cancelled while opening: close what the worker opens anyway, then let it end.
            future.add_done_callback(lambda f: _discard(worker, f))
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
            worker.calls.put((None, _EXIT, (), None))

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
            self._closing.add_done_callback(lambda f: _stop_if_closed(worker, f))
        # Shielded: cancelling the caller does not stop the close, already queued.
        closing = self._closing
        try:
            await asyncio.shield(closing)
        except StoreError:
            self._closing = None
            raise
        await asyncio.shield(worker.finished)

    get = _coroutine(Store.get)
    exists = _coroutine(Store.exists)
    set = _coroutine(Store.set)
    set_with_ttl = _coroutine(Store.set_with_ttl)
    delete = _coroutine(Store.delete)
    delete_group = _coroutine(Store.delete_group)
    delete_prefix = _coroutine(Store.delete_prefix)
    count = _coroutine(Store.count)
    count_all = _coroutine(Store.count_all)
    get_all = _coroutine(Store.get_all)
    get_page = _coroutine(Store.get_page)
    groups = _coroutine(Store.groups)
    render = _coroutine(Store.render)
    purge_expired = _coroutine(Store.purge_expired)
    set_many = _coroutine(Store.set_many)
    get_many = _coroutine(Store.get_many)
    import_entries = _coroutine(Store.import_entries)
    all = _iterator(Store.all)
    groups_iter = _iterator(Store.groups_iter)
    get_split = _iterator(Store.get_split)
    get_fields = _iterator(Store.get_fields)
    export_entries = _iterator(Store.export_entries)
    changes = _iterator(Store.changes)
    last_seq = _coroutine(Store.last_seq)

    def transaction(self) -> _TransactionContext[AsyncTransaction]:
        """``async with store.transaction() as tx``: ``tx`` has the awaitable read and write
        methods; leaving the block commits, an exception rolls back. The whole transaction
        runs on the worker; other tasks' calls wait until it ends, while this task's calls on
        the store join it."""
        worker = self._worker
        target = self._target

        def enter() -> Any:
            assert target is not None
            return target.transaction()

        def wrap(tx: Transaction, calls: queue.SimpleQueue[_Call]) -> AsyncTransaction:
            assert worker is not None
            return AsyncTransaction(tx, worker, calls)

        self._calls("transaction")
        return _TransactionContext(self, "transaction", enter, wrap)

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


def _discard(worker: _Worker, future: asyncio.Future[Store]) -> None:
    if not future.cancelled() and future.exception() is None:
        worker.calls.put((None, future.result().close, (), None))
    worker.stop()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _stop_if_closed(worker: _Worker, future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is None:
        worker.stop()
