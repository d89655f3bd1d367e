"""A throwaway PostgreSQL server for the monitoring-store tests (a plugin of tests/conftest.py).

``postgres_server`` (session scope, so one per xdist worker) runs ``initdb`` into a new
temporary folder and ``pg_ctl start`` with the server listening on 127.0.0.1 only, on a
free port, with its Unix socket in that folder; fsync is off, as nothing here needs to
survive a crash. At the end of the session the server is stopped and the folder removed.
``postgres_url`` is the ``postgresql+psycopg://`` URL of a database created on it.

The binaries are looked up in ``$MLCYCLE_POSTGRES_BIN``, then on PATH, then where
distributions install them off PATH (Debian: ``/usr/lib/postgresql/<version>/bin``).
Without them, or without psycopg, the tests that use these fixtures are skipped.

``initdb`` and ``postgres`` refuse to run as root. As root (CI containers) the server runs
as the ``postgres`` user (the apt package creates it), else as ``nobody``; its folder is
made outside pytest's root-only temporary folder and handed to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "find_binaries", "postgres_server", "postgres_url"]

SKIP_REASON = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found; install the postgresql "
    "package (apt) — .ci/run does"
)
SUPERUSER = "mlcycle"
_SEARCH = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RHEL, Fedora (PGDG)
    "/usr/local/pgsql/bin",  # built from source
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _version_key(folder: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", folder))


def find_binaries() -> Path | None:
    """The folder holding both ``initdb`` and ``pg_ctl``, newest version first; ``None``."""
    override = os.environ.get("MLCYCLE_POSTGRES_BIN")
    candidates: list[str] = [override] if override else []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for pattern in _SEARCH:
        candidates.extend(sorted(glob.glob(pattern), key=_version_key, reverse=True))
    for folder in candidates:
        path = Path(folder)
        if all(os.access(path / exe, os.X_OK) for exe in ("initdb", "pg_ctl")):
            return path
    return None


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: ``None`` for this process's user; as root, an unprivileged one."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("running as root and neither a 'postgres' nor a 'nobody' user exists to run initdb")


class PostgresServer:
    """One server in its own folder; :meth:`start` / :meth:`stop` may be called again.

    Parameters
    ----------
    bindir
        The folder with ``initdb``, ``pg_ctl`` and ``postgres``.
    base
        An empty folder for the data, the socket and the log.
    user
        The account that runs the binaries; ``None`` for the current one.
    """

    def __init__(self, bindir: Path, base: Path, user: pwd.struct_passwd | None) -> None:
        self.bindir = bindir
        self.base = base
        self.user = user
        self.data = base / "data"
        self.socket_dir = base / "sock"
        self.log = base / "server.log"
        self.port = 0

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(self.base), "LC_ALL": "C", "LANG": "C"}
        who = self.user
        return subprocess.run(
            list(args), cwd=self.base, env=env, capture_output=True, text=True,
            timeout=timeout, check=False,
            user=None if who is None else who.pw_uid,
            group=None if who is None else who.pw_gid,
            extra_groups=None if who is None else [],
        )  # fmt: skip

    def _fail(self, what: str, proc: subprocess.CompletedProcess[str]) -> None:
        log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        pytest.fail(f"{what} failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}\n{log}")

    def init(self) -> None:
        """``initdb``: a cluster owned by :data:`SUPERUSER`, trusted on 127.0.0.1."""
        if self.user is not None:
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
        self.socket_dir.mkdir()
        if self.user is not None:
            os.chown(self.socket_dir, self.user.pw_uid, self.user.pw_gid)
        proc = self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        if proc.returncode != 0:
            self._fail("initdb", proc)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# mlcycle tests\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 40\nshared_buffers = 16MB\n"
            )

    def start(self, port: int | None = None, attempts: int = 3) -> None:
        """``pg_ctl start`` on ``port`` (default: a free one, retried if it was taken)."""
        for attempt in range(attempts):
            self.port = port or _free_port()
            proc = self._run(
                str(self.bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
                "-l", str(self.log), "-o", f"-p {self.port}",
            )  # fmt: skip
            if proc.returncode == 0:
                self._wait_ready()
                return
            taken = "could not bind" in self.log.read_text(errors="replace")
            if port is not None or not taken or attempt == attempts - 1:
                self._fail("pg_ctl start", proc)

    def _wait_ready(self, timeout: float = 30) -> None:
        """Until the server takes connections (``pg_ctl -w`` returns about then)."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self._dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def stop(self) -> None:
        """``pg_ctl stop`` (fast shutdown); nothing if the server is not running."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data))

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create a database (default: a new unique name) and return its URL."""
        import psycopg

        name = name or f"db_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)


def new_server(bindir: Path, user: pwd.struct_passwd | None) -> PostgresServer:
    """An initialised (not started) server in a new temporary folder."""
    base = Path(tempfile.mkdtemp(prefix="mlcycle-pg-"))
    server = PostgresServer(bindir, base, user)
    server.init()
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL server for the session (per xdist worker); skips without one."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (extra: postgres)")
    bindir = find_binaries()
    if bindir is None:
        if os.environ.get("CI") == "true":  # .ci/run installs PostgreSQL: CI never skips
            pytest.fail(SKIP_REASON.replace("not found", "not found in CI"))
        pytest.skip(SKIP_REASON)
    server = new_server(bindir, _server_user())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql+psycopg://`` URL of a database of its own on the session's server."""
    return postgres_server.create_database("mlcycle")
