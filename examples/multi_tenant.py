"""Tenants sharing one store: a ScopedStore per tenant, each with its own quota.

Run: ``python examples/multi_tenant.py``
"""

from __future__ import annotations

import gostore

FREE_PLAN = gostore.QuotaConfig(max_keys=3, max_groups=2)
PAID_PLAN = gostore.QuotaConfig(max_keys=1000, max_groups=50, max_bytes=1 << 20)


def save(tenant: gostore.ScopedStore, group: str, key: str, value: str) -> bool:
    try:
        tenant.set(group, key, value)
    except gostore.QuotaExceededError as exc:
        print(f"  refused for {tenant.namespace}: {exc}")
        return False
    print(f"  {tenant.namespace}: saved {group}/{key}")
    return True


def main() -> None:
    with gostore.Store(purge_interval=0) as store:
        acme = store.scoped("acme", PAID_PLAN)
        tiny = gostore.ScopedStore(store, "tiny-co", FREE_PLAN)

        print("both tenants use the same local group names:")
        save(acme, "config", "theme", "dark")
        save(tiny, "config", "theme", "light")
        themes = acme.get("config", "theme"), tiny.get("config", "theme")
        print("acme theme: {} / tiny-co theme: {}".format(*themes))

        print("tiny-co on the free plan (3 keys, 2 groups):")
        save(tiny, "users", "ann", "owner")  # a 2nd group
        save(tiny, "billing", "plan", "free")  # a 3rd group: refused
        save(tiny, "config", "lang", "en")  # the 3rd key
        save(tiny, "users", "ben", "viewer")  # a 4th key: refused
        save(tiny, "users", "ann", "admin")  # replacing a key adds nothing: allowed
        tiny.delete("config", "lang")
        save(tiny, "users", "ben", "viewer")  # room again after the delete

        # Group names are local to the namespace; the store sees the prefixed names.
        print("tiny-co groups:", tiny.groups(), "keys:", tiny.count_all())
        print("acme groups:", acme.groups(), "keys:", acme.count_all())
        print("all groups in the store:", store.groups())

        # A transaction is checked as a whole: nothing is written when it would exceed.
        try:
            with tiny.transaction() as tx:
                tx.set("users", "cat", "viewer")
        except gostore.QuotaExceededError:
            print("transaction refused; tiny-co still has", tiny.count_all(), "keys")

        try:
            store.scoped("bad namespace!")
        except gostore.InvalidNamespaceError as exc:
            print("invalid namespace:", exc)

        # Removing a tenant removes only its groups.
        removed = tiny.delete_prefix("")
        print(f"tiny-co removed ({removed} rows); store groups now:", store.groups())


if __name__ == "__main__":
    main()
