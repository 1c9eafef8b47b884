"""QuotaConfig and quota enforcement (go-store's quota matrix,
plus max_bytes, set_many/transactions as a whole, and the ledger's invalidation paths)."""

from __future__ import annotations

from pathlib import Path

import pytest

import gostore
from gostore import QuotaConfig, QuotaExceededError, ScopedStore, Store, StoreError
from gostore._core import core_of

from .conftest import FakeClock as Clock


def keys_quota(store: Store, limit: int = 5) -> ScopedStore:
    return store.scoped("ns", QuotaConfig(max_keys=limit))


# -- QuotaConfig ---------------------------------------------------------------------------------
def test_quota_config_defaults_to_unlimited() -> None:
    quota = QuotaConfig()
    assert (quota.max_keys, quota.max_groups, quota.max_bytes) == (0, 0, 0)
    assert not quota.limited
    assert QuotaConfig(max_bytes=1).limited


@pytest.mark.parametrize("field", ["max_keys", "max_groups", "max_bytes"])
def test_quota_config_rejects_negative_limits(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        QuotaConfig(**{field: -1})


@pytest.mark.parametrize("value", [1.5, "3", True, None])
def test_quota_config_rejects_non_int_limits(value: object) -> None:
    with pytest.raises(TypeError):
        QuotaConfig(max_keys=value)  # type: ignore[arg-type]


def test_quota_config_is_immutable() -> None:
    quota = QuotaConfig(max_keys=1)
    with pytest.raises(AttributeError):
        quota.max_keys = 2  # type: ignore[misc]


def test_zero_quota_is_unlimited(store: Store) -> None:
    scoped = store.scoped("ns", QuotaConfig(max_keys=0, max_groups=0, max_bytes=0))
    for i in range(50):
        scoped.set(f"g{i % 10}", f"k{i}", "v" * 100)
    assert scoped.count_all() == 50


# -- max_keys --------------------------------------------------------------------------------
def test_sixth_new_key_raises_and_writes_nothing(store: Store) -> None:
    scoped = keys_quota(store)
    for i in range(5):
        scoped.set("g", f"k{i}", "v")
    watcher = store.watch("*", "*")
    with pytest.raises(QuotaExceededError) as info:
        scoped.set("g", "k5", "v")
    assert isinstance(info.value, StoreError)
    assert "5" in str(info.value) and info.value.group == "ns:g"
    assert scoped.count_all() == 5
    assert not scoped.exists("g", "k5")
    assert watcher.get_nowait() is None  # a refused write emits nothing


def test_max_keys_counts_across_groups(store: Store) -> None:
    scoped = keys_quota(store, 3)
    scoped.set("a", "1", "v")
    scoped.set("b", "1", "v")
    scoped.set("c", "1", "v")
    with pytest.raises(QuotaExceededError):
        scoped.set("d", "1", "v")
    with pytest.raises(QuotaExceededError):
        scoped.set_with_ttl("a", "2", "v", 60)


def test_upsert_of_a_live_key_does_not_count(store: Store) -> None:
    scoped = keys_quota(store)
    for i in range(5):
        scoped.set("g", f"k{i}", "v")
    scoped.set("g", "k0", "replaced")
    scoped.set_with_ttl("g", "k1", "with ttl", 60)
    scoped.set_many("g", {"k2": "x", "k3": "y"})
    assert scoped.get_all("g")["k0"] == "replaced"
    assert scoped.count_all() == 5


def test_delete_and_reinsert_stays_within_quota(store: Store) -> None:
    scoped = keys_quota(store)
    for i in range(5):
        scoped.set("g", f"k{i}", "v")
    scoped.delete("g", "k0")
    scoped.set("g", "new", "v")
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "another", "v")
    scoped.delete_group("g")
    for i in range(5):
        scoped.set("g2", f"k{i}", "v")
    assert scoped.count_all() == 5


def test_delete_prefix_frees_quota(store: Store) -> None:
    scoped = keys_quota(store, 2)
    scoped.set("a", "1", "v")
    scoped.set("b", "1", "v")
    assert scoped.delete_prefix("") == 2
    scoped.set("c", "1", "v")
    scoped.set("c", "2", "v")


