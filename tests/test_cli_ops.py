"""The command line's atomic and maintenance commands: incr, ttl, exists, touch, backup, check,
stats, vacuum, checkpoint, run as a user runs them (a subprocess, in both modes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gostore

from .test_cli import one_error_line, run


@pytest.fixture
def seeded(db_path: Path) -> Path:
    with gostore.Store(db_path, purge_interval=0) as store:
        store.set("counters", "hits", "41")
        store.set("config", "colour", "blue")
        store.set_with_ttl("sessions", "s1", "token", 3600)
    return db_path


# -- incr ----------------------------------------------------------------------------------------
def test_incr_prints_the_new_value(seeded: Path) -> None:
    result = run("incr", "counters", "hits", db=seeded)
    assert (result.returncode, result.stdout, result.stderr) == (0, "42\n", "")
    assert run("incr", "counters", "hits", "-50", db=seeded).stdout == "-8\n"
    assert run("incr", "counters", "new", db=seeded).stdout == "1\n"
    result = run("--json", "incr", "counters", "hits", "10", db=seeded)
    assert json.loads(result.stdout) == {"group": "counters", "key": "hits", "value": 2}


def test_incr_of_a_non_integer_value_exits_2_and_writes_nothing(seeded: Path) -> None:
    result = run("incr", "config", "colour", db=seeded)
    assert result.returncode == 2
    assert "not a base-10 integer" in one_error_line(result)
    assert run("get", "config", "colour", db=seeded).stdout == "blue\n"


def test_incr_with_a_non_integer_delta_is_a_usage_error(seeded: Path) -> None:
    result = run("incr", "counters", "hits", "1.5", db=seeded)
    assert result.returncode == 2
    assert "invalid int value" in one_error_line(result)


def test_incr_of_a_missing_database_exits_3_and_creates_nothing(tmp_path: Path) -> None:
    result = run("incr", "g", "k", db=tmp_path / "missing.db")
    assert result.returncode == 3
    assert "does not exist" in one_error_line(result)
    assert not (tmp_path / "missing.db").exists()


# -- ttl, exists, touch ---------------------------------------------------------------------------
def test_ttl_prints_seconds_or_none(seeded: Path) -> None:
    assert float(run("ttl", "sessions", "s1", db=seeded).stdout) == pytest.approx(3600, abs=30)
    assert run("ttl", "config", "colour", db=seeded).stdout == "none\n"
    result = run("--json", "ttl", "config", "colour", db=seeded)
    assert json.loads(result.stdout) == {"group": "config", "key": "colour", "ttl": None}


def test_ttl_of_a_missing_key_exits_1(seeded: Path) -> None:
    result = run("ttl", "config", "missing", db=seeded)
    assert result.returncode == 1
    assert "not found" in one_error_line(result)


def test_exists_exits_0_when_live_and_1_when_not(seeded: Path) -> None:
    present = run("exists", "config", "colour", db=seeded)
    absent = run("exists", "config", "missing", db=seeded)
    assert (present.returncode, present.stdout) == (0, "true\n")
    assert (absent.returncode, absent.stdout, absent.stderr) == (1, "false\n", "")
    result = run("--json", "exists", "config", "missing", db=seeded)
    assert json.loads(result.stdout)["exists"] is False


def test_touch_sets_or_clears_the_expiry(seeded: Path) -> None:
    assert run("touch", "config", "colour", "--ttl", "60", db=seeded).returncode == 0
    assert float(run("ttl", "config", "colour", db=seeded).stdout) == pytest.approx(60, abs=30)
    assert run("touch", "config", "colour", "--no-ttl", db=seeded).returncode == 0
    assert run("ttl", "config", "colour", db=seeded).stdout == "none\n"
    assert run("get", "config", "colour", db=seeded).stdout == "blue\n"


def test_touch_of_a_missing_key_exits_1(seeded: Path) -> None:
    result = run("touch", "config", "missing", "--ttl", "5", db=seeded)
    assert result.returncode == 1
    assert "not found: config/missing" in one_error_line(result)


def test_touch_needs_exactly_one_of_ttl_and_no_ttl(seeded: Path) -> None:
    assert run("touch", "config", "colour", db=seeded).returncode == 2
    both = run("touch", "config", "colour", "--ttl", "5", "--no-ttl", db=seeded)
    assert both.returncode == 2
    assert run("touch", "config", "colour", "--ttl", "-5", db=seeded).returncode == 2


# -- backup, check, stats, vacuum, checkpoint -----------------------------------------------------
def test_backup_writes_a_copy_that_opens(seeded: Path, tmp_path: Path) -> None:
    dest = tmp_path / "copy.db"
    result = run("backup", str(dest), db=seeded)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"backed up to {dest} (")
    assert run("get", "config", "colour", db=dest).stdout == "blue\n"


def test_backup_to_an_existing_file_exits_3(seeded: Path, tmp_path: Path) -> None:
    dest = tmp_path / "taken.db"
    dest.write_bytes(b"keep me")
    result = run("backup", str(dest), db=seeded)
    assert result.returncode == 3
    assert "already exists" in one_error_line(result)
    assert dest.read_bytes() == b"keep me"


def test_check_of_a_healthy_database_prints_ok_and_exits_0(seeded: Path) -> None:
    result = run("check", db=seeded)
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")
    assert json.loads(run("--json", "check", db=seeded).stdout) == {"ok": True, "problems": []}


def test_check_of_a_damaged_database_lists_problems_and_exits_3(db_path: Path) -> None:
    with gostore.Store(db_path, purge_interval=0) as store:
        store.set_many("g", {f"k{i:05d}": "v" * 50 for i in range(5000)})
    data = bytearray(db_path.read_bytes())
    changed = 0
    start = 0
    while (at := data.find(b"k02483", start)) >= 0:  # the index entries, not the table row
        if data[at + 6 : at + 7] != b"v":
            data[at + 1] = ord("9")
            changed += 1
        start = at + 1
    assert changed
    db_path.write_bytes(bytes(data))
    result = run("check", db=db_path)
    assert result.returncode == 3
    assert "missing from index" in result.stdout
    report = json.loads(run("--json", "check", db=db_path).stdout)
    assert report["ok"] is False and report["problems"]


def test_stats_prints_each_field_and_json(seeded: Path) -> None:
    result = run("stats", db=seeded)
    assert result.returncode == 0
    lines = dict(line.split(": ") for line in result.stdout.splitlines())
    assert list(lines) == list(gostore.StoreStats._fields)
    assert (lines["keys"], lines["groups"]) == ("3", "3")
    stats = json.loads(run("--json", "stats", db=seeded).stdout)
    assert stats["keys"] == 3
    assert stats["bytes"] == len("hits41") + len("colourblue") + len("s1token")
    assert stats["file_bytes"] > 0


def test_vacuum_shrinks_the_file_after_deletes(db_path: Path) -> None:
    with gostore.Store(db_path, purge_interval=0) as store:
        store.set_many("big", {f"k{i}": "x" * 1000 for i in range(1000)})
        store.delete_group("big")
        store.set("keep", "k", "v")
    result = run("--json", "vacuum", db=db_path)
    assert result.returncode == 0, result.stderr
    sizes = json.loads(result.stdout)
    assert sizes["file_bytes_after"] < sizes["file_bytes_before"]
    assert run("get", "keep", "k", db=db_path).stdout == "v\n"


def test_checkpoint_reports_frames_and_takes_a_mode(seeded: Path) -> None:
    result = run("checkpoint", db=seeded)
    assert result.returncode == 0
    assert result.stdout.startswith("checkpointed ")
    report = json.loads(run("--json", "checkpoint", "--mode", "truncate", db=seeded).stdout)
    assert report == {"wal_frames": 0, "checkpointed_frames": 0}
    assert run("checkpoint", "--mode", "sideways", db=seeded).returncode == 2


@pytest.mark.parametrize("command", ["check", "stats", "vacuum", "checkpoint"])
def test_maintenance_commands_on_a_missing_database_exit_3(tmp_path: Path, command: str) -> None:
    result = run(command, db=tmp_path / "missing.db")
    assert result.returncode == 3
    assert not (tmp_path / "missing.db").exists()
