"""A real ``custody worker`` process per backend: Redis + PostgreSQL, and the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
            broker_url=request.getfixturevalue("redis_url"),
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
    process = start_worker(stack.env, stack.log, "-c", "2")
    try:
        wait_until_serving(stack, process)
        yield stack
    finally:
        stop_worker(process)
        runtime.close()