def test_other_namespaces_do_not_count(store: Store) -> None:
    scoped = keys_quota(store, 2)
    store.scoped("ns-other").set_many("g", {str(i): "v" for i in range(10)})
    store.set_many("ns", {str(i): "v" for i in range(10)})  # group "ns", outside namespace "ns"
    scoped.set("g", "a", "v")
    scoped.set("g", "b", "v")
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "c", "v")


def test_quota_is_per_scoped_store_config_over_shared_data(store: Store) -> None:
    # two views of one namespace share its data; each applies its own limit
    unlimited = store.scoped("ns")
    for i in range(4):
        unlimited.set("g", str(i), "v")
    limited = keys_quota(store, 4)
    with pytest.raises(QuotaExceededError):
        limited.set("g", "new", "v")
    limited.set("g", "0", "replace is fine")


# -- max_groups ------------------------------------------------------------------------------
def test_fourth_group_raises_under_max_groups_three(store: Store) -> None:
    scoped = store.scoped("ns", QuotaConfig(max_groups=3))
    for group in ("a", "b", "c"):
        scoped.set(group, "k", "v")
    scoped.set("a", "more", "v")  # more keys in an existing group are fine
    with pytest.raises(QuotaExceededError, match="group"):
        scoped.set("d", "k", "v")
    assert scoped.groups() == ["a", "b", "c"]


def test_emptied_group_stops_counting(store: Store) -> None:
    scoped = store.scoped("ns", QuotaConfig(max_groups=1))
    scoped.set("a", "k", "v")
    scoped.delete("a", "k")
    scoped.set("b", "k", "v")
    with pytest.raises(QuotaExceededError):
        scoped.set("a", "k", "v")


# -- expiry ------------------------------------------------------------------------------------
def test_expired_keys_do_not_count_towards_max_keys(store: Store, clock: Clock) -> None:
    scoped = keys_quota(store, 2)
    scoped.set_with_ttl("g", "short", "v", 1)
    scoped.set("g", "long", "v")
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "third", "v")
    clock.advance(2)
    scoped.set("g", "third", "v")
    assert scoped.get_all("g") == {"long": "v", "third": "v"}


def test_expired_keys_do_not_count_towards_max_groups(store: Store, clock: Clock) -> None:
    scoped = store.scoped("ns", QuotaConfig(max_groups=1))
    scoped.set_with_ttl("old", "k", "v", 1)
    with pytest.raises(QuotaExceededError):
        scoped.set("new", "k", "v")
    clock.advance(1)  # expires_at <= now is expired
    scoped.set("new", "k", "v")


def test_expired_keys_written_outside_the_quota_path_do_not_count(
    store: Store, clock: Clock
) -> None:
    store.set_with_ttl("ns:g", "old", "v", 1)
    scoped = keys_quota(store, 1)
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "new", "v")
    clock.advance(5)
    scoped.set("g", "new", "v")


def test_expired_keys_do_not_count_towards_max_bytes(store: Store, clock: Clock) -> None:
    scoped = store.scoped("ns", QuotaConfig(max_bytes=10))
    scoped.set_with_ttl("g", "k", "123456789", 1)  # 10 bytes
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "j", "")
    clock.advance(1)
    scoped.set("g", "j", "123456789")


def test_overwriting_an_expired_key_counts_as_a_new_key(store: Store, clock: Clock) -> None:
    scoped = keys_quota(store, 1)
    scoped.set_with_ttl("g", "a", "v", 1)
    clock.advance(2)
    scoped.set("g", "b", "v")  # "a" is expired, so this fits
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "a", "v")  # "a" is not live: writing it adds a key


def test_overwriting_an_expired_key_gets_no_credit_for_its_old_bytes(
    store: Store, clock: Clock
) -> None:
    scoped = store.scoped("ns", QuotaConfig(max_bytes=10))
    scoped.set_with_ttl("g", "k", "12345678", 1)  # 9 bytes, then expired
    clock.advance(2)
    scoped.set("g", "j", "1")  # 2 live bytes
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "k", "123456789")  # 10 more bytes, not 10 - 9
    assert scoped.get_all("g") == {"j": "1"}


