"""ScopedStore namespaces (without quotas: see test_quota.py), go-store's
scope test matrix and namespace-local prefix operations."""

from __future__ import annotations

import pytest

import gostore
from gostore import (
    EventType,
    InvalidNamespaceError,
    NotFoundError,
    QuotaConfig,
    ScopedStore,
    Store,
    StoreError,
)

from .conftest import drain


# -- namespace validation --------------------------------------------------------------------
@pytest.mark.parametrize("namespace", ["tenant-a", "A1", "x", "-", "0123", "Tenant-B-2"])
def test_valid_namespace_is_accepted_and_returned(store: Store, namespace: str) -> None:
    assert ScopedStore(store, namespace).namespace == namespace
    assert store.scoped(namespace).namespace == namespace


@pytest.mark.parametrize(
    "namespace", ["", "a:b", "tenant\n", "ü", " a", "a ", "a_b", "a.b", "tenant-a\x00", "a*"]
)
def test_invalid_namespace_raises_invalid_namespace_error(store: Store, namespace: str) -> None:
    with pytest.raises(InvalidNamespaceError) as info:
        ScopedStore(store, namespace)
    assert isinstance(info.value, ValueError) and isinstance(info.value, StoreError)
    with pytest.raises(InvalidNamespaceError):
        store.scoped(namespace)


def test_non_str_namespace_raises_type_error(store: Store) -> None:
    with pytest.raises(TypeError):
        ScopedStore(store, 1)  # type: ignore[arg-type]


def test_scoped_store_requires_a_store() -> None:
    with pytest.raises(TypeError):
        ScopedStore("not a store", "ns")  # type: ignore[arg-type]


def test_scoped_exposes_store_and_quota(store: Store) -> None:
    quota = QuotaConfig(max_keys=3)
    scoped = store.scoped("ns", quota)
    assert scoped.store is store
    assert scoped.quota == quota
    assert store.scoped("ns").quota is None
    assert "ns" in repr(scoped)


# -- every method maps to "ns:group" -----------------------------------------------------------
def test_writes_land_in_the_prefixed_group_of_the_underlying_store(store: Store) -> None:
    scoped = store.scoped("tenant-a")
    scoped.set("config", "colour", "blue")
    scoped.set_with_ttl("config", "size", "large", 60)
    scoped.set_many("prefs", {"lang": "en", "tz": "UTC"})
    assert store.get_all("tenant-a:config") == {"colour": "blue", "size": "large"}
    assert store.get_all("tenant-a:prefs") == {"lang": "en", "tz": "UTC"}
    assert store.count("config") == 0


def test_reads_come_from_the_prefixed_group(store: Store) -> None:
    store.set_many("tenant-a:g", {"a": "1", "b": "x y  z", "c": "p,q"})
    store.set("g", "a", "unscoped")
    scoped = store.scoped("tenant-a")
    assert scoped.get("g", "a") == "1"
    assert scoped.exists("g", "a") and not scoped.exists("g", "zz")
    assert scoped.count("g") == 3
    assert scoped.get_all("g") == {"a": "1", "b": "x y  z", "c": "p,q"}
    assert [kv.key for kv in scoped.all("g")] == ["a", "b", "c"]
    assert scoped.get_page("g", 1, 1) == [gostore.KeyValue("b", "x y  z")]
    assert list(scoped.get_split("g", "c", ",")) == ["p", "q"]
    assert list(scoped.get_fields("g", "b")) == ["x", "y", "z"]
    assert scoped.render("{{ a }}-{{ c }}", "g") == "1-p,q"
    assert scoped.get_many("g", ["a", "c", "missing"]) == {"a": "1", "c": "p,q"}


def test_deletes_act_on_the_prefixed_group(store: Store) -> None:
    store.set_many("tenant-a:g", {"a": "1", "b": "2"})
    store.set_many("g", {"a": "1", "b": "2"})
    scoped = store.scoped("tenant-a")
    scoped.delete("g", "a")
    assert store.get_all("tenant-a:g") == {"b": "2"}
    scoped.delete_group("g")
    assert store.count("tenant-a:g") == 0
    assert store.get_all("g") == {"a": "1", "b": "2"}


def test_get_of_missing_key_raises_not_found_naming_the_full_group(store: Store) -> None:
    with pytest.raises(NotFoundError) as info:
        store.scoped("tenant-a").get("config", "missing")
    assert info.value.group == "tenant-a:config"


