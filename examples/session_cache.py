"""A session cache: entries with a time to live, lazy expiry on read, and purging.

Run: ``python examples/session_cache.py``
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta

import gostore

SHORT_TTL = 0.5  # seconds; short so the example can watch a session expire


def login(store: gostore.Store, user: str, ttl: float | timedelta) -> str:
    token = secrets.token_hex(8)
    store.set_with_ttl("sessions", token, user, ttl)
    return token


def who_is(store: gostore.Store, token: str) -> str | None:
    try:
        return store.get("sessions", token)
    except gostore.NotFoundError:  # never stored, logged out or expired
        return None


def main() -> None:
    # purge_interval=0: no background purge thread, so this example purges by hand below.
    # A long-running service keeps the default (every 60 s).
    with gostore.Store(purge_interval=0) as store:
        alice = login(store, "alice", timedelta(hours=1))
        bob = login(store, "bob", SHORT_TTL)
        carol = login(store, "carol", SHORT_TTL)
        print("active sessions:", store.count("sessions"))
        print("alice's token belongs to", who_is(store, alice))
        print("bob's token belongs to", who_is(store, bob))

        # Watch for expiry events, as a service would to log users out elsewhere.
        with store.watch("sessions", "*") as watcher:
            time.sleep(SHORT_TTL + 0.1)
            # Expired entries vanish from every read at once...
            print(f"after {SHORT_TTL} s: active sessions:", store.count("sessions"))
            # ...and a get of an expired key deletes its row (the lazy delete).
            print("bob's token belongs to", who_is(store, bob))
            # carol's row is still on disk, invisible; a purge removes it.
            print("purged", store.purge_expired(), "expired session(s)")
            for event in iter(watcher.get_nowait, None):
                print(f"event: {event.type} {event.group}/{event.key[:4]}...")
        print("carol's token belongs to", who_is(store, carol))

        # Logging out is a delete; refreshing a session is a set with a new TTL.
        store.set_with_ttl("sessions", alice, "alice", timedelta(hours=2))
        store.delete("sessions", alice)
        print("after alice logs out: active sessions:", store.count("sessions"))


if __name__ == "__main__":
    main()
