"""The command line, run as a user runs it: ``python -m gostore ...`` in a subprocess.

The subprocess inherits GOSTORE_PURE, so the whole file runs in both modes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import apsw
import pytest

import gostore
from gostore import cli
from gostore.cli import common


def run(
    *args: str | bytes,
    db: Path | None = None,
    cwd: Path | None = None,
    stdin: str | bytes | None = None,
    env: dict[str, str] | None = None,
    exact: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gostore``; ``exact``: no newline translation of the output (as does a
    ``bytes`` stdin, which is sent as it is)."""
    command: list[str | bytes] = [sys.executable, "-m", "gostore"]
    if db is not None:
        command += ["--db", str(db)]
    environment = {k: v for k, v in os.environ.items() if k != "GOSTORE_DB"}
    environment.update(env or {})
    if exact or isinstance(stdin, bytes):
        result = subprocess.run(
            [*command, *args], input=stdin, capture_output=True, env=environment, cwd=cwd,
            timeout=120, check=False,
        )
        return subprocess.CompletedProcess(
            result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
        )
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
    assert one_error_line(result) == "gostore: error: not found: config/nope"


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


def test_delete_says_what_it_removed_and_exits_1_when_the_key_was_absent(seeded: Path) -> None:
    result = run("delete", "config", "colour", db=seeded)
    assert (result.returncode, result.stdout, result.stderr) == (0, "deleted config/colour\n", "")
    assert run("get", "config", "colour", db=seeded).returncode == 1
    again = run("delete", "config", "colour", db=seeded)
    assert (again.returncode, again.stdout) == (1, "")
    assert one_error_line(again) == "gostore: error: not found: config/colour"


def test_delete_json_reports_whether_the_key_was_removed(seeded: Path) -> None:
    result = run("delete", "config", "colour", "--json", db=seeded)
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"group": "config", "key": "colour", "deleted": True}
    again = run("delete", "config", "colour", "--json", db=seeded)
    assert (again.returncode, again.stderr) == (1, "")
    assert json.loads(again.stdout) == {"group": "config", "key": "colour", "deleted": False}


def test_delete_of_an_expired_key_reports_not_found(seeded: Path) -> None:
    with gostore.Store(seeded, purge_interval=0) as store:
        store.set_with_ttl("config", "old", "x", -1)
    result = run("delete", "config", "old", db=seeded)
    assert result.returncode == 1
    assert one_error_line(result) == "gostore: error: not found: config/old"


def test_delete_group_says_how_many_keys_it_removed_from_that_group_only(seeded: Path) -> None:
    result = run("delete-group", "config", db=seeded)
    assert (result.returncode, result.stdout) == (0, "deleted 2 keys from group config\n")
    assert run("count", "config", db=seeded).stdout == "0\n"
    assert run("count", "config-extra", db=seeded).stdout == "1\n"
    assert run("delete-group", "config-extra", db=seeded).stdout == (
        "deleted 1 key from group config-extra\n"
    )


def test_delete_group_of_a_group_without_keys_exits_1(seeded: Path) -> None:
    result = run("delete-group", "nothing", db=seeded)
    assert (result.returncode, result.stdout) == (1, "")
    assert one_error_line(result) == "gostore: error: not found: group nothing"
    as_json = run("--json", "delete-group", "nothing", db=seeded)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == {"group": "nothing", "deleted": 0}


def test_delete_group_json_counts_live_keys(seeded: Path) -> None:
    result = run("--json", "delete-group", "config", db=seeded)
    assert (result.returncode, json.loads(result.stdout)) == (
        0, {"group": "config", "deleted": 2}
    )


