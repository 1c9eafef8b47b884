"""The worker thread behind one :class:`gostore.aio.AsyncStore`: it runs queued calls back to
back and completes their futures in batches (see ``aio.py`` for the design)."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .events import Event, logger

T = TypeVar("T")

#: futures completed in one hand-off at most; bounds the wait of the first caller in a batch
_BATCH = 256
#: items an async iterator fetches per trip to the worker
CHUNK = 512

# A queued call is ``(future or None, function, args, kwargs or None)``. These functions are
# markers the worker recognises instead of calling them.


def BEGIN(*_: object) -> None:  # (enter the transaction, its queue): serve it until END
    raise AssertionError("marker")  # pragma: no cover


def END(*_: object) -> None:  # (rollback: bool,): close the transaction being served
    raise AssertionError("marker")  # pragma: no cover


def EXIT(*_: object) -> None:  # the worker thread ends
    raise AssertionError("marker")  # pragma: no cover


Call = tuple[
    "asyncio.Future[Any] | None", Callable[..., Any], tuple[Any, ...], "dict[str, Any] | None"
]
_Done = tuple["asyncio.Future[Any]", bool, Any]
_Note = tuple[Callable[[Event], Any], Event]


class _Rollback(Exception):
    """Thrown into a synchronous transaction to roll it back (the caller's own exception stays
    in the event loop's thread)."""


class Worker:
    """The thread that runs one store's calls, and the loop it reports back to."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: queue.SimpleQueue[Call] = queue.SimpleQueue()
        #: open transactions, innermost last: (task that opened it, its queue)
        self.tx_stack: list[tuple[asyncio.Task[Any] | None, queue.SimpleQueue[Call]]] = []
        #: set on the loop's thread once the store is closed and nothing more is queued
        self.exited = False
        self._done: list[_Done] = []
        self._notes: list[_Note] = []
        self._tasks: set[asyncio.Task[Any]] = set()  # running coroutine callbacks
        #: resolved once the thread has ended
        self.finished: asyncio.Future[None] = loop.create_future()
        self.thread = threading.Thread(target=self._main, name="gostore-aio", daemon=True)
        self.thread.start()

    def route(self) -> queue.SimpleQueue[Call]:
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
            self.calls.put((None, EXIT, (), None))

    # -- the worker thread ----------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._serve(self.calls)
        finally:
            self._flush()
            try:
                self.loop.call_soon_threadsafe(self._ended)
            except RuntimeError:  # the loop is closed
                pass

    def _ended(self) -> None:
        # On the loop's thread, called by the worker's last statement: the join returns at
        # once, and ``finished`` then means what it says (the thread is gone, not ending).
        self.thread.join()
        resolve(self.finished)

    def _serve(self, calls: queue.SimpleQueue[Call]) -> Call:
        """Run ``calls`` until an END or EXIT item, which is returned."""
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
            if fn is END or fn is EXIT:
                return item
            if future is not None and future.cancelled():
                continue  # not started, so dropped whole
            if fn is BEGIN:
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
        calls: queue.SimpleQueue[Call],
    ) -> Call | None:
        """Open a synchronous transaction here, serve its queue, close it on END.

        Returns an EXIT item met while serving (the thread must end), else None.
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
        rollback = fn is EXIT or bool(args[0])
        try:
            if rollback:
                manager.__exit__(_Rollback, _Rollback(), None)
            else:
                manager.__exit__(None, None, None)
        except BaseException as exc:
            if finished is not None and fn is END:
                self._done.append((finished, False, exc))
        else:
            if finished is not None and fn is END:
                self._done.append((finished, True, None))
        return end if fn is EXIT else None

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


def open_iterator(
    method: Callable[..., Iterator[T]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Iterator[T], list[T]]:
    """Runs on the worker: the synchronous iterator and its first chunk, in one trip."""
    iterator = iter(method(*args, **kwargs))
    return iterator, list(itertools.islice(iterator, CHUNK))


def next_chunk(iterator: Iterator[T]) -> list[T]:
    return list(itertools.islice(iterator, CHUNK))


def close_iterator(iterator: Iterator[Any]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()

def resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