def test_replacing_a_ttl_key_with_a_permanent_one_keeps_counting_it(
    store: Store, clock: Clock
) -> None:
    scoped = keys_quota(store, 1)
    scoped.set_with_ttl("g", "a", "v", 1)
    scoped.set("g", "a", "permanent")
    clock.advance(5)
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "b", "v")


def test_already_expired_write_never_exceeds_quota(store: Store) -> None:
    scoped = keys_quota(store, 1)
    scoped.set("g", "a", "v")
    scoped.set_with_ttl("g", "b", "v", 0)  # stored expired: adds no live key
    assert scoped.count_all() == 1


def test_with_real_clock_short_ttl_frees_quota(store: Store) -> None:
    import time

    scoped = keys_quota(store, 1)
    scoped.set_with_ttl("g", "a", "v", 0.02)
    time.sleep(0.05)
    scoped.set("g", "b", "v")
    assert scoped.count_all() == 1


# -- max_bytes -------------------------------------------------------------------------------
def test_max_bytes_allows_a_total_equal_to_the_limit(store: Store) -> None:
    scoped = store.scoped("ns", QuotaConfig(max_bytes=10))
    scoped.set("g", "key", "12345")  # 3 + 5
    scoped.set("g", "k", "1")  # 1 + 1 → exactly 10
    with pytest.raises(QuotaExceededError, match="bytes"):
        scoped.set("g", "x", "")  # one byte more


def test_max_bytes_counts_utf8_bytes_not_characters(store: Store) -> None:
    scoped = store.scoped("ns", QuotaConfig(max_bytes=10))
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "k", "ééééé")  # 1 + 10 bytes, 6 characters
    scoped.set("g", "é", "€€")  # 2 + 6 = 8 bytes
    scoped.set("g", "", "ü")  # 0 + 2 = 10 bytes
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "a", "")


def test_max_bytes_counts_group_names_not_at_all(store: Store) -> None:
    scoped = store.scoped("ns", QuotaConfig(max_bytes=2))
    scoped.set("a-very-long-group-name", "k", "v")
    assert scoped.count_all() == 1


def test_replacing_with_a_bigger_value_can_exceed_max_bytes(store: Store) -> None:
    scoped = store.scoped("ns", QuotaConfig(max_bytes=10))
    scoped.set("g", "k", "12345")  # 6 bytes
    scoped.set("g", "k", "123456789")  # 10 bytes: exactly the limit
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "k", "1234567890")
    assert scoped.get("g", "k") == "123456789"


def test_replacing_with_a_smaller_value_is_always_allowed(store: Store) -> None:
    scoped = store.scoped("ns", QuotaConfig(max_bytes=10))
    store.set("ns:g", "k", "x" * 50)  # over the limit, written around the quota
    scoped.set("g", "k", "x" * 20)  # shrinks, still over: allowed
    scoped.set("g", "k", "x")
    scoped.set("g", "a", "b" * 6)  # now 2 + 7 = 9 bytes
    assert scoped.count_all() == 2


def test_deleting_frees_bytes(store: Store) -> None:
    scoped = store.scoped("ns", QuotaConfig(max_bytes=6))
    scoped.set("g", "k", "12345")
    scoped.delete("g", "k")
    scoped.set("g", "j", "12345")  # raises QuotaExceededError if the delete freed nothing
    assert scoped.get_all("g") == {"j": "12345"}


# -- set_many as a whole ---------------------------------------------------------------------
def test_set_many_that_would_exceed_max_keys_writes_nothing(store: Store) -> None:
    scoped = keys_quota(store)
    scoped.set_many("g", {"a": "1", "b": "2"})
    watcher = store.watch("*", "*")
    with pytest.raises(QuotaExceededError):
        scoped.set_many("g", {"c": "3", "d": "4", "e": "5", "f": "6"})
    assert scoped.get_all("g") == {"a": "1", "b": "2"}
    assert watcher.get_nowait() is None
    scoped.set_many("g", {"a": "x", "c": "3", "d": "4", "e": "5"})  # "a" is an upsert
    assert scoped.count_all() == 5


