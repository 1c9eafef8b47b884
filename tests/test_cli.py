"""The command line, run as a user runs it: ``python -m gostore ...`` in a subprocess.

The subprocess inherits GOSTORE_PURE, so the whole file runs in both modes.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import apsw
import pytest

import gostore
from gostore import cli


def run(
    *args: str | bytes,
    db: Path | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    command: list[str | bytes] = [sys.executable, "-m", "gostore"]
    if db is not None:
        command += ["--db", str(db)]
    environment = {k: v for k, v in os.environ.items() if k != "GOSTORE_DB"}
    environment.update(env or {})
    return subprocess.run(
        [*command, *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=environment,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``gostore: error: ...`` line on stderr (and nothing else)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gostore: error: "), result.stderr
    return lines[0]


def export_lines(db: Path) -> list[dict[str, object]]:
    result = run("export", db=db)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.split("\n") if line]


@pytest.fixture
def seeded(db_path: Path) -> Path:
    with gostore.Store(db_path, purge_interval=0) as store:
        store.set("config", "colour", "blue")
        store.set("config", "size", "10")
        store.set("config-extra", "x", "1")
        store.set("users", "alice", "admin")
    return db_path


# -- get / set / delete -------------------------------------------------------------------------
def test_set_then_get_prints_the_value(db_path: Path) -> None:
    assert run("set", "config", "colour", "blue", db=db_path).returncode == 0
    result = run("get", "config", "colour", db=db_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "blue\n", "")


def test_get_json_prints_group_key_and_value(seeded: Path) -> None:
    result = run("--json", "get", "config", "colour", db=seeded)
    assert json.loads(result.stdout) == {"group": "config", "key": "colour", "value": "blue"}


def test_get_of_missing_key_exits_1_with_one_error_line(seeded: Path) -> None:
    result = run("get", "config", "nope", db=seeded)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "not found" in one_error_line(result)


def test_set_value_starting_with_dash_after_double_dash(db_path: Path) -> None:
    assert run("set", "g", "k", "--", "--not-an-option", db=db_path).returncode == 0
    assert run("get", "g", "k", db=db_path).stdout == "--not-an-option\n"


def test_set_with_ttl_stores_expiry_in_unix_ms(db_path: Path) -> None:
    before = time.time_ns() // 1_000_000
    assert run("set", "sessions", "s1", "tok", "--ttl", "100", db=db_path).returncode == 0
    after = time.time_ns() // 1_000_000
    [entry] = export_lines(db_path)
    assert isinstance(entry["expires_at"], int)
    assert before + 100_000 <= entry["expires_at"] <= after + 100_000


def test_set_without_ttl_clears_an_existing_ttl(db_path: Path) -> None:
    run("set", "g", "k", "v1", "--ttl", "100", db=db_path)
    run("set", "g", "k", "v2", db=db_path)
    assert export_lines(db_path) == [{"group": "g", "key": "k", "value": "v2", "expires_at": None}]


@pytest.mark.parametrize("ttl", ["0", "-5", "nan", "inf", "soon"])
def test_set_with_bad_ttl_exits_2_and_creates_nothing(db_path: Path, ttl: str) -> None:
    result = run("set", "g", "k", "v", "--ttl", ttl, db=db_path)
    assert result.returncode == 2
    assert "--ttl" in one_error_line(result)
    assert not db_path.exists()


def test_argument_that_is_not_valid_utf8_exits_2(db_path: Path) -> None:
    # Linux hands Python the raw bytes; they arrive as a lone surrogate the store refuses.
    result = run("set", "g", b"bad\xffkey", "v", db=db_path)
    assert result.returncode == 2
    assert "UTF-8" in one_error_line(result)


def test_delete_removes_the_key_and_absent_key_is_not_an_error(seeded: Path) -> None:
    assert run("delete", "config", "colour", db=seeded).returncode == 0
    assert run("get", "config", "colour", db=seeded).returncode == 1
    assert run("delete", "config", "colour", db=seeded).returncode == 0


def test_delete_group_removes_every_key_of_that_group_only(seeded: Path) -> None:
    assert run("delete-group", "config", db=seeded).returncode == 0
    assert run("count", "config", db=seeded).stdout == "0\n"
    assert run("count", "config-extra", db=seeded).stdout == "1\n"


# -- reads --------------------------------------------------------------------------------------
def test_groups_lists_groups_with_prefix_in_order(seeded: Path) -> None:
    assert run("groups", db=seeded).stdout == "config\nconfig-extra\nusers\n"
    assert run("groups", "config", db=seeded).stdout == "config\nconfig-extra\n"
    result = run("--json", "groups", "con", db=seeded)
    assert json.loads(result.stdout) == ["config", "config-extra"]


def test_count_prints_live_keys_plain_and_json(seeded: Path) -> None:
    assert run("count", "config", db=seeded).stdout == "2\n"
    result = run("--json", "count", "config", db=seeded)
    assert json.loads(result.stdout) == {"group": "config", "count": 2}


def test_all_prints_entries_by_key_plain_and_json(seeded: Path) -> None:
    assert run("all", "config", db=seeded).stdout == "colour\tblue\nsize\t10\n"
    result = run("--json", "all", "config", db=seeded)
    assert result.stdout.endswith("}\n")
    assert list(json.loads(result.stdout).items()) == [("colour", "blue"), ("size", "10")]


def test_all_json_of_empty_group_is_an_empty_object(seeded: Path) -> None:
    assert json.loads(run("--json", "all", "nothing", db=seeded).stdout) == {}


def test_purge_removes_expired_entries_and_says_how_many(seeded: Path) -> None:
    with gostore.Store(seeded, purge_interval=0) as store:
        store.set_with_ttl("sessions", "old", "x", -1)  # already expired
        store.set_with_ttl("sessions", "new", "y", 3600)
    result = run("purge", db=seeded)
    assert (result.returncode, result.stdout) == (0, "purged 1 expired entry\n")
    assert json.loads(run("--json", "purge", db=seeded).stdout) == {"purged": 0}
    assert run("count", "sessions", db=seeded).stdout == "1\n"


# -- the database path ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [["get", "g", "k"], ["count", "g"], ["groups"], ["all", "g"], ["export"], ["purge"],
     ["delete", "g", "k"], ["delete-group", "g"]],
)
def test_commands_that_do_not_write_refuse_a_missing_database(
    db_path: Path, command: list[str]
) -> None:
    result = run(*command, db=db_path)
    assert result.returncode == 3
    assert "does not exist" in one_error_line(result)
    assert not db_path.exists()  # a mistyped path leaves no empty file behind


def test_file_that_is_not_a_database_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not a SQLite database, just text " * 100)
    result = run("count", "g", db=path)
    assert result.returncode == 3
    assert "not a SQLite database" in one_error_line(result)


def test_database_defaults_to_gostore_db_env_then_current_directory(tmp_path: Path) -> None:
    from_env = tmp_path / "env.db"
    result = run("set", "g", "k", "env", cwd=tmp_path, env={"GOSTORE_DB": str(from_env)})
    assert result.returncode == 0
    assert run("set", "g", "k", "cwd", cwd=tmp_path).returncode == 0
    with gostore.Store(from_env, purge_interval=0) as store:
        assert store.get("g", "k") == "env"
    with gostore.Store(tmp_path / "gostore.db", purge_interval=0) as store:
        assert store.get("g", "k") == "cwd"


def test_db_option_wins_over_the_environment(tmp_path: Path) -> None:
    chosen = tmp_path / "chosen.db"
    run("set", "g", "k", "v", db=chosen, env={"GOSTORE_DB": str(tmp_path / "env.db")})
    assert chosen.exists()
    assert not (tmp_path / "env.db").exists()


# -- usage ----------------------------------------------------------------------------------------
def test_help_documents_default_database_and_exit_codes() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "GOSTORE_DB" in result.stdout and "./gostore.db" in result.stdout
    assert "exit codes" in result.stdout and "not found" in result.stdout


@pytest.mark.parametrize(
    "args",
    [[], ["frobnicate"], ["get", "only-group"], ["count", "g", "extra"], ["--bogus", "groups"]],
)
def test_usage_errors_exit_2_with_one_error_line(db_path: Path, args: list[str]) -> None:
    result = run(*args, db=db_path)
    assert result.returncode == 2
    one_error_line(result)


def test_main_returns_exit_codes_instead_of_raising_system_exit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--help"]) == 0
    assert cli.main(["--version"]) == 0
    assert gostore.__version__ in capsys.readouterr().out
    assert cli.main(["no-such-command"]) == 2
    assert capsys.readouterr().err.startswith("gostore: error: ")


def test_version_reports_the_speed_up_mode_and_the_sqlite_and_apsw_versions() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    mode = "compiled (gostore._speedups)" if gostore.SPEEDUPS else "pure Python"
    version, speedups, sqlite = result.stdout.splitlines()
    assert version == f"gostore {gostore.__version__}"
    assert speedups.startswith(f"speed-ups: {mode}")
    assert sqlite == f"SQLite {apsw.sqlite_lib_version()}, APSW {apsw.apswversion()}"


def test_version_says_why_the_mode_is_pure() -> None:
    forced = run("--version", env={"GOSTORE_PURE": "1"})
    assert "speed-ups: pure Python (forced by GOSTORE_PURE)" in forced.stdout.splitlines()
    # A build without a compiler: the compiled module cannot be imported.
    environment = {k: v for k, v in os.environ.items() if k != "GOSTORE_PURE"}
    missing = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['gostore._speedups'] = None\n"
            "from gostore import cli; sys.exit(cli.main(['--version']))",
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert missing.returncode == 0, missing.stderr
    assert (
        "speed-ups: pure Python (the compiled module gostore._speedups is not installed)"
        in missing.stdout.splitlines()
    )


# -- export / import ------------------------------------------------------------------------------
TRICKY = {
    "nul": "a\x00b",
    "newlines": "line1\nline2\r\nline3\r",
    "unicode": "héllo ✓ \U0001f600 \U0010ffff",
    "separators": "x\x85y\u2028z\u2029w\x1c",
    "empty": "",
    "json-ish": '{"group": "evil"}\n',
    "": "empty key",
}


def test_export_writes_one_json_object_per_live_entry(seeded: Path) -> None:
    with gostore.Store(seeded, purge_interval=0) as store:
        store.set_with_ttl("sessions", "gone", "x", -1)
    result = run("export", db=seeded)
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["group"], e["key"]) for e in entries] == [
        ("config", "colour"), ("config", "size"), ("config-extra", "x"), ("users", "alice"),
    ]
    assert all(set(e) == {"group", "key", "value", "expires_at"} for e in entries)


def test_tricky_values_round_trip_through_export_and_import(db_path: Path, tmp_path: Path) -> None:
    with gostore.Store(db_path, purge_interval=0) as store:
        store.set_many("tricky\x00\n✓", TRICKY)
        store.set_with_ttl("ttl", "k", "v", 3600)
    exported = run("export", db=db_path).stdout
    # str.splitlines() breaks on U+0085/U+2028/U+2029 too; it still sees one entry per line.
    assert len(exported.splitlines()) == len(TRICKY) + 1
    dump = tmp_path / "dump.jsonl"
    dump.write_text(exported, encoding="utf-8")
    target = tmp_path / "copy.db"
    result = run("import", str(dump), db=target)
    assert (result.returncode, result.stdout) == (0, f"imported {len(TRICKY) + 1} entries\n")
    with gostore.Store(target, purge_interval=0) as store:
        assert store.get_all("tricky\x00\n✓") == TRICKY
    assert run("export", db=target).stdout == exported  # expires_at kept to the millisecond


def test_import_reads_stdin_with_dash(db_path: Path) -> None:
    lines = '{"group": "g", "key": "k", "value": "v", "expires_at": null}\n'
    result = run("--json", "import", "-", db=db_path, stdin=lines)
    assert json.loads(result.stdout) == {"imported": 1, "skipped_expired": 0}
    assert run("get", "g", "k", db=db_path).stdout == "v\n"


def test_import_skips_expired_entries_and_keeps_existing_value(seeded: Path) -> None:
    future = time.time_ns() // 1_000_000 + 3_600_000
    lines = (
        '{"group": "config", "key": "colour", "value": "red", "expires_at": 1000}\n'
        f'{{"group": "config", "key": "new", "value": "n", "expires_at": {future}}}\n'
        '{"group": "config", "key": "plain", "value": "p"}\n'
    )
    result = run("import", "-", db=seeded, stdin=lines)
    assert result.stdout == "imported 2 entries (1 expired entry skipped)\n"
    assert run("get", "config", "colour", db=seeded).stdout == "blue\n"
    assert run("count", "config", db=seeded).stdout == "4\n"


def test_import_later_line_wins_for_the_same_key(db_path: Path) -> None:
    lines = "".join(
        json.dumps({"group": "g", "key": "k", "value": v, "expires_at": None}) + "\n"
        for v in ("first", "second")
    )
    run("import", "-", db=db_path, stdin=lines)
    assert run("get", "g", "k", db=db_path).stdout == "second\n"


def test_import_ignores_blank_lines_and_a_leading_bom(db_path: Path) -> None:
    lines = '\ufeff{"group": "g", "key": "k", "value": "v"}\n\n  \n'
    lines += '{"group": "g", "key": "j", "value": "w"}'
    assert run("import", "-", db=db_path, stdin=lines).stdout == "imported 2 entries\n"


GOOD_FIELDS = '{"group": "g", "key": "k", "value": "v"'


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "invalid JSON"),
        ('["g", "k", "v"]', "expected a JSON object, got an array"),
        ('{"group": "g", "key": "k"}', "missing field 'value'"),
        ('{"group": "g", "key": 5, "value": "v"}', "'key' must be a string, not a number"),
        ('{"group": "g", "key": "k", "value": "v", "ttl": 5}', "unknown field 'ttl'"),
        (GOOD_FIELDS + ', "expires_at": 1.5}', "'expires_at' must be an integer"),
        (GOOD_FIELDS + ', "expires_at": true}', "'expires_at' must be an integer"),
        (GOOD_FIELDS + ', "expires_at": 1e400}', "'expires_at' must be an integer"),
        (GOOD_FIELDS + ', "expires_at": 99999999999999999999}', "out of range"),
        ('{"group": "g", "key": "\\ud800", "value": "v"}', "lone surrogate"),
    ],
)
def test_import_reports_line_number_and_reason_and_writes_nothing(
    seeded: Path, line: str, reason: str
) -> None:
    good = '{"group": "config", "key": "colour", "value": "red"}\n'
    result = run("import", "-", db=seeded, stdin=good + good + line + "\n" + good)
    assert result.returncode == 2
    error = one_error_line(result)
    assert "line 3: " in error and reason in error and "nothing was imported" in error
    with gostore.Store(seeded, purge_interval=0) as store:
        assert store.get_all("config") == {"colour": "blue", "size": "10"}
        assert store.groups("g") == []


def test_import_counts_further_bad_lines_and_does_not_create_the_database(
    tmp_path: Path, db_path: Path
) -> None:
    dump = tmp_path / "bad.jsonl"
    dump.write_bytes(b'{"group": "g", "key": "k", "value": "v"}\n\xff\xfe\n[]\n{}\n')
    result = run("import", str(dump), db=db_path)
    assert result.returncode == 2
    error = one_error_line(result)
    assert "line 2: not valid UTF-8" in error and "2 more bad lines" in error
    assert not db_path.exists()


def test_import_of_missing_file_exits_2(tmp_path: Path, db_path: Path) -> None:
    result = run("import", str(tmp_path / "nope.jsonl"), db=db_path)
    assert result.returncode == 2
    assert "cannot read" in one_error_line(result)


@pytest.fixture
def large_dump(tmp_path: Path) -> Path:
    """An export big enough (LARGE_ROWS entries) for import to show progress on a terminal."""
    path = tmp_path / "large.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for i in range(cli.LARGE_ROWS):
            out.write(json.dumps({"group": f"g{i % 7}", "key": f"k{i}", "value": "v"}) + "\n")
    return path


def test_import_shows_no_progress_when_stderr_is_piped(large_dump: Path, db_path: Path) -> None:
    result = run("import", str(large_dump), db=db_path)
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout == f"imported {cli.LARGE_ROWS} entries\n"


def test_import_shows_progress_when_stderr_is_a_terminal(large_dump: Path, db_path: Path) -> None:
    main_fd, terminal_fd = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "gostore", "--db", str(db_path), "import", str(large_dump)],
            stdout=subprocess.PIPE,
            stderr=terminal_fd,
        )
        os.close(terminal_fd)
        shown = b""
        while True:  # read until the child closes the terminal (EIO on Linux)
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        stdout, _ = process.communicate(timeout=120)
    finally:
        os.close(main_fd)
    assert process.returncode == 0
    assert stdout == f"imported {cli.LARGE_ROWS} entries\n".encode()
    assert b"\rimporting: " in shown
    assert f"100% ({cli.LARGE_ROWS}/{cli.LARGE_ROWS} entries)".encode() in shown


def test_export_into_a_closed_pipe_stops_quietly(db_path: Path) -> None:
    with gostore.Store(db_path, purge_interval=0) as store:
        store.set_many("g", {f"key-{i:05d}": "x" * 50 for i in range(20_000)})
    process = subprocess.Popen(
        [sys.executable, "-m", "gostore", "--db", str(db_path), "export"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert json.loads(process.stdout.readline())["key"] == "key-00000"
    process.stdout.close()  # as `gostore export | head -1` does
    stderr = process.stderr.read()
    process.wait(timeout=120)
    process.stderr.close()
    assert (process.returncode, stderr) == (0, b"")


# -- bench ----------------------------------------------------------------------------------------
FAKE_BENCH = """
import sys, types
fake = types.ModuleType("gostore.bench")
def fake_main(argv):
    print("bench got", argv)
    return 7
fake.main = fake_main
sys.modules["gostore.bench"] = fake
from gostore.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_bench_passes_every_following_argument_to_the_benchmark() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FAKE_BENCH, "--json", "bench", "--quick", "-h", "Set", "--db", "x"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.stdout == "bench got ['--quick', '-h', 'Set', '--db', 'x']\n"
    assert result.returncode == 7


def test_other_commands_do_not_import_the_benchmark_module(db_path: Path) -> None:
    code = (
        "import sys\nfrom gostore.cli import main\n"
        f"assert main(['--db', {str(db_path)!r}, 'set', 'g', 'k', 'v']) == 0\n"
        "assert 'gostore.bench' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def test_bench_help_comes_from_the_benchmark_module() -> None:
    result = run("bench", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")
    assert "GROUP" not in result.stdout  # not gostore's own usage