# -- set VALUE from stdin -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        (b"hello\n", "hello"),  # echo hello
        (b"no newline", "no newline"),  # printf 'no newline'
        (b"keep one\n\n", "keep one\n"),  # only one trailing newline goes
        (b"two\nlines\n", "two\nlines"),
        (b"tab\there \xe2\x9c\x93\n", "tab\there \u2713"),
        (b"", ""),
        (b"-\n", "-"),  # how to store a lone dash
    ],
)
def test_set_dash_reads_the_value_from_stdin_less_one_trailing_newline(
    db_path: Path, sent: bytes, stored: str
) -> None:
    result = run("set", "g", "k", "-", db=db_path, stdin=sent)
    assert (result.returncode, result.stderr) == (0, "")
    with gostore.Store(db_path, purge_interval=0) as store:
        assert store.get("g", "k") == stored


def test_set_dash_with_ttl_and_json_reads_stdin(db_path: Path) -> None:
    result = run("set", "g", "k", "-", "--ttl", "60", "--json", db=db_path, stdin=b"v\n")
    assert json.loads(result.stdout) == {"group": "g", "key": "k", "ttl": 60}
    [entry] = export_lines(db_path)
    assert entry["value"] == "v" and isinstance(entry["expires_at"], int)


def test_set_dash_refuses_stdin_that_is_not_utf8_and_writes_nothing(db_path: Path) -> None:
    result = run("set", "g", "k", "-", db=db_path, stdin=b"ok\xff\n")
    assert result.returncode == 2
    assert "stdin is not valid UTF-8 (byte 3)" in one_error_line(result)
    assert not db_path.exists()


def test_set_prints_nothing_without_json(db_path: Path) -> None:
    result = run("set", "g", "k", "v", db=db_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# -- global options after the command -------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["--json", "get", "config", "colour"],
        ["get", "config", "colour", "--json"],
        ["get", "--json", "config", "colour"],
    ],
)
def test_json_is_accepted_before_or_after_the_command(seeded: Path, args: list[str]) -> None:
    result = run(*args, db=seeded)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"group": "config", "key": "colour", "value": "blue"}


def test_db_is_accepted_after_the_command(seeded: Path, tmp_path: Path) -> None:
    assert run("count", "config", "--db", str(seeded)).stdout == "2\n"
    assert run("count", f"--db={seeded}", "config").stdout == "2\n"
    # Given twice, the one after the command wins, as the later option does in most tools.
    other = tmp_path / "other.db"
    assert run("--db", str(other), "count", "config", "--db", str(seeded)).stdout == "2\n"


def test_option_words_after_double_dash_are_values(db_path: Path) -> None:
    assert run("set", "g", "k", "--", "--json", db=db_path).stdout == ""
    assert run("get", "g", "k", db=db_path).stdout == "--json\n"


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


AWKWARD = {
    "plain": "blue",
    "tab\tkey": "a\tb",
    "lines": "one\ntwo\r\nthree",
    "slash": "C:\\temp\\new",  # a backslash before n must not read back as a newline
    "quote,comma": 'say "hi", then',
    "": "",
}


def _tsv_unescape(field: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m[1], m[1]), field)