def test_set_many_that_would_exceed_max_bytes_writes_nothing(store: Store) -> None:
    scoped = store.scoped("ns", QuotaConfig(max_bytes=10))
    with pytest.raises(QuotaExceededError):
        scoped.set_many("g", {"a": "1234", "b": "12345"})  # 5 fit, then 6 more do not
    assert scoped.count_all() == 0
    scoped.set_many("g", {"a": "1234", "b": "123"})  # 5 + 4
    with pytest.raises(QuotaExceededError):
        scoped.set_many("g", {"c": "", "d": ""})  # 2 + 2 more
    assert scoped.get_all("g") == {"a": "1234", "b": "123"}


def test_set_many_with_ttl_is_quota_checked(store: Store, clock: Clock) -> None:
    scoped = keys_quota(store, 2)
    scoped.set_many("g", {"a": "1", "b": "2"}, ttl=1)
    with pytest.raises(QuotaExceededError):
        scoped.set_many("g", {"c": "3"})
    clock.advance(1)
    scoped.set_many("g", {"c": "3", "d": "4"})


def test_set_many_over_max_groups_in_a_new_group_writes_nothing(store: Store) -> None:
    scoped = store.scoped("ns", QuotaConfig(max_groups=1, max_keys=10))
    scoped.set("a", "k", "v")
    with pytest.raises(QuotaExceededError):
        scoped.set_many("b", {"x": "1"})
    assert scoped.groups() == ["a"]


# -- transactions ----------------------------------------------------------------------------
def test_transaction_quota_includes_pending_writes(store: Store) -> None:
    scoped = keys_quota(store, 3)
    with pytest.raises(QuotaExceededError), scoped.transaction() as tx:
        tx.set("g", "a", "1")
        tx.set("g", "b", "2")
        tx.set("g", "c", "3")
        tx.set("g", "d", "4")
    # the exception propagated out of the block, so everything was rolled back
    assert scoped.count_all() == 0
    scoped.set_many("g", {"a": "1", "b": "2", "c": "3"})


def test_transaction_pending_deletes_free_quota(store: Store) -> None:
    scoped = keys_quota(store, 2)
    scoped.set_many("g", {"a": "1", "b": "2"})
    with scoped.transaction() as tx:
        tx.delete("g", "a")
        tx.set("g", "c", "3")
    assert scoped.get_all("g") == {"b": "2", "c": "3"}


def test_quota_error_caught_inside_a_transaction_keeps_the_other_writes(store: Store) -> None:
    scoped = keys_quota(store, 2)
    with scoped.transaction() as tx:
        tx.set("g", "a", "1")
        tx.set("g", "b", "2")
        with pytest.raises(QuotaExceededError):
            tx.set("g", "c", "3")
        tx.set("g", "a", "replaced")
    assert scoped.get_all("g") == {"a": "replaced", "b": "2"}


def test_rolled_back_transaction_does_not_consume_quota(store: Store) -> None:
    scoped = keys_quota(store, 2)
    with pytest.raises(RuntimeError), scoped.transaction() as tx:
        tx.set("g", "a", "1")
        tx.set("g", "b", "2")
        raise RuntimeError
    scoped.set("g", "c", "3")
    scoped.set("g", "d", "4")
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "e", "5")


def test_unscoped_writes_in_a_transaction_count_for_the_next_scoped_write(store: Store) -> None:
    scoped = keys_quota(store, 2)
    scoped.set("g", "a", "1")
    with store.transaction() as tx:
        tx.set("ns:g", "b", "2")
        with pytest.raises(QuotaExceededError):
            scoped.set("g", "c", "3")  # the same thread joins the transaction


def test_quota_on_a_file_store_transaction(file_store: Store) -> None:
    scoped = file_store.scoped("ns", QuotaConfig(max_keys=2))
    with pytest.raises(QuotaExceededError), scoped.transaction() as tx:
        tx.set_many("g", {"a": "1", "b": "2", "c": "3"})
    assert scoped.count_all() == 0


