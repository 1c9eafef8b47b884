"""A throwaway PostgreSQL cluster for the tests: ``initdb`` into a temporary directory, one
server on 127.0.0.1 and a free port, removed at the end.

PostgreSQL refuses to run as root, and CI runs as root, so there the cluster belongs to an
unprivileged system user (created when missing) and every server command runs as that user.
Durability is switched off (``fsync``, ``synchronous_commit``): the tests check behaviour, and
a crash of the test machine loses nothing anyone keeps.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

USER = "gostore-pg"  # the unprivileged owner of the cluster when the tests run as root
SUPERUSER = "gostore"  # the database superuser initdb creates
DATABASE = "postgres"

ENABLE_HINT = (
    "install the PostgreSQL server (Debian: apt-get install postgresql; or point "
    "GOSTORE_PG_BINDIR at its bin directory) and psycopg (pip install -e '.[test]')"
)


class ClusterUnavailable(Exception):
    """The cluster cannot be started here; the message says why."""


def bindir() -> Path:
    """The directory holding ``initdb``/``pg_ctl``: ``$GOSTORE_PG_BINDIR`` when set (and only
    it), else the newest ``/usr/lib/postgresql/N/bin``, else ``pg_config --bindir``."""
    explicit = os.environ.get("GOSTORE_PG_BINDIR")
    candidates: list[Path] = [Path(explicit)] if explicit else []
    root = Path("/usr/lib/postgresql")
    if explicit:
        pass  # only the directory asked for
    elif root.is_dir():
        versions = sorted(
            (p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
        )
        candidates += [p / "bin" for p in versions]
    pg_config = None if explicit else shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise ClusterUnavailable("no PostgreSQL server binaries (initdb, pg_ctl) found")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unprivileged_user() -> str | None:
    """The user to run the server as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(USER)
        return USER
    except KeyError:
        pass
    made = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0 and "already exists" not in made.stderr:
        raise ClusterUnavailable(f"cannot create user {USER!r}: {made.stderr.strip()}")
    return USER


class Cluster:
    """One server; :meth:`stop` and :meth:`start` may be repeated (the outage tests do)."""

    def __init__(self, *, durable: bool = False) -> None:
        """``durable``: keep PostgreSQL's fsync and synchronous commit (for benchmarks)."""
        self.bin = bindir()
        self.user = _unprivileged_user()
        self.root = Path(tempfile.mkdtemp(prefix="gostore-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self._admin: Any = None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o700)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            )
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(
                    "\n# gostore test cluster\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"port = {self.port}\n"
                    "unix_socket_directories = ''\n"
                    "max_connections = 200\nshared_buffers = 64MB\n"
                    + ("" if durable else "fsync = off\nsynchronous_commit = off\n")
                    + ("" if durable else "full_page_writes = off\n")
                )
            self.start()
        except BaseException:
            self.remove()
            raise

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin / tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise ClusterUnavailable(
                f"{tool} failed ({result.returncode}): {result.stderr.strip()[-2000:]}\n{log}"
            )

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def execute(self, statement: str) -> None:
        """Run ``statement`` as the superuser, on a connection kept for the purpose."""
        import psycopg

        admin = self._admin
        if admin is not None:
            try:
                admin.execute(statement)
                return
            except psycopg.OperationalError:  # the server restarted since (the outage tests)
                admin.close()
        admin = self._admin = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        admin.execute(statement)

    def start(self) -> None:
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log))

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))

    def remove(self) -> None:
        if self._admin is not None:
            self._admin.close()
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))
        shutil.rmtree(self.root, ignore_errors=True)


def wait_until(predicate: object, timeout: float) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():  # type: ignore[operator]
                return True
        except Exception:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def main(argv: list[str]) -> int:
    """``python -m tests.pg_cluster [--durable] COMMAND...``: run COMMAND with a throwaway
    server, ``{url}`` in its arguments replaced by the server's URL (benchmarks use this)."""
    durable = bool(argv) and argv[0] == "--durable"
    command = argv[1:] if durable else argv
    if not command:
        print("usage: python -m tests.pg_cluster [--durable] COMMAND... ({url}: the URL)")
        return 2
    cluster = Cluster(durable=durable)
    try:
        return subprocess.run([arg.replace("{url}", cluster.url) for arg in command]).returncode
    finally:
        cluster.remove()


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