def test_all_tsv_escapes_tab_newline_and_backslash_so_each_entry_is_one_line(
    db_path: Path,
) -> None:
    with gostore.Store(db_path, purge_interval=0) as store:
        store.set_many("g", AWKWARD)
    result = run("all", "g", "--format", "tsv", db=db_path, exact=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines.pop() == ""
    assert len(lines) == len(AWKWARD)
    assert "\r" not in result.stdout
    pairs = [line.split("\t") for line in lines]
    assert all(len(pair) == 2 for pair in pairs)
    assert {_tsv_unescape(k): _tsv_unescape(v) for k, v in pairs} == AWKWARD
    assert run("all", "g", db=db_path, exact=True).stdout == result.stdout  # the default


def test_all_jsonl_writes_one_object_per_entry(db_path: Path) -> None:
    with gostore.Store(db_path, purge_interval=0) as store:
        store.set_many("g", AWKWARD)
    result = run("all", "g", "--format", "jsonl", db=db_path)
    entries = [json.loads(line) for line in result.stdout.split("\n") if line]
    assert [e["key"] for e in entries] == sorted(AWKWARD)
    assert {e["key"]: e["value"] for e in entries} == AWKWARD


def test_all_csv_has_a_header_and_quotes_awkward_fields(db_path: Path) -> None:
    with gostore.Store(db_path, purge_interval=0) as store:
        store.set_many("g", AWKWARD)
    result = run("all", "g", "--format", "csv", db=db_path, exact=True)
    assert result.stdout.startswith("key,value\r\n")  # RFC 4180 line ends
    rows = list(csv.reader(io.StringIO(result.stdout, newline="")))
    assert rows[0] == ["key", "value"]
    assert dict(rows[1:]) == AWKWARD


def test_all_format_wins_over_json_and_json_format_needs_no_flag(seeded: Path) -> None:
    assert run("all", "config", "--json", "--format", "tsv", db=seeded).stdout == (
        "colour\tblue\nsize\t10\n"
    )
    result = run("all", "config", "--format", "json", db=seeded)
    assert json.loads(result.stdout) == {"colour": "blue", "size": "10"}


def test_all_refuses_an_unknown_format(seeded: Path) -> None:
    result = run("all", "config", "--format", "xml", db=seeded)
    assert result.returncode == 2
    assert "--format" in one_error_line(result)


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
    error = one_error_line(result)
    assert error.startswith("gostore: error: count: ")  # the command, not "store.open"
    assert "not a SQLite database" in error and "store." not in error


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


# -- error messages -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (gostore.NotFoundError.at("store.get", "not found", "config", "nokey"),
         "not found: config/nokey"),
        (gostore.StoreError.at("store.set", "the database is locked (SQLITE_BUSY)", "config", "c"),
         "set config/c: the database is locked (SQLITE_BUSY)"),
        (gostore.StoreError.at("store.delete_group", "disk I/O error", "sessions"),
         "set group sessions: disk I/O error"),
        (gostore.StoreError.at("store.open", "cannot open 'x.db': is a directory"),
         "set: cannot open 'x.db': is a directory"),
        # A reason holding ": " and a key holding "/" keep both.
        (gostore.StoreError.at("store.set", "quota: too many keys", "a/b", "c: d"),
         "set a/b/c: d: quota: too many keys"),
        (gostore.StoreError.at("store.get", "busy", "g", "k" * 100),
         f"set g/{'k' * 60}...(100 chars): busy"),
    ],
)
def test_store_errors_are_shown_without_internal_operation_names(
    error: gostore.StoreError, shown: str
) -> None:
    assert common.store_error_text("set", error) == shown


def test_a_store_error_keeps_a_message_it_cannot_take_apart() -> None:
    error = gostore.StoreError("something odd", op="store.set")
    assert common.store_error_text("set", error) == "set: something odd"


def test_argument_that_is_not_valid_utf8_is_named_by_its_place(db_path: Path) -> None:
    result = run("get", "g", b"bad\xffkey", db=db_path)
    assert result.returncode == 2
    assert one_error_line(result) == (
        "gostore: error: KEY is not valid UTF-8 text (undecodable byte at character 4)"
    )


# -- usage ----------------------------------------------------------------------------------------
def test_help_documents_default_database_and_exit_codes() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "GOSTORE_DB" in result.stdout and "./gostore.db" in result.stdout
    assert "exit codes" in result.stdout and "not found" in result.stdout


README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_command_line() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Command line\n", 1)[1]
    return section.split("\n## ", 1)[0]


def _paragraph(text: str, start: str) -> str:
    """The paragraph of ``text`` that begins with ``start``, joined into one line."""
    found = text[text.index(start) :].split("\n\n", 1)[0]
    return " ".join(found.split())


def test_help_and_readme_list_the_same_json_commands() -> None:
    help_text = run("--help").stdout
    listed = help_text.split("--json works with: ", 1)[1].split("\n", 1)[0]
    in_help = listed.split(", ")
    readme = _paragraph(_readme_command_line(), "`--json` works with:")
    in_readme = re.findall(r"`([a-z-]+)`", readme.split("works with:", 1)[1].split("(", 1)[0])
    assert in_help == in_readme
    assert "export" not in in_help and "export always writes JSON Lines" in help_text