# -- ledger invalidation ---------------------------------------------------------------------
def test_unscoped_writes_into_the_namespace_count_on_the_next_scoped_write(store: Store) -> None:
    scoped = keys_quota(store, 3)
    scoped.set("g", "a", "1")  # builds the ledger
    store.set("ns:g", "b", "2")
    store.set_many("ns:h", {"c": "3"})
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "d", "4")
    store.delete("ns:g", "b")  # frees one, also around the quota
    scoped.set("g", "d", "4")


def test_unscoped_delete_group_and_delete_prefix_free_quota(store: Store) -> None:
    scoped = keys_quota(store, 2)
    scoped.set_many("g", {"a": "1", "b": "2"})
    store.delete_group("ns:g")
    scoped.set_many("h", {"a": "1", "b": "2"})
    store.delete_prefix("ns:")
    scoped.set_many("i", {"a": "1", "b": "2"})  # raises QuotaExceededError if nothing was freed
    assert scoped.groups() == ["i"]


def test_unlimited_scoped_view_writes_count_for_a_limited_view(store: Store) -> None:
    limited, unlimited = keys_quota(store, 2), store.scoped("ns")
    limited.set("g", "a", "1")
    unlimited.set("g", "b", "2")
    with pytest.raises(QuotaExceededError):
        limited.set("g", "c", "3")


def test_purge_and_lazy_expiry_keep_the_ledger_right(store: Store, clock: Clock) -> None:
    scoped = keys_quota(store, 2)
    scoped.set_with_ttl("g", "a", "1", 1)
    scoped.set("g", "b", "2")
    clock.advance(2)
    assert store.purge_expired() == 1
    scoped.set("g", "c", "3")
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "d", "4")
    scoped.set_with_ttl("g", "c", "3", 1)  # an upsert, now with a TTL
    clock.advance(2)
    with pytest.raises(gostore.NotFoundError):
        scoped.get("g", "c")  # lazy delete
    scoped.set("g", "d", "4")
    assert scoped.count_all() == 2


def test_second_store_on_the_same_file_is_seen_by_the_quota(
    file_store: Store, db_path: Path
) -> None:
    scoped = file_store.scoped("ns", QuotaConfig(max_keys=3, max_bytes=100))
    scoped.set("g", "a", "1")  # builds the ledger on this connection
    with Store(db_path, purge_interval=0) as other:
        other.set("ns:g", "b", "2")
        other.set("ns:h", "c", "3")
        with pytest.raises(QuotaExceededError):
            scoped.set("g", "d", "4")
        other.delete_group("ns:h")
        scoped.set("g", "d", "4")
        other.set("ns:g", "big", "x" * 100)
        with pytest.raises(QuotaExceededError):
            scoped.set("g", "b", "a bigger value than before")  # bytes: over already
    assert file_store.count_all("ns:") == 4


def test_second_store_scoped_quota_sees_the_first(file_store: Store, db_path: Path) -> None:
    quota = QuotaConfig(max_keys=2)
    first = file_store.scoped("ns", quota)
    with Store(db_path, purge_interval=0) as other:
        second = other.scoped("ns", quota)
        first.set("g", "a", "1")
        second.set("g", "b", "2")
        with pytest.raises(QuotaExceededError):
            first.set("g", "c", "3")
        with pytest.raises(QuotaExceededError):
            second.set("g", "c", "3")


# PostgreSQL rebuilds the ledger at every check: its version() is new each time.
@pytest.mark.sqlite_only
def test_refused_write_keeps_the_namespace_ledger(store: Store) -> None:
    # A refusal changes nothing, so the next check must not rescan the namespace.
    tenant = store.scoped("ns", QuotaConfig(max_keys=2))
    tenant.set("g", "a", "1")
    tenant.set("g", "b", "1")
    ledger = core_of(store).ledgers["ns"]
    with pytest.raises(QuotaExceededError):
        tenant.set("g", "c", "1")
    assert core_of(store).ledgers["ns"] is ledger
    tenant.set("g", "a", "2")  # an upsert still passes, on the same ledger
    assert core_of(store).ledgers["ns"] is ledger


