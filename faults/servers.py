"""Private Redis and PostgreSQL servers on free ports, in temporary folders: the fault suite
stops and restarts them at will without touching any server someone else is using."""

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

POSTGRES_BIN = Path(os.environ.get("CUSTODY_FAULTS_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = os.environ.get("CUSTODY_FAULTS_REDIS_SERVER", "/usr/bin/redis-server")


class ServerUnavailable(RuntimeError):
    """Raised when a private server cannot be set up here (binary missing, refused to start)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, *, timeout_s: float, up: bool = True) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise ServerUnavailable(f"port {port} still {'closed' if up else 'open'} after {timeout_s}s")


class PrivateRedis:
    """redis-server with an append-only file and no eviction, as production runs it."""

    def __init__(self, folder: Path) -> None:
        if not Path(REDIS_SERVER).exists():
            raise ServerUnavailable(f"{REDIS_SERVER} not found (set CUSTODY_FAULTS_REDIS_SERVER)")
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
                "--logfile",
                str(self.folder / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout_s=20)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): Redis writes its append-only file and exits."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._process = None
        wait_for_port(self.port, timeout_s=10, up=False)

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb), started and stopped with pg_ctl. As root it
    runs as the ``postgres`` user, since PostgreSQL refuses to run as root."""

    def __init__(self) -> None:
        if not (POSTGRES_BIN / "initdb").exists():
            raise ServerUnavailable(
                f"{POSTGRES_BIN}/initdb not found (CUSTODY_FAULTS_POSTGRES_BIN)"
            )
        self.root = Path(tempfile.mkdtemp(prefix="custody-faults-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable("running as root and there is no postgres user") from None
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._as, str(POSTGRES_BIN / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise ServerUnavailable(f"{tool} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> None:
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "postgres.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )

    def stop(self, *, mode: str = "immediate") -> None:
        """``immediate`` is a crash: sessions cut, no checkpoint, recovery at the next start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def close(self) -> None:
        with contextlib.suppress(ServerUnavailable):  # not running
            self.stop(mode="immediate")
        shutil.rmtree(self.root, ignore_errors=True)
