"""Model-based tests: random sequences of Store and ScopedStore calls against a dict model.

The store reads the clock through ``gostore.store.now_ms`` and ``gostore.scope.now_ms``; both
are patched with a fake clock the state machine advances, so TTL expiry is tested without
sleeping. The model maps ``(group, key) -> (value, expires_at_ms | None)`` and keeps expired
rows until something physically removes them (lazy delete in ``get``, a purge, a delete), so
the row counts returned by ``delete_prefix`` and ``purge_expired`` are predicted exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

import gostore
from gostore import NotFoundError, QuotaConfig, QuotaExceededError

from .conftest import CLOCK_START_MS
from .conftest import FakeClock as Clock

settings.register_profile(
    "gostore-model",
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=75,
    stateful_step_count=50,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

START_MS = CLOCK_START_MS
NAMESPACE = "ns"
QUOTA = QuotaConfig(max_keys=6, max_groups=3, max_bytes=60)

# A small alphabet so names collide, plus the characters most likely to break SQL or encoding.
ALPHABET = ["a", "b", "\x00", "\U0001f600", "\U0010ffff", "%", "_", ":"]
text = st.text(alphabet=st.sampled_from(ALPHABET), max_size=3)
# Plain groups sometimes land inside the scoped namespace, so both views interleave.
groups = st.one_of(text, text.map(lambda s: NAMESPACE + ":" + s))
values = st.text(alphabet=st.sampled_from([*ALPHABET, "é"]), max_size=6)
ttls = st.one_of(
    st.integers(min_value=-2, max_value=3),
    st.sampled_from([0.0, 0.25, 0.5, 1.5, -0.5]),
)

Row = tuple[str, int | None]
Model = dict[tuple[str, str], Row]


def _expiry(now: int, ttl: float) -> int:
    # Same arithmetic as the library: whole ms for an int, floor(ttl * 1000) for a float.
    return now + (ttl * 1000 if isinstance(ttl, int) else int(ttl * 1000 // 1))


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


class StoreMachine(RuleBasedStateMachine):
    clock: Clock
    open_store: Callable[[], gostore.Store]

    def __init__(self) -> None:
        super().__init__()
        self.clock.now = START_MS
        self.store = self.open_store()
        self.scoped = self.store.scoped(NAMESPACE, QUOTA)
        self.model: Model = {}
        self.operations = 0

    def teardown(self) -> None:
        self.store.close()
        _FIGURES["operations"] += self.operations

    # -- model helpers --------------------------------------------------------------------------
    def live(self, row: Row) -> bool:
        return row[1] is None or row[1] > self.clock.now

    def live_items(self) -> Iterator[tuple[tuple[str, str], str]]:
        for where, row in self.model.items():
            if self.live(row):
                yield where, row[0]

    def live_group(self, group: str) -> dict[str, str]:
        return {k: v for (g, k), v in self.live_items() if g == group}

    def quota_error(
        self, model: Model, group: str, key: str, value: str, expires: int | None
    ) -> bool:
        """Would this scoped write break the quota, given ``model``? (The spec's rules.)"""
        if expires is not None and expires <= self.clock.now:
            return False  # an already-expired entry adds neither a live key nor bytes
        prefix = NAMESPACE + ":"
        live = {
            where: row
            for where, row in model.items()
            if where[0].startswith(prefix) and self.live(row)
        }
        old = live.get((group, key))
        if old is None:
            if len(live) + 1 > QUOTA.max_keys:
                return True
            names = {g for g, _ in live}
            if group not in names and len(names) + 1 > QUOTA.max_groups:
                return True
        used = sum(_utf8(k) + _utf8(r[0]) for (_, k), r in live.items())
        old_size = 0 if old is None else _utf8(key) + _utf8(old[0])
        growth = _utf8(key) + _utf8(value) - old_size
        return growth > 0 and used + growth > QUOTA.max_bytes

    def step(self) -> None:
        self.operations += 1

    # -- clock ----------------------------------------------------------------------------------
    @rule(ms=st.sampled_from([0, 1, 250, 499, 500, 501, 1000, 3000]))
    def advance_clock(self, ms: int) -> None:
        self.clock.now += ms

    # -- writes ---------------------------------------------------------------------------------
    @rule(group=groups, key=text, value=values)
    def set(self, group: str, key: str, value: str) -> None:
        self.step()
        self.store.set(group, key, value)
        self.model[(group, key)] = (value, None)

    @rule(group=groups, key=text, value=values, ttl=ttls)
    def set_with_ttl(self, group: str, key: str, value: str, ttl: float) -> None:
        self.step()
        self.store.set_with_ttl(group, key, value, ttl)
        self.model[(group, key)] = (value, _expiry(self.clock.now, ttl))

    @rule(group=groups, mapping=st.dictionaries(text, values, max_size=4), ttl=st.none() | ttls)
    def set_many(self, group: str, mapping: dict[str, str], ttl: float | None) -> None:
        self.step()
        self.store.set_many(group, mapping, ttl)
        expires = None if ttl is None else _expiry(self.clock.now, ttl)
        for key, value in mapping.items():
            self.model[(group, key)] = (value, expires)

    @rule(group=groups, key=text)
    def delete(self, group: str, key: str) -> None:
        self.step()
        self.store.delete(group, key)
        self.model.pop((group, key), None)

    @rule(group=groups)
    def delete_group(self, group: str) -> None:
        self.step()
        self.store.delete_group(group)
        for where in [w for w in self.model if w[0] == group]:
            del self.model[where]

    @rule(prefix=groups)
    def delete_prefix(self, prefix: str) -> None:
        self.step()
        gone = [w for w in self.model if w[0].startswith(prefix)]
        assert self.store.delete_prefix(prefix) == len(gone)
        for where in gone:
            del self.model[where]

    @rule()
    def purge_expired(self) -> None:
        self.step()
        gone = [w for w, row in self.model.items() if not self.live(row)]
        assert self.store.purge_expired() == len(gone)
        for where in gone:
            del self.model[where]

    @rule(
        writes=st.lists(st.tuples(groups, text, st.none() | values), min_size=1, max_size=4),
        fail=st.booleans(),
    )
    def transaction(self, writes: list[tuple[str, str, str | None]], fail: bool) -> None:
        """A transaction sees its own writes; an exception rolls every one of them back."""
        self.step()
        staged = dict(self.model)
        try:
            with self.store.transaction() as tx:
                for group, key, value in writes:
                    if value is None:
                        tx.delete(group, key)
                        staged.pop((group, key), None)
                    else:
                        tx.set(group, key, value)
                        staged[(group, key)] = (value, None)
                    assert tx.exists(group, key) is (value is not None)
                if fail:
                    raise _Rollback
        except _Rollback:
            pass
        else:
            self.model = staged

    # -- reads ----------------------------------------------------------------------------------
    @rule(group=groups, key=text)
    def get(self, group: str, key: str) -> None:
        self.step()
        row = self.model.get((group, key))
        if row is not None and self.live(row):
            assert self.store.get(group, key) == row[0]
            return
        with pytest.raises(NotFoundError):
            self.store.get(group, key)
        self.model.pop((group, key), None)  # the lazy delete removed an expired row

    @rule(group=groups, key=text)
    def exists(self, group: str, key: str) -> None:
        self.step()
        row = self.model.get((group, key))
        assert self.store.exists(group, key) is (row is not None and self.live(row))

    @rule(group=groups)
    def count_and_get_all(self, group: str) -> None:
        self.step()
        expected = self.live_group(group)
        assert self.store.count(group) == len(expected)
        assert self.store.get_all(group) == expected

    @rule(group=groups)
    def all_is_sorted_by_key(self, group: str) -> None:
        self.step()
        expected = sorted(self.live_group(group).items())
        assert [tuple(kv) for kv in self.store.all(group)] == expected

    @rule(group=groups, offset=st.integers(0, 4), limit=st.integers(0, 4))
    def get_page(self, group: str, offset: int, limit: int) -> None:
        self.step()
        expected = sorted(self.live_group(group).items())[offset : offset + limit]
        assert [tuple(kv) for kv in self.store.get_page(group, offset, limit)] == expected

    @rule(group=groups, keys=st.lists(text, max_size=4))
    def get_many(self, group: str, keys: list[str]) -> None:
        self.step()
        live = self.live_group(group)
        assert self.store.get_many(group, keys) == {k: live[k] for k in keys if k in live}

    @rule(prefix=st.one_of(st.just(""), groups))
    def count_all_and_groups(self, prefix: str) -> None:
        self.step()
        live = [g for (g, _), _ in self.live_items() if g.startswith(prefix)]
        assert self.store.count_all(prefix) == len(live)
        assert self.store.groups(prefix) == sorted(set(live))
        assert list(self.store.groups_iter(prefix)) == sorted(set(live))

    # -- the quota-limited namespace ------------------------------------------------------------
    def scoped_write(
        self, group: str, rows: dict[str, str], expires: int | None, call: Callable[[], None]
    ) -> None:
        full = NAMESPACE + ":" + group
        staged = dict(self.model)
        refused = False
        for key, value in rows.items():  # checked row by row, pending writes included
            if self.quota_error(staged, full, key, value, expires):
                refused = True
                break
            staged[(full, key)] = (value, expires)
        if refused:
            with pytest.raises(QuotaExceededError):
                call()
        else:
            call()
            self.model = staged

    @rule(group=text, key=text, value=values)
    def scoped_set(self, group: str, key: str, value: str) -> None:
        self.step()
        self.scoped_write(group, {key: value}, None, lambda: self.scoped.set(group, key, value))

    @rule(group=text, key=text, value=values, ttl=ttls)
    def scoped_set_with_ttl(self, group: str, key: str, value: str, ttl: float) -> None:
        self.step()
        expires = _expiry(self.clock.now, ttl)
        self.scoped_write(
            group, {key: value}, expires, lambda: self.scoped.set_with_ttl(group, key, value, ttl)
        )

    @rule(group=text, mapping=st.dictionaries(text, values, max_size=4), ttl=st.none() | ttls)
    def scoped_set_many(self, group: str, mapping: dict[str, str], ttl: float | None) -> None:
        self.step()
        expires = None if ttl is None else _expiry(self.clock.now, ttl)
        self.scoped_write(
            group, mapping, expires, lambda: self.scoped.set_many(group, mapping, ttl)
        )

    @rule(group=text, key=text)
    def scoped_delete(self, group: str, key: str) -> None:
        self.step()
        self.scoped.delete(group, key)
        self.model.pop((NAMESPACE + ":" + group, key), None)

    @rule(group=text)
    def scoped_delete_group(self, group: str) -> None:
        self.step()
        self.scoped.delete_group(group)
        full = NAMESPACE + ":" + group
        for where in [w for w in self.model if w[0] == full]:
            del self.model[where]

    @rule(prefix=text)
    def scoped_delete_prefix(self, prefix: str) -> None:
        self.step()
        full = NAMESPACE + ":" + prefix
        gone = [w for w in self.model if w[0].startswith(full)]
        assert self.scoped.delete_prefix(prefix) == len(gone)
        for where in gone:
            del self.model[where]

    @rule()
    def scoped_purge_expired(self) -> None:
        self.step()
        prefix = NAMESPACE + ":"
        gone = [w for w, r in self.model.items() if w[0].startswith(prefix) and not self.live(r)]
        assert self.scoped.purge_expired() == len(gone)
        for where in gone:
            del self.model[where]

    @rule(group=text, key=text)
    def scoped_get(self, group: str, key: str) -> None:
        self.step()
        full = NAMESPACE + ":" + group
        row = self.model.get((full, key))
        if row is not None and self.live(row):
            assert self.scoped.get(group, key) == row[0]
            return
        with pytest.raises(NotFoundError):
            self.scoped.get(group, key)
        self.model.pop((full, key), None)

    @rule(prefix=text)
    def scoped_counts_and_groups(self, prefix: str) -> None:
        self.step()
        full = NAMESPACE + ":" + prefix
        live = [g for (g, _), _ in self.live_items() if g.startswith(full)]
        assert self.scoped.count_all(prefix) == len(live)
        local = sorted({g[len(NAMESPACE) + 1 :] for g in live})
        assert self.scoped.groups(prefix) == local

    @rule(data=st.data())
    def scoped_transaction_is_checked_as_a_whole(self, data: st.DataObject) -> None:
        self.step()
        group = data.draw(text)
        rows = data.draw(st.dictionaries(text, values, min_size=1, max_size=3))

        def call() -> None:
            with self.scoped.transaction() as tx:
                for key, value in rows.items():
                    tx.set(group, key, value)

        self.scoped_write(group, rows, None, call)

    @invariant()
    def namespace_totals_match(self) -> None:
        prefix = NAMESPACE + ":"
        live = [(g, k) for (g, k), _ in self.live_items() if g.startswith(prefix)]
        assert self.scoped.count_all() == len(live)


class _Rollback(Exception):
    pass


_FIGURES = {"operations": 0}


def _run(clock: Clock, opener: Callable[[], gostore.Store]) -> None:
    machine: Any = type(
        "Machine", (StoreMachine,), {"clock": clock, "open_store": staticmethod(opener)}
    )
    run_state_machine_as_test(machine, settings=settings.get_profile("gostore-model"))


def test_memory_store_matches_the_model(clock: Clock) -> None:
    _run(clock, lambda: gostore.Store(purge_interval=0))


def test_file_store_matches_the_model(clock: Clock, tmp_path: Path) -> None:
    counter = iter(range(1_000_000))

    def opener() -> gostore.Store:
        # A fresh file per example: each run starts from an empty store, as the model does.
        return gostore.Store(tmp_path / f"model-{next(counter)}.db", purge_interval=0)

    _run(clock, opener)