def test_scoped_methods_check_argument_types(store: Store) -> None:
    scoped = store.scoped("tenant-a")
    with pytest.raises(TypeError):
        scoped.set(1, "k", "v")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        scoped.get("g", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        scoped.count_all(None)  # type: ignore[arg-type]
    assert store.count_all() == 0


def test_two_namespaces_do_not_collide(store: Store) -> None:
    a, b = store.scoped("tenant-a"), store.scoped("tenant-b")
    a.set("config", "colour", "blue")
    b.set("config", "colour", "red")
    assert a.get("config", "colour") == "blue"
    assert b.get("config", "colour") == "red"
    a.delete_group("config")
    assert b.get_all("config") == {"colour": "red"}
    with pytest.raises(NotFoundError):
        a.get("config", "colour")


# -- namespace-local group and prefix operations -----------------------------------------------
@pytest.fixture
def neighbours(store: Store) -> tuple[ScopedStore, ScopedStore]:
    """ "tenant-a" and "tenant-ab": one name is a prefix of the other."""
    a, ab = store.scoped("tenant-a"), store.scoped("tenant-ab")
    a.set_many("config", {"x": "1", "y": "2"})
    a.set("cache", "z", "3")
    ab.set_many("config", {"x": "1"})
    ab.set("cache", "z", "3")
    store.set("tenant-a", "bare", "no colon")  # a group named like the namespace, outside it
    store.set("unrelated", "k", "v")
    return a, ab


def test_groups_returns_local_names_of_this_namespace_only(
    store: Store, neighbours: tuple[ScopedStore, ScopedStore]
) -> None:
    a, ab = neighbours
    assert a.groups() == ["cache", "config"]
    assert ab.groups() == ["cache", "config"]
    assert a.groups("con") == ["config"]
    assert list(a.groups_iter()) == ["cache", "config"]
    assert store.scoped("empty").groups() == []


def test_groups_leave_out_groups_with_only_expired_keys(store: Store) -> None:
    scoped = store.scoped("ns")
    scoped.set_with_ttl("gone", "k", "v", 0)
    scoped.set("live", "k", "v")
    assert scoped.groups() == ["live"]
    assert scoped.count_all() == 1


def test_count_all_is_namespace_local(neighbours: tuple[ScopedStore, ScopedStore]) -> None:
    a, ab = neighbours
    assert a.count_all() == 3
    assert ab.count_all() == 2
    assert a.count_all("con") == 2


def test_delete_prefix_is_namespace_local(
    store: Store, neighbours: tuple[ScopedStore, ScopedStore]
) -> None:
    a, ab = neighbours
    assert a.delete_prefix("") == 3
    assert a.groups() == []
    assert ab.count_all() == 2
    assert store.get("tenant-a", "bare") == "no colon"
    assert store.get("unrelated", "k") == "v"


def test_delete_prefix_with_a_local_prefix_removes_only_matching_groups(
    neighbours: tuple[ScopedStore, ScopedStore],
) -> None:
    a, ab = neighbours
    assert a.delete_prefix("conf") == 2
    assert a.groups() == ["cache"]
    assert ab.groups() == ["cache", "config"]


def test_delete_prefix_emits_full_group_names(store: Store) -> None:
    scoped = store.scoped("ns")
    scoped.set("g1", "k", "v")
    watcher = store.watch("*", "*")
    scoped.delete_prefix("")
    assert [(e.type, e.group) for e in drain(watcher)] == [(EventType.DELETE_GROUP, "ns:g1")]


def test_purge_expired_is_namespace_local(store: Store) -> None:
    a, ab = store.scoped("tenant-a"), store.scoped("tenant-ab")
    a.set_with_ttl("g", "old", "v", 0)
    a.set("g", "live", "v")
    ab.set_with_ttl("g", "old", "v", 0)
    store.set_with_ttl("tenant-a", "old", "v", 0)
    assert a.purge_expired() == 1
    # the neighbours' expired rows are still physically there for their own purge
    assert ab.purge_expired() == 1
    assert store.purge_expired() == 1
    assert a.get_all("g") == {"live": "v"}


# -- transactions and watchers ---------------------------------------------------------------
def test_scoped_transaction_commits_into_the_namespace(store: Store) -> None:
    scoped = store.scoped("ns")
    with scoped.transaction() as tx:
        tx.set("g", "a", "1")
        tx.set_many("g", {"b": "2"})
        assert tx.count("g") == 2
        assert tx.groups() == ["g"]
    assert store.get_all("ns:g") == {"a": "1", "b": "2"}


def test_scoped_transaction_rolls_back_on_exception(store: Store) -> None:
    scoped = store.scoped("ns")
    scoped.set("g", "kept", "1")
    with pytest.raises(RuntimeError), scoped.transaction() as tx:
        tx.set("g", "new", "2")
        tx.delete("g", "kept")
        raise RuntimeError
    assert scoped.get_all("g") == {"kept": "1"}


def test_scoped_transaction_object_is_unusable_after_the_block(store: Store) -> None:
    with store.scoped("ns").transaction() as tx:
        tx.set("g", "a", "1")
    with pytest.raises(StoreError):
        tx.set("g", "b", "2")
    with pytest.raises(StoreError):
        tx.get("g", "a")


def test_scoped_watch_specific_group_and_key(store: Store) -> None:
    scoped = store.scoped("ns")
    watcher = scoped.watch("config", "colour")
    scoped.set("config", "colour", "blue")
    scoped.set("config", "size", "big")
    store.set("config", "colour", "unscoped")
    assert [(e.group, e.key, e.value) for e in drain(watcher)] == [("ns:config", "colour", "blue")]
    scoped.unwatch(watcher)
    assert watcher.closed


def test_scoped_watch_star_sees_every_group_of_the_namespace_and_nothing_outside(
    store: Store,
) -> None:
    a, ab = store.scoped("tenant-a"), store.scoped("tenant-ab")
    everything = a.watch("*", "*")
    colours = a.watch("*", "colour")
    a.set("g1", "colour", "red")
    a.set("g2", "size", "big")
    ab.set("g1", "colour", "blue")
    store.set("tenant-a", "colour", "bare")
    store.set("other:g", "colour", "x")
    a.delete_group("g2")
    assert [(e.type, e.group, e.key) for e in drain(everything)] == [
        (EventType.SET, "tenant-a:g1", "colour"),
        (EventType.SET, "tenant-a:g2", "size"),
        (EventType.DELETE_GROUP, "tenant-a:g2", ""),
    ]
    # DELETE_GROUP reaches only "*"-key watchers
    assert [(e.group, e.key) for e in drain(colours)] == [("tenant-a:g1", "colour")]


def test_scoped_watch_star_is_closed_with_the_store() -> None:
    store = Store(purge_interval=0)
    watcher = store.scoped("ns").watch("*", "*")
    store.close()
    assert watcher.closed
