"""A real ``custody worker`` process per backend: Redis + PostgreSQL, and the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from models.settings import Settings
from producers.client import Client
from tests.backends import TEST_MASTER_KEY, SqlBackend
from worker.runtime import Runtime

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    name: str
    settings: Settings
    backend: SqlBackend
    env: dict[str, str]
    log: Path

    def client(self, organization: str) -> Client:
        """A producer of ``organization``, signing with its key (made by backend.new_org())."""
        return Client.from_settings(
            self.settings,
            organization=organization,
            signing_key=self.backend.key_for(organization),
        )

    def cli_env(self, organization: str) -> dict[str, str]:
        """The environment of a ``custody`` command run as ``organization``, with its key."""
        key = self.backend.key_for(organization)
        return {
            **self.env,
            "CUSTODY_ORGANIZATION": organization,
            "CUSTODY_KEY_ID": key.key_id,
            "CUSTODY_KEY_SECRET": key.secret,
        }

    def worker_log(self) -> str:
        return self.log.read_text(errors="replace")

    def subscriber(self, patterns: list[str], handler: Any, *, name: str | None = None) -> Any:
        """A subscriber with a name of its own, its queue declared."""
        from subscribers import Subscriber

        sub = Subscriber.from_settings(
            self.settings, name or f"t-{uuid.uuid4().hex[:10]}", patterns, handler
        )
        sub.declare()
        return sub

    def wait_relayed(self, org: str, *, timeout_s: float = 30.0) -> None:
        """Until every committed event of ``org`` is marked sent by a relay."""
        deadline = time.monotonic() + timeout_s
        while unsent_events(self.backend.engine, org):
            if time.monotonic() > deadline:
                pytest.fail(f"events of {org} not relayed within {timeout_s}s:\n{self.logs()}")
            time.sleep(0.05)

    def logs(self) -> str:
        relay = self.log.with_name("relay.log")
        text = self.worker_log()[-3000:]
        if relay.exists():
            text += "\n--- relay ---\n" + relay.read_text(errors="replace")[-3000:]
        return text


def unsent_events(engine: Any, org: str) -> int:
    import sqlalchemy as sa

    from models import tables as t

    o = t.outbox
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(o.c.organization_id == org, o.c.sent_at.is_(None))
        return int(conn.execute(query).scalar_one())


class Recorder:
    """A subscriber's handler: what it was called with, in order."""

    def __init__(self, org: str) -> None:
        self.org = org
        self.events: list = []

    def __call__(self, event) -> None:
        if event.organizationid == self.org:  # other tests publish on the same exchange
            self.events.append(event)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


def consume_until(subscriber, recorder: Recorder, count: int, *, timeout_s: float = 30) -> None:
    """Until ``count`` events of the org were handled, then a moment more to catch extras."""
    deadline = time.monotonic() + timeout_s
    subscriber.consume(until=lambda: len(recorder.events) >= count or time.monotonic() > deadline)
    subscriber.consume(idle_timeout_s=0.5)


def start_relay(env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", "relay", "-l", "INFO", *extra],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def start_worker(env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", "-l", "INFO", *extra],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stack_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env["CUSTODY_HOME"] = str(settings.home)
    if settings.database_url:
        env["CUSTODY_DATABASE_URL"] = settings.database_url
    if settings.broker_url:
        env["CUSTODY_BROKER_URL"] = settings.broker_url
    if settings.master_key:
        env["CUSTODY_MASTER_KEY"] = settings.master_key.get_secret_value()
    if settings.require_signatures is not None:
        env["CUSTODY_REQUIRE_SIGNATURES"] = "1" if settings.require_signatures else "0"
    env["PYTHONPATH"] = str(REPO)
    return env


def wait_until_serving(stack: Stack, process: subprocess.Popen[bytes]) -> None:
    """A worker serves when it answers a command (a 401 for an unknown organization)."""
    deadline = time.monotonic() + 60
    with stack.client("no-such-org") as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"worker exited with {process.returncode}:\n{stack.worker_log()}")
            try:
                reply = client.assign_device("probe", ["probe@example.com"], wait=True, timeout_s=2)
            except TimeoutError:
                continue
            assert reply.result["statusCode"] == 401
            return
    pytest.fail(f"worker did not serve within 60s:\n{stack.worker_log()}")


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("redis+postgres", marks=[pytest.mark.postgres, pytest.mark.redis]),
        "embedded",
        pytest.param("rabbitmq+postgres", marks=[pytest.mark.postgres, pytest.mark.amqp]),
    ],
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp(f"home-{request.param.replace('+', '-')}")
    if request.param == "embedded":
        settings = Settings(home=home, database_url=None, broker_url=None)
    else:
        settings = Settings(
            home=home,
            database_url=request.getfixturevalue("postgres_url"),
            broker_url=request.getfixturevalue(
                "rabbitmq_url" if request.param.startswith("rabbitmq") else "redis_url"
            ),
            master_key=TEST_MASTER_KEY,
            require_signatures=True,  # as in production
        )
    runtime = Runtime(settings)
    runtime.prepare_embedded()
    stack = Stack(
        request.param,
        settings,
        SqlBackend(request.param, runtime.engine, runtime.master_key),
        stack_env(settings),
        home / "worker.log",
    )
    # The embedded default's worker runs the relay itself; production runs `custody relay`.
    process = start_worker(stack.env, stack.log, "-c", "2")
    relay = None if settings.embedded else start_relay(stack.env, home / "relay.log")
    try:
        wait_until_serving(stack, process)
        yield stack
    finally:
        stop_worker(process)
        if relay is not None:
            stop_worker(relay)
        runtime.close()
