"""What a benchmark runs on: a private PostgreSQL database and Redis database number (or
the embedded default in a temporary home), and real worker processes started and measured.

Nothing shared is flushed or dropped: the database is created by the bench and dropped
after it; the Redis database number is claimed with the same lock key the test suite uses,
so concurrent test runs never pick it, and only that number is flushed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from models import constants as c
from models import tables as t
from models.database import create_engine
from models.keystore import MasterKey
from models.migrations import upgrade
from models.settings import Settings
from models.signing import SigningKey
from models.store import SqlUnitOfWork
from tasks.keys import create_key

REPO = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get(
    "CUSTODY_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_BASE_URL = os.environ.get("CUSTODY_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_LOCK_KEY = "custody:test-run-lock"  # the test suite's claim on a database number


@dataclass
class Stack:
    """One backend: settings for every process, and the means to look at its state."""

    name: str
    settings: Settings
    home: Path
    engine: Engine
    redis: Any = None  # a redis client on the private database number, or None (embedded)
    env: dict[str, str] = field(default_factory=dict)
    database: str | None = None  # the private PostgreSQL database, if any
    keys: dict[str, SigningKey] = field(default_factory=dict)  # organization -> its key

    @property
    def embedded(self) -> bool:
        return self.redis is None

    def queued(self) -> int:
        """Messages waiting on the commands queue plus those taken and not yet acknowledged."""
        if self.redis is not None:
            name = self.settings.commands_queue
            pipe = self.redis.pipeline()
            pipe.llen(name)
            pipe.hlen("unacked")
            waiting, unacked = pipe.execute()
            return int(waiting) + int(unacked)
        folder = self.settings.broker_folder / "queue"
        return sum(1 for p in folder.iterdir() if p.suffix == ".msg") if folder.exists() else 0

    def processed(self, organization: str) -> int:
        p = t.processed_commands
        with self.engine.connect() as conn:
            query = sa.select(sa.func.count()).where(p.c.organization_id == organization)
            return int(conn.execute(query).scalar_one())

    def rows(self, table: sa.Table, organization: str) -> int:
        with self.engine.connect() as conn:
            query = sa.select(sa.func.count()).where(table.c.organization_id == organization)
            return int(conn.execute(query).scalar_one())

    def new_org(self, prefix: str) -> str:
        org = f"{prefix}-{uuid.uuid4().hex[:8]}"
        master = self.settings.master_key
        with SqlUnitOfWork(self.engine) as uow:
            uow.organizations.add(org, org)
            if master is not None:  # as in production: the organization signs its commands
                key = create_key(uow, MasterKey.from_text(master.get_secret_value()), org)
                self.keys[org] = key
            uow.commit()
        return org

    def clear_queue(self) -> None:
        if self.redis is not None:
            self.redis.delete(self.settings.commands_queue, "unacked", "unacked_index")
        else:
            for p in (self.settings.broker_folder / "queue").glob("*.msg"):
                p.unlink()


def _environment(settings: Settings, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env["CUSTODY_HOME"] = str(home)
    if settings.database_url:
        env["CUSTODY_DATABASE_URL"] = settings.database_url
    if settings.broker_url:
        env["CUSTODY_BROKER_URL"] = settings.broker_url
    if settings.master_key is not None:
        env["CUSTODY_MASTER_KEY"] = settings.master_key.get_secret_value()
        env["CUSTODY_REQUIRE_SIGNATURES"] = "1"
    env["PYTHONPATH"] = str(REPO)
    return env


@contextmanager
def server_stack() -> Iterator[Stack]:
    """Redis + PostgreSQL, both private to this run."""
    import redis

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    database = f"custody_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    client = _claim_redis_database(redis)
    home = Path(tempfile.mkdtemp(prefix="custody-bench-"))
    try:
        url = make_url(POSTGRES_ADMIN_URL).set(database=database)
        settings = Settings(
            home=home,
            database_url=url.render_as_string(hide_password=False),
            broker_url=f"{REDIS_BASE_URL}/{client.connection_pool.connection_kwargs['db']}",
            master_key=MasterKey.generate_text(),
            require_signatures=True,  # workers verify every command, as in production
        )
        engine = create_engine(settings.resolved_database_url)
        upgrade(engine)
        env = _environment(settings, home)
        yield Stack("redis+postgres", settings, home, engine, client, env, database)
        engine.dispose()
    finally:
        client.flushdb()
        client.close()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(home, ignore_errors=True)


def _claim_redis_database(redis: Any) -> Any:
    for number in range(15, 0, -1):  # from the top: the test suite claims from the bottom
        client = redis.Redis.from_url(f"{REDIS_BASE_URL}/{number}")
        if client.set(REDIS_LOCK_KEY, f"bench-{os.getpid()}", nx=True, ex=3 * 3600):
            client.flushdb()  # ours now: whatever an earlier crashed run left
            client.set(REDIS_LOCK_KEY, f"bench-{os.getpid()}", ex=3 * 3600)
            return client
        client.close()
    raise RuntimeError("every Redis database number 1-15 is claimed by a test run or bench")


@contextmanager
def embedded_stack() -> Iterator[Stack]:
    """SQLite and the filesystem broker in a temporary home: the default with no servers."""
    home = Path(tempfile.mkdtemp(prefix="custody-bench-embedded-"))
    try:
        settings = Settings(home=home, database_url=None, broker_url=None)
        settings.prepare_home()
        engine = create_engine(settings.resolved_database_url)
        upgrade(engine)
        with SqlUnitOfWork(engine) as uow:  # what the embedded default prepares by itself
            uow.organizations.add(c.LOCAL_ORGANIZATION, "Local organization")
            uow.commit()
        yield Stack("embedded", settings, home, engine, None, _environment(settings, home))
        engine.dispose()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class Worker:
    """A worker process tree: its main process and its pool children."""

    process: subprocess.Popen[bytes]
    log: Path

    def pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            kids = [int(p) for p in children.read_text().split()]
        except OSError:
            kids = []
        return [self.process.pid, *kids]

    def peak_rss_mib(self) -> tuple[float, float]:
        """Peak resident set (VmHWM) of the main process and of the largest child, MiB."""
        peaks = []
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        if not peaks:
            return 0.0, 0.0
        return peaks[0], max(peaks[1:], default=0.0)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_worker(
    stack: Stack, module_args: list[str], *, name: str, env: dict[str, str] | None = None
) -> Worker:
    """A worker process with the stack's environment (and ``env`` on top)."""
    log = stack.home / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", *module_args],
            env={**stack.env, **(env or {})},
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Worker(process, log)


def wait_drained(
    stack: Stack,
    worker: Worker,
    total: int,
    *,
    done: Any = None,
    on_start: Any = None,
    timeout_s: float = 900.0,
) -> tuple[float, float]:
    """Wait until the queue is empty and ``done()`` holds; return (first take, end) as
    monotonic times. The clock starts when the first message leaves the queue (then
    ``on_start()`` is called)."""
    deadline = time.monotonic() + timeout_s
    started = None
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            tail = worker.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the worker exited with {worker.process.returncode}:\n{tail}")
        left = stack.queued()
        now = time.monotonic()
        if started is None and left < total:
            started = now
            if on_start is not None:
                on_start()
        if left == 0 and (done is None or done()):
            return started or now, now
        time.sleep(0.005 if started is None else 0.02)
    raise TimeoutError(f"{stack.name}: {stack.queued()} message(s) still queued after {timeout_s}s")