def test_json_works_with_every_command_the_help_lists(seeded: Path, tmp_path: Path) -> None:
    dump = tmp_path / "one.jsonl"
    dump.write_text('{"group": "n", "key": "k", "value": "v"}\n', encoding="utf-8")
    arguments = {
        "get": ["config", "colour"], "set": ["n", "j", "v"], "delete": ["config", "size"],
        "delete-group": ["users"], "groups": [], "count": ["config"], "all": ["config"],
        "purge": [], "import": [str(dump)], "incr": ["n", "counter"],
        "ttl": ["config", "colour"], "exists": ["config", "colour"],
        "touch": ["config", "colour", "--no-ttl"], "backup": [str(tmp_path / "copy.db")],
        "check": [], "stats": [], "vacuum": [], "checkpoint": [],
    }
    help_text = run("--help").stdout
    listed = help_text.split("--json works with: ", 1)[1].split("\n", 1)[0].split(", ")
    assert sorted(listed) == sorted(arguments)
    for name in listed:
        result = run(name, *arguments[name], "--json", db=seeded)
        assert result.returncode == 0, (name, result.stderr)
        json.loads(result.stdout)  # one JSON document


def test_help_and_readme_agree_on_the_exit_codes() -> None:
    help_text = run("--help").stdout
    codes_block = help_text.split("exit codes:\n", 1)[1]
    in_help = [int(line.split()[0]) for line in codes_block.splitlines() if line.strip()]
    readme = _paragraph(_readme_command_line(), "Exit codes:")
    in_readme = [int(code) for code in re.findall(r"`(\d+)`", readme)]
    assert in_help == in_readme == [0, 1, 2, 3, 130]
    assert "130" in (cli.__doc__ or "")


@pytest.mark.parametrize(
    "args",
    [[], ["frobnicate"], ["get", "only-group"], ["count", "g", "extra"], ["--bogus", "groups"]],
)
def test_usage_errors_exit_2_with_one_error_line(db_path: Path, args: list[str]) -> None:
    result = run(*args, db=db_path)
    assert result.returncode == 2
    one_error_line(result)


class _InterruptedStdin:
    """stdin whose read is stopped by Ctrl-C."""

    class buffer:  # stands in for sys.stdin.buffer
        @staticmethod
        def read(*_: object) -> bytes:
            raise KeyboardInterrupt


