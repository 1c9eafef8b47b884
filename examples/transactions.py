"""A money transfer between accounts: both balances change together, or neither does.

Run: ``python examples/transactions.py``
"""

from __future__ import annotations

import gostore


class InsufficientFunds(Exception):
    pass


def transfer(store: gostore.Store, source: str, target: str, amount: int) -> None:
    """Move ``amount`` from ``source`` to ``target`` atomically."""
    with store.transaction() as tx:
        balance = int(tx.get("accounts", source))
        tx.set("accounts", source, str(balance - amount))
        # The debit is already written inside the transaction; any exception from here on
        # rolls it back.
        if balance < amount:
            raise InsufficientFunds(f"{source} has {balance}, needs {amount}")
        tx.set("accounts", target, str(int(tx.get("accounts", target)) + amount))
        tx.set("ledger", f"{source}->{target}", str(amount))


def balances(store: gostore.Store) -> str:
    return ", ".join(f"{k}={v}" for k, v in store.all("accounts"))


def main() -> None:
    with gostore.Store(purge_interval=0) as store:
        store.set_many("accounts", {"alice": "100", "bob": "50"})
        events: list[str] = []
        # Events are sent only after a commit, never for a rolled-back write.
        store.on_change(lambda event: events.append(f"{event.type} {event.key}={event.value}"))
        print("start:", balances(store))

        transfer(store, "alice", "bob", 30)
        print("after alice->bob 30:", balances(store))
        print("events:", events)
        events.clear()

        try:
            transfer(store, "bob", "alice", 500)
        except InsufficientFunds as exc:
            print("transfer failed:", exc)
        print("after the failed transfer:", balances(store), "(rolled back)")
        print("events:", events)

        try:
            transfer(store, "alice", "mallory", 10)  # no such account
        except gostore.NotFoundError as exc:
            print("transfer failed:", exc)
        print("after the second failed transfer:", balances(store))

        total = sum(int(v) for v in store.get_all("accounts").values())
        print("total money:", total)
        print("ledger:", store.get_all("ledger"))


if __name__ == "__main__":
    main()
