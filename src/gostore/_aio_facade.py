"""How gostore.aio turns the synchronous API into an asynchronous one: the generators of its
method tables, the base facade they run on, and the ``async with`` transaction context."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from ._aio_worker import (
    BEGIN,
    CHUNK,
    END,
    Call,
    Worker,
    close_iterator,
    next_chunk,
    open_iterator,
)
from .errors import StoreError
from .store import Store

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
_F = TypeVar("_F", bound="Facade")


# -- the method table's generators ---------------------------------------------------------------
def coroutine(
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


def iterator(
    method: Callable[Concatenate[Any, P], Iterator[T]],
) -> Callable[Concatenate[_F, P], AsyncIterator[T]]:
    """An async-iterator twin of ``method``; its errors (NotFoundError...) come at the first
    ``__anext__``. Items are fetched from the worker a chunk at a time."""
    name = method.__name__

    async def call(self: _F, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        fn = getattr(self._target_for(name), name)
        iterator, chunk = await self._run(name, open_iterator, fn, args, kwargs)
        exhausted = len(chunk) < CHUNK
        try:
            while True:
                for item in chunk:
                    yield item
                if exhausted:
                    return
                chunk = await self._run(name, next_chunk, iterator)
                exhausted = len(chunk) < CHUNK
        finally:
            if not exhausted:
                self._fire(close_iterator, iterator)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


class Facade:
    """What the generated methods need: the synchronous target, the loop, the queue to use."""

    _target: Any
    _loop: asyncio.AbstractEventLoop
    _worker: Worker | None
    _prefix = "store"

    def _calls(self, name: str) -> queue.SimpleQueue[Call] | None:
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


class TransactionFacade(Facade):
    """A facade bound to one open transaction's queue."""

    _queue: queue.SimpleQueue[Call]
    _ended: bool = False

    def _calls(self, name: str) -> queue.SimpleQueue[Call] | None:
        return None if self._ended else self._queue


class TransactionContext(Generic[T]):
    """``async with``: enters the synchronous transaction on the worker and serves it there."""

    def __init__(
        self,
        owner: Facade,
        name: str,
        enter: Callable[[], Any],
        wrap: Callable[[Any, queue.SimpleQueue[Call]], T],
    ) -> None:
        self._owner = owner
        self._name = name
        self._enter = enter
        self._wrap = wrap
        self._queue: queue.SimpleQueue[Call] = queue.SimpleQueue()
        self._facade: T | None = None

    async def __aenter__(self) -> T:
        if self._facade is not None:
            raise StoreError.at(f"{self._owner._prefix}.{self._name}", "already entered")
        owner = self._owner
        calls = owner._calls(self._name)
        if calls is None:
            if isinstance(owner, TransactionFacade):
                raise StoreError.at(f"{owner._prefix}.{self._name}", "the transaction has ended")
            with self._enter():  # the store is closed: the synchronous API raises its error
                pass
            raise AssertionError("a closed store opened a transaction")  # pragma: no cover
        future: asyncio.Future[Any] = owner._loop.create_future()
        calls.put((future, BEGIN, (self._enter, self._queue), None))
        try:
            sync_tx = await future
        except asyncio.CancelledError:
            # The worker may have opened it already; then this ends it. Otherwise this queue
            # is never served and the item is dropped with it.
            self._queue.put((None, END, (True,), None))
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
        # transaction (an END is never dropped).
        self._queue.put((future, END, (exc_type is not None,), None))
        await future

def discard(worker: Worker, future: asyncio.Future[Store]) -> None:
    if not future.cancelled() and future.exception() is None:
        worker.calls.put((None, future.result().close, (), None))
    worker.stop()




def stop_if_closed(worker: Worker, future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is None:
        worker.stop()
