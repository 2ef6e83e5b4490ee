"""Throwaway PostgreSQL and Redis servers for tests, benchmarks and `make run`.

Each instance lives in its own temp dir on a free loopback port and is torn down on exit.
PostgreSQL refuses to run as root, so when we are root the server runs as `nobody`.
Nothing here is shipped in the image (see .dockerignore).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bindir() -> Path:
    env = os.environ.get("PG_BINDIR")
    if env:
        return Path(env)
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found: install the 'postgresql' Debian package "
            "or set PG_BINDIR to the directory holding initdb and pg_ctl"
        )
    return Path(candidates[-1])


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


@dataclass
class PostgresInstance:
    """A running throwaway PostgreSQL server; `stop()`/`start()` simulate an outage."""

    datadir: Path
    port: int
    user: str
    password: str
    database: str
    _run_as: str | None
    _bindir: Path

    @property
    def url(self) -> str:
        """SQLAlchemy async URL (asyncpg driver)."""
        return f"postgresql+asyncpg://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    @property
    def dsn(self) -> str:
        """Plain libpq/asyncpg DSN."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _cmd(self, *args: str) -> list[str]:
        cmd = [str(self._bindir / args[0]), *args[1:]]
        if self._run_as:
            return ["runuser", "-u", self._run_as, "--", *cmd]
        return cmd

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            self._cmd(
                "pg_ctl",
                "-D",
                str(self.datadir / "data"),
                "-o",
                opts,
                "-l",
                str(self.datadir / "pg.log"),
                "-w",
                "-t",
                "30",
                "start",
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _wait_port(self.port, STARTUP_TIMEOUT_S)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            self._cmd("pg_ctl", "-D", str(self.datadir / "data"), "-m", mode, "-w", "-t", "30", "stop"),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def pause(self) -> int:
        """SIGSTOP the postmaster and its children: the database hangs instead of refusing."""
        pid = int((self.datadir / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGSTOP)
        return pid

    def resume(self, pid: int) -> None:
        os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def postgres(
    database: str = "app",
    user: str = "app",
    password: str = "app-test-pw",  # noqa: S107 - a throwaway loopback server's password, not a credential
) -> Iterator[PostgresInstance]:
    """Start PostgreSQL in a temp dir on a free port; remove everything on exit."""
    bindir = _pg_bindir()
    run_as = "nobody" if os.geteuid() == 0 else None
    tmp = Path(tempfile.mkdtemp(prefix="pgtest-"))
    try:
        if run_as:
            pw = pwd.getpwnam(run_as)
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
        tmp.chmod(0o700)
        pwfile = tmp / "pw"
        pwfile.write_text(password)
        if run_as:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        inst = PostgresInstance(tmp, free_port(), user, password, database, run_as, bindir)
        subprocess.run(
            inst._cmd(
                "initdb",
                "-D",
                str(tmp / "data"),
                "-U",
                user,
                f"--pwfile={pwfile}",
                "-A",
                "scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        inst.start()
        subprocess.run(
            inst._cmd("createdb", "-h", "127.0.0.1", "-p", str(inst.port), "-U", user, database),
            check=True,
            env={**os.environ, "PGPASSWORD": password},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            yield inst
        finally:
            inst.stop("immediate")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class RedisInstance:
    """A running throwaway redis-server; `stop()`/`start()` simulate an outage."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server not found: install the 'redis-server' Debian package")
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, STARTUP_TIMEOUT_S)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


@contextlib.contextmanager
def redis() -> Iterator[RedisInstance]:
    """Start redis-server on a free loopback port; stop it on exit."""
    tmp = Path(tempfile.mkdtemp(prefix="redistest-"))
    inst = RedisInstance(free_port(), tmp)
    try:
        inst.start()
        yield inst
    finally:
        inst.stop()
        shutil.rmtree(tmp, ignore_errors=True)
