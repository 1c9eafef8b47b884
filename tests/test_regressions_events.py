"""Events under races: watch() against close(), the event hub after fork(), and callbacks that
raise SystemExit.

Every test here is bounded: a watcher that never closes or a child that deadlocks makes the
test fail after a timeout, never hang the suite.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time

import pytest

import gostore
from gostore import StoreClosedError

from .conftest import drain

RACE_ROUNDS = 150
FORK_ROUNDS = 10
CHILD_DEADLINE = 5.0  # seconds; a child that only unwatches needs milliseconds


def _race_watch_against_close() -> list[gostore.Watcher]:
    """One round: a thread calls watch() in a loop while this thread closes the store; returns
    every watcher that watch() handed out."""
    store = gostore.Store(purge_interval=0)
    obtained: list[gostore.Watcher] = []
    failures: list[BaseException] = []
    started = threading.Event()
    stop = threading.Event()

    def watch_until_closed() -> None:
        started.set()
        try:
            while not stop.is_set():
                obtained.append(store.watch("g", "*"))
        except StoreClosedError:
            pass
        except BaseException as exc:  # reported in the test's thread
            failures.append(exc)

    watcher_thread = threading.Thread(target=watch_until_closed, daemon=True)
    watcher_thread.start()
    started.wait(5)
    time.sleep(random.random() / 1000)  # close at a different point of watch() each round
    store.close()
    stop.set()
    watcher_thread.join(5)
    assert not watcher_thread.is_alive(), "watch() kept running after close()"
    assert not failures, failures[0]
    return obtained


def test_watch_racing_close_never_returns_a_watcher_that_stays_open() -> None:
    """Every watch() racing close() either raises StoreClosedError or returns a watcher that
    close() closed, so iterating it ends instead of blocking forever."""
    for round_number in range(RACE_ROUNDS):
        obtained = _race_watch_against_close()
        still_open = [w for w in obtained if not w.closed]
        assert not still_open, (
            f"round {round_number}: {len(still_open)} watcher(s) from watch() racing close() "
            "stayed open, so iterating them would block forever"
        )
        if obtained:
            last = obtained[-1]
            assert last.get(timeout=1.0) is None
            assert list(last) == []


def _wait_or_kill(pid: int, deadline: float) -> int | None:
    """The child's wait status, or None when it had to be killed at ``deadline``."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_unwatch_close_and_unregister_in_forked_child_do_not_deadlock() -> None:
    """A parent thread keeps registering and closing watchers while the main thread forks, so
    the hub's registration lock is often held at fork time. In the child, unwatch(),
    Watcher.close() and a callback's unregister must still return (they may do nothing)."""
    store = gostore.Store(purge_interval=0)
    watcher = store.watch("g", "k")
    other = store.watch("g", "*")
    unregister = store.on_change(lambda event: None)
    # A long bucket of watchers on the churned (group, key): each registration then spends
    # most of its time inside the registration lock, so a fork nearly always lands in it.
    crowd = [store.watch("busy", "*") for _ in range(5000)]
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            store.watch("busy", "*").close()

    churner = threading.Thread(target=churn, daemon=True)
    churner.start()
    try:
        for round_number in range(FORK_ROUNDS):
            time.sleep(0.002)
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                code = 0
                try:
                    store.unwatch(watcher)
                    other.close()
                    unregister()
                except BaseException:
                    code = 3
                finally:
                    os._exit(code)
            status = _wait_or_kill(pid, CHILD_DEADLINE)
            assert status is not None, (
                f"round {round_number}: the forked child deadlocked in unwatch()/close()/"
                "unregister() (a lock held by another parent thread at fork time)"
            )
            assert os.waitstatus_to_exitcode(status) == 0, "the child's calls raised"
    finally:
        stop.set()
        churner.join(10)
        for crowded in crowd:
            crowded.close()
        store.close()
    # The parent's own watchers are untouched by what the children did.
    assert watcher.closed and other.closed  # closed by store.close(), not by a child


def test_system_exit_in_a_callback_is_logged_and_other_callbacks_still_run(
    store: gostore.Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback raising SystemExit neither reaches the writer nor stops the callbacks after
    it; it is logged on the "gostore" logger like any other callback failure."""
    received: list[gostore.Event] = []

    def exits(event: gostore.Event) -> None:
        raise SystemExit(3)

    store.on_change(exits)
    store.on_change(received.append)
    watcher = store.watch("g", "*")
    with caplog.at_level(logging.WARNING, logger="gostore"):
        store.set("g", "k", "v")  # must not raise SystemExit
        with store.transaction() as tx:
            tx.set("g", "k2", "v2")
    assert [(e.key, e.value) for e in received] == [("k", "v"), ("k2", "v2")]
    assert [(e.key, e.value) for e in drain(watcher)] == [("k", "v"), ("k2", "v2")]
    assert store.get_all("g") == {"k": "v", "k2": "v2"}
    logged = [r for r in caplog.records if r.name == "gostore" and r.exc_info]
    assert len(logged) == 2
    assert all(r.exc_info is not None and r.exc_info[0] is SystemExit for r in logged)
