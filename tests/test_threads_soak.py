"""Threads: 8 threads run mixed reads, writes, deletes, transactions, watches and quota-limited
scoped writes on one store for a bounded time. No unexpected exception escapes, and the final
contents equal what the threads were told had succeeded."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import gostore
from gostore import Event, NotFoundError, QuotaConfig, QuotaExceededError

SOAK = os.environ.get("GOSTORE_SOAK", "").strip() == "1"
OWNERS = (0, 1, 2, 7)  # threads that own group f"t{i}" and know exactly what it holds
QUOTA_THREADS = (5, 6)
MAX_KEYS = 5


class _Rollback(Exception):
    pass


class Soak:
    def __init__(self, store: gostore.Store, seconds: float) -> None:
        self.store = store
        self.deadline = time.monotonic() + seconds
        self.expected: dict[int, dict[str, str]] = {i: {} for i in OWNERS}
        self.quota_keys: dict[int, set[str]] = {i: set() for i in QUOTA_THREADS}
        self.scoped = store.scoped("quota", QuotaConfig(max_keys=MAX_KEYS))
        self.errors: list[BaseException] = []
        self.operations = 0
        self.count_lock = threading.Lock()
        self.callback_events = 0

    def running(self) -> Iterator[random.Random]:
        rng = random.Random(threading.get_ident())
        done = 0
        while time.monotonic() < self.deadline:
            yield rng
            done += 1
        with self.count_lock:
            self.operations += done

    def owner(self, tid: int) -> None:
        group, mine = f"t{tid}", self.expected[tid]
        for rng in self.running():
            key, value = f"k{rng.randrange(20)}", f"v{rng.random()}"
            roll = rng.random()
            if roll < 0.35:
                self.store.set(group, key, value)
                mine[key] = value
            elif roll < 0.45:
                self.store.set_with_ttl(group, key, value, 3600)
                mine[key] = value
            elif roll < 0.6:
                self.store.delete(group, key)
                mine.pop(key, None)
            elif roll < 0.7:
                batch = {f"k{rng.randrange(20)}": value for _ in range(3)}
                self.store.set_many(group, batch)
                mine.update(batch)
            elif roll < 0.72:
                self.store.delete_group(group)
                mine.clear()
            elif roll < 0.85:
                fail = rng.random() < 0.3
                staged = dict(mine)
                try:
                    with self.store.transaction() as tx:
                        tx.set(group, key, value)
                        staged[key] = value
                        other = f"k{rng.randrange(20)}"
                        tx.delete(group, other)
                        staged.pop(other, None)
                        assert tx.count(group) == len(staged)
                        if fail:
                            raise _Rollback
                except _Rollback:
                    pass
                else:
                    mine.clear()
                    mine.update(staged)
            else:
                assert self.store.get_all(group) == mine
                if mine:
                    some = rng.choice(sorted(mine))
                    assert self.store.get(group, some) == mine[some]

    def reader(self, tid: int) -> None:
        for rng in self.running():
            group = f"t{rng.choice(OWNERS)}"
            roll = rng.random()
            if roll < 0.3:
                try:
                    assert isinstance(self.store.get(group, f"k{rng.randrange(20)}"), str)
                except NotFoundError:
                    pass
            elif roll < 0.5:
                assert isinstance(self.store.get_all(group), dict)
            elif roll < 0.7:
                keys = [kv.key for kv in self.store.all(group)]
                assert keys == sorted(set(keys))  # ascending, no duplicates
            elif roll < 0.85:
                assert self.store.count_all("t") >= 0
                self.store.groups("t")
            else:
                assert self.scoped.count_all() <= MAX_KEYS

    def watcher(self, tid: int) -> None:
        with self.store.watch("*", "*", buffer=64) as everything:
            for rng in self.running():
                event = everything.get(timeout=0.005)
                assert event is None or isinstance(event, Event)
                if rng.random() < 0.1:
                    group = f"t{rng.choice(OWNERS)}"
                    with self.store.watch(group, "*", buffer=4) as short:
                        short.get_nowait()
                if rng.random() < 0.05:
                    unregister = self.store.on_change(self._on_change)
                    self.store.purge_expired()
                    unregister()

    def _on_change(self, event: Event) -> None:
        with self.count_lock:
            self.callback_events += 1

    def quota_writer(self, tid: int) -> None:
        acked = self.quota_keys[tid]
        n = 0
        for rng in self.running():
            if acked and rng.random() < 0.3:
                key = rng.choice(sorted(acked))
                self.scoped.delete("g", key)
                acked.discard(key)
                continue
            key = f"{tid}-{n}"
            n += 1
            try:
                if rng.random() < 0.5:
                    self.scoped.set("g", key, "v")
                else:
                    with self.scoped.transaction() as tx:
                        tx.set("g", key, "v")
            except QuotaExceededError:
                continue
            acked.add(key)

    def run(self) -> None:
        roles: dict[int, Callable[[int], None]] = {
            **{i: self.owner for i in OWNERS},
            3: self.reader,
            4: self.watcher,
            **{i: self.quota_writer for i in QUOTA_THREADS},
        }

        def guarded(role: Callable[[int], None], tid: int) -> None:
            try:
                role(tid)
            except BaseException as exc:
                self.errors.append(exc)

        threads = [threading.Thread(target=guarded, args=(roles[i], i)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self.errors:
            raise self.errors[0]

    def check(self) -> None:
        for tid in OWNERS:
            assert self.store.get_all(f"t{tid}") == self.expected[tid]
        acked = set().union(*self.quota_keys.values())
        assert set(self.scoped.get_all("g")) == acked
        assert len(acked) <= MAX_KEYS


def _soak(store: gostore.Store, seconds: float) -> int:
    soak = Soak(store, seconds)
    soak.run()
    soak.check()
    return soak.operations


@pytest.fixture(params=["memory", "file"])
def soak_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[gostore.Store]:
    path = ":memory:" if request.param == "memory" else str(tmp_path / "soak.db")
    with gostore.Store(path, purge_interval=0.05) as store:
        yield store


def test_eight_threads_mixed_work_leaves_exactly_the_acknowledged_contents(
    soak_store: gostore.Store,
) -> None:
    assert _soak(soak_store, 2.0) > 1000


@pytest.mark.slow
@pytest.mark.skipif(not SOAK, reason="long soak: set GOSTORE_SOAK=1 to run it")
def test_eight_threads_soak_leaves_exactly_the_acknowledged_contents(
    soak_store: gostore.Store,
) -> None:
    assert _soak(soak_store, 60.0) > 1000
