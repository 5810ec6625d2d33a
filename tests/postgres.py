"""A throwaway PostgreSQL server for the tests, from the system's binaries (Debian's ``postgresql`` package).

One cluster per pytest session (``pg_server``), in a temporary folder, started as a non-root user (PostgreSQL refuses
to run as root, and CI runs as root: then the ``postgres`` user the package made, else a system user ``kontext-pg``
made here), listening on a unix socket in that folder and on a free localhost port, ``trust`` authentication. Each
test that wants one gets a fresh database (``CREATE DATABASE``: quick), dropped afterwards. ``restart()`` stops and
starts the server in place (the "server restarted mid-run" scenario); ``url()`` gives another connection URL.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

USER_FALLBACK = "kontext-pg"
"""The system user made to run the server when there is no ``postgres`` user and the tests run as root."""


def binaries() -> Path:
    """The folder holding initdb and pg_ctl: the newest /usr/lib/postgresql/N/bin, else the PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path is None:
        raise RuntimeError("no PostgreSQL server binaries (pg_ctl): apt-get install postgresql (.ci/run does)")
    return Path(on_path).resolve().parent


def run_as() -> str | None:
    """The user to run the server as: None when the tests are not root, else postgres (or kontext-pg, made here)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", USER_FALLBACK):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER_FALLBACK],
        check=True,
        capture_output=True,
    )
    return USER_FALLBACK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One throwaway cluster: ``start()``, ``database()``, ``restart()``, ``stop()``."""

    def __init__(self) -> None:
        self.bin = binaries()
        self.user = run_as()
        # short (a socket path has at most 107 bytes) and open to the server's user: /tmp, whatever TMPDIR says
        self.root = Path(tempfile.mkdtemp(prefix="kx-pg-", dir="/tmp" if os.path.isdir("/tmp") else None))
        self.data = self.root / "data"
        self.port = free_port()
        self.superuser = "kontext"
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", self.superuser, "--auth=trust", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
                "shared_buffers = 32MB\n"
            )

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin / program), *args], user=self.user, cwd=self.root, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, program, done.stdout, done.stderr[-2000:])
        return done

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        """Stop and start the server in place: every open connection is broken; the data stays."""
        self.stop("fast")
        self.start()

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        """A TCP connection URL (with a password when given: trust ignores it; it must never be printed)."""
        who = self.superuser + (f":{password}" if password else "")
        return f"postgresql://{who}@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str = "postgres") -> str:
        """The same database through the unix socket in the cluster's folder."""
        return f"postgresql://{self.superuser}@/{database}?host={self.root}&port={self.port}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A fresh empty database for one test; its URL. Dropped afterwards (its connections ended first)."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.admin(f"CREATE DATABASE {name}")
        try:
            yield self.url(name)
        finally:
            with contextlib.suppress(Exception):
                self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PostgresServer:
    try:
        server = PostgresServer()
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"initdb failed for the test PostgreSQL server: {exc.stderr}") from None
    try:
        server.start()
    except BaseException:
        log = server.root / "log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        server.close()
        raise RuntimeError(f"the test PostgreSQL server did not start:\n{detail}") from None
    return server
