"""Each program in examples/ runs as a user would run it and prints what it promises.

The subprocess inherits GOSTORE_PURE, so the examples run in both modes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=dict(os.environ),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


def test_every_example_is_tested() -> None:
    tested = {"config_store.py", "session_cache.py", "multi_tenant.py",
              "websocket_broadcast.py", "transactions.py", "aio_http.py",
              "workers_feed.py"}
    assert {path.name for path in EXAMPLES.glob("*.py")} == tested


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.stem)
def test_example_defines_main_and_runs_it_only_as_a_script(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert "\ndef main() -> None:" in source
    assert source.rstrip().endswith('if __name__ == "__main__":\n    main()')


def test_config_store_renders_the_group_into_a_template() -> None:
    lines = run_example("config_store.py")
    assert "groups: ['db', 'features', 'web']" in lines
    assert "features: ['search', 'dark-mode', '', 'beta']" in lines
    assert "    listen 8080;" in lines
    assert "    server_name example.com;" in lines
    assert "after the port change: example.com:443" in lines
    assert "lenient render: 'example.com:'" in lines
    assert any(line.startswith("strict render failed:") and "missing" in line for line in lines)


def test_session_cache_expires_short_sessions_and_purges_them() -> None:
    lines = run_example("session_cache.py")
    assert "active sessions: 3" in lines
    assert "after 0.5 s: active sessions: 1" in lines
    assert "bob's token belongs to None" in lines  # after the expiry
    assert "purged 1 expired session(s)" in lines
    # One EXPIRE from bob's lazy delete in get(), one from the purge of carol's row.
    assert sum(line.startswith("event: expire sessions/") for line in lines) == 2
    assert "carol's token belongs to None" in lines
    assert lines[-1] == "after alice logs out: active sessions: 0"


def test_multi_tenant_enforces_each_tenants_quota() -> None:
    lines = run_example("multi_tenant.py")
    assert "acme theme: dark / tiny-co theme: light" in lines
    refused = [line for line in lines if line.startswith("  refused for tiny-co:")]
    assert len(refused) == 2
    assert "limit of 2 groups" in refused[0] and "limit of 3 keys" in refused[1]
    assert "tiny-co groups: ['config', 'users'] keys: 3" in lines
    assert "all groups in the store: ['acme:config', 'tiny-co:config', 'tiny-co:users']" in lines
    assert "transaction refused; tiny-co still has 3 keys" in lines
    assert any(line.startswith("invalid namespace:") for line in lines)
    assert lines[-1] == "tiny-co removed (3 rows); store groups now: ['acme:config']"


def test_websocket_broadcast_fans_every_event_out_to_every_client() -> None:
    lines = run_example("websocket_broadcast.py")
    for client in ("browser-1", "browser-2"):
        frames = [line for line in lines if line.startswith(f"[{client}] ")]
        assert frames == [
            f"[{client}] " + frame
            for frame in (
                '{"type": "set", "group": "config", "key": "theme", "value": "dark"}',
                '{"type": "set", "group": "config", "key": "lang", "value": "en"}',
                '{"type": "set", "group": "config", "key": "tz", "value": "UTC"}',
                '{"type": "delete", "group": "config", "key": "tz", "value": ""}',
                '{"type": "set", "group": "presence", "key": "alice", "value": "online"}',
                '{"type": "delete_group", "group": "presence", "key": "", "value": ""}',
            )
        ]
        assert f"{client} received 6 frames, dropped 0" in lines
    # The async watcher sees only its group, in commit order.
    assert [line for line in lines if line.startswith("[audit watcher]")] == [
        "[audit watcher] set config/theme",
        "[audit watcher] set config/lang",
        "[audit watcher] set config/tz",
        "[audit watcher] delete config/tz",
    ]


def test_transactions_roll_back_a_failed_transfer() -> None:
    lines = run_example("transactions.py")
    assert "after alice->bob 30: alice=70, bob=80" in lines
    assert "events: ['set alice=70', 'set bob=80', 'set alice->bob=30']" in lines
    assert "transfer failed: bob has 80, needs 500" in lines
    assert "after the failed transfer: alice=70, bob=80 (rolled back)" in lines
    assert "events: []" in lines  # nothing is announced for a rolled-back write
    assert "after the second failed transfer: alice=70, bob=80" in lines
    assert "total money: 150" in lines


def test_aio_http_serves_keys_and_counts_concurrent_increments_exactly() -> None:
    lines = run_example("aio_http.py")
    assert lines == [
        "PUT /kv/config/colour -> 204",
        "PUT /kv/config/size -> 204",
        "GET /kv/config/colour -> 200 blue",
        'GET /kv/config -> 200 {"colour": "blue", "size": "XL"}',
        "DELETE /kv/config/size -> 204",
        "GET /kv/config/size -> 404 config/size not found",
        "PATCH /kv/config/size -> 405 method not allowed",
        # each increment read and wrote in one transaction: no two saw the same count
        "50 concurrent POST /counters/hits -> 50 distinct replies",
        "GET /kv/counters/hits -> 200 50",
        "server stopped; store closed: True",
    ]


def test_workers_feed_each_worker_hears_the_other_three_and_the_record_replays() -> None:
    lines = run_example("workers_feed.py")
    for n in range(4):
        others = sorted(f"w{m}" for m in range(4) if m != n)
        assert f"worker {n} heard {others}" in lines
    assert "changes since seq 0: 4, keys ['w0', 'w1', 'w2', 'w3']" in lines
    assert lines[-1] == "in commit order: True"