def test_ctrl_c_exits_130_with_one_error_line_and_writes_nothing(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", _InterruptedStdin)
    assert cli.main(["--db", str(db_path), "set", "g", "k", "-"]) == 130
    assert cli.main(["--db", str(db_path), "import", "-"]) == 130
    assert capsys.readouterr().err == "gostore: error: interrupted\n" * 2
    assert not db_path.exists()


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
    assert json.loads(result.stdout) == {"imported": 1, "replaced": 0, "skipped_expired": 0}
    assert run("get", "g", "k", db=db_path).stdout == "v\n"


def test_import_reads_a_path_that_is_a_pipe(db_path: Path) -> None:
    # /dev/stdin here is a pipe: it cannot be read twice, so import copies it first.
    lines = "".join(f'{{"group": "g", "key": "k{i}", "value": "v"}}\n' for i in range(3))
    result = run("import", "/dev/stdin", db=db_path, stdin=lines)
    assert (result.returncode, result.stdout) == (0, "imported 3 entries\n")
    assert run("count", "g", db=db_path).stdout == "3\n"


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
    result = run("import", "-", db=db_path, stdin=lines)
    assert result.stdout == "imported 1 entry (1 line replaced an earlier one for the same key)\n"
    assert run("get", "g", "k", db=db_path).stdout == "second\n"


def test_import_counts_distinct_keys_not_lines(db_path: Path, tmp_path: Path) -> None:
    # 5 passes over 40 keys in 3 groups; the same key name in two groups is two entries.
    dump = tmp_path / "repeats.jsonl"
    with dump.open("w", encoding="utf-8") as out:
        for round_ in range(5):
            for i in range(40):
                entry = {"group": f"g{i % 3}", "key": f"k{i // 3}", "value": f"v{round_}"}
                out.write(json.dumps(entry) + "\n")
    result = run("import", str(dump), db=db_path)
    assert result.stdout == (
        "imported 40 entries (160 lines replaced earlier ones for the same key)\n"
    )
    as_json = run("import", str(dump), "--json", db=db_path)
    assert json.loads(as_json.stdout) == {"imported": 40, "replaced": 160, "skipped_expired": 0}
    with gostore.Store(db_path, purge_interval=0) as store:
        assert store.count_all() == 40
        assert set(store.get_all("g1").values()) == {"v4"}


def test_import_counts_expired_lines_apart_from_replaced_ones(db_path: Path) -> None:
    lines = (
        '{"group": "g", "key": "k", "value": "live"}\n'
        '{"group": "g", "key": "k", "value": "gone", "expires_at": 1000}\n'
        '{"group": "g", "key": "j", "value": "a"}\n'
        '{"group": "g", "key": "j", "value": "b"}\n'
    )
    result = run("import", "-", db=db_path, stdin=lines)
    assert result.stdout == (
        "imported 2 entries (1 line replaced an earlier one for the same key; "
        "1 expired entry skipped)\n"
    )
    # The expired line was skipped, so the earlier live one stands.
    assert run("all", "g", db=db_path).stdout == "j\tb\nk\tlive\n"


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


def test_import_lists_every_bad_line_and_does_not_create_the_database(
    tmp_path: Path, db_path: Path
) -> None:
    dump = tmp_path / "bad.jsonl"
    dump.write_bytes(b'{"group": "g", "key": "k", "value": "v"}\n\xff\xfe\n[]\n{}\n')
    result = run("import", str(dump), db=db_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"gostore: error: import {str(dump)!r}: 3 bad lines, nothing was imported",
        "  line 2: not valid UTF-8 (byte 1)",
        "  line 3: expected a JSON object, got an array",
        "  line 4: missing field 'group'",
    ]
    assert not db_path.exists()


def test_import_lists_the_first_20_bad_lines_and_counts_the_rest(seeded: Path) -> None:
    good = '{"group": "config", "key": "colour", "value": "red"}\n'
    lines = good + "".join(f"bad {i}\n" if i % 2 else good for i in range(1, 51))
    result = run("import", "-", db=seeded, stdin=lines)
    assert result.returncode == 2
    first, *details = result.stderr.splitlines()
    assert first == "gostore: error: import stdin: 25 bad lines, nothing was imported"
    assert details[:2] == [
        "  line 2: invalid JSON: Expecting value (column 1)",
        "  line 4: invalid JSON: Expecting value (column 1)",
    ]
    assert len(details) == 21
    assert details[19].startswith("  line 40: ")
    assert details[20] == "  ... and 5 more bad lines"
    assert run("get", "config", "colour", db=seeded).stdout == "blue\n"


def test_import_keeps_memory_flat_however_long_the_input(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Scaled down from a 1M-line dump: 30,000 lines of 180 bytes through stdin (spooled to a
    # temporary file) and 6,000 distinct keys. Holding the rows costs ~400 bytes a line (12 MB
    # here); streaming keeps an 8-byte hash a line plus one write chunk.
    lines = 30_000
    value = "v" * 100
    data = "".join(
        json.dumps({"group": f"g{i % 10}", "key": f"key-{i % 6000:06d}", "value": value,
                    "expires_at": None}) + "\n"
        for i in range(lines)
    ).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    tracemalloc.start()
    try:
        code = cli.main(["--db", str(db_path), "import", "-"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0
    assert capsys.readouterr().out == (
        "imported 6000 entries (24000 lines replaced earlier ones for the same key)\n"
    )
    assert peak < 4_000_000, f"import peaked at {peak} bytes of Python memory"
    with gostore.Store(db_path, purge_interval=0) as store:
        assert store.count_all() == 6000


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