# -- the ledger's remembered rows (a replaced key's size without a statement) -------------------
def bytes_quota(store: Store, limit: int) -> ScopedStore:
    return store.scoped("ns", QuotaConfig(max_bytes=limit))


def assert_room_is_exactly(scoped: ScopedStore, room: int) -> None:
    """``room`` more bytes fit in the namespace, and not one more (a new key "z" holds one
    byte more than its value)."""
    with pytest.raises(QuotaExceededError):
        scoped.set("probe", "z", "v" * room)
    scoped.set("probe", "z", "v" * (room - 1))
    scoped.delete("probe", "z")


def test_many_replacements_of_one_key_keep_the_byte_total_exact(store: Store) -> None:
    scoped = bytes_quota(store, 100)
    for size in [10, 3, 40, 40, 1, 25, 7]:
        scoped.set("g", "k", "v" * size)  # "k" + value
    assert_room_is_exactly(scoped, 100 - 8)


def test_a_replacement_refused_for_growth_leaves_the_old_row_counted(store: Store) -> None:
    scoped = bytes_quota(store, 50)
    scoped.set("g", "k", "v" * 20)
    with pytest.raises(QuotaExceededError):
        scoped.set("g", "k", "v" * 60)
    assert store.get("ns:g", "k") == "v" * 20
    assert_room_is_exactly(scoped, 50 - 21)


def test_a_key_changed_outside_the_quota_is_measured_again(store: Store) -> None:
    scoped = bytes_quota(store, 100)
    scoped.set("g", "k", "v" * 10)
    store.set("ns:g", "k", "v" * 60)  # unscoped: the ledger is dropped
    scoped.set("g", "k", "v" * 30)
    assert_room_is_exactly(scoped, 100 - 31)


def test_a_key_changed_by_another_connection_is_measured_again(db_path: Path) -> None:
    with Store(db_path, purge_interval=0) as mine, Store(db_path, purge_interval=0) as other:
        scoped = bytes_quota(mine, 100)
        scoped.set("g", "k", "v" * 10)
        other.set("ns:g", "k", "v" * 60)
        with pytest.raises(QuotaExceededError):
            scoped.set("g", "other", "v" * 40)  # 61 + 46 > 100: the other write counts
        scoped.set("g", "k", "v" * 30)
        assert_room_is_exactly(scoped, 100 - 31)


def test_a_rolled_back_replacement_is_not_remembered(store: Store) -> None:
    scoped = bytes_quota(store, 100)
    scoped.set("g", "k", "v" * 10)
    with pytest.raises(RuntimeError), scoped.transaction() as tx:
        tx.set("g", "k", "v" * 50)
        raise RuntimeError("roll back")
    assert store.get("ns:g", "k") == "v" * 10
    assert_room_is_exactly(scoped, 100 - 11)


def test_touch_and_delete_keep_the_byte_total_exact(store: Store) -> None:
    scoped = bytes_quota(store, 100)
    scoped.set("g", "k", "v" * 10)
    scoped.set("g", "gone", "v" * 20)
    assert scoped.touch("g", "k", 3600)
    assert not scoped.touch("g", "absent", 3600)
    scoped.delete("g", "gone")
    scoped.delete("g", "absent")
    scoped.set("g", "k", "v" * 12)
    assert_room_is_exactly(scoped, 100 - 13)


def test_writes_to_more_keys_than_the_ledger_remembers_keep_the_total_exact() -> None:
    # In memory only: the ledger is the same on every engine, and 10,000 checked writes
    # cost seconds on the others.
    with Store(":memory:", purge_interval=0) as store:
        scoped = bytes_quota(store, 10**6)
        # set_many checks and records entry by entry, as set does, in one transaction
        scoped.set_many("g", {f"k{i:04d}": "v" for i in range(5000)})
        scoped.set_many("g", {f"k{i:04d}": "vv" for i in range(5000)})
        scoped.set("g", "k0001", "vvv")  # a single set after the ledger forgot rows
        assert_room_is_exactly(scoped, 10**6 - 5000 * 7 - 1)
