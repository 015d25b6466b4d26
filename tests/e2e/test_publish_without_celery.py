"""A publisher with nothing but a Redis client reaches a real worker and gets its result."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.settings import Settings
from tests.backends import TEST_MASTER_KEY, SqlBackend
from tests.e2e.conftest import REPO, Stack, stack_env, start_worker, stop_worker, wait_until_serving
from worker.runtime import Runtime

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]


def load_example():
    spec = importlib.util.spec_from_file_location(
        "example", REPO / "examples/publish_with_redis.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def redis_stack(postgres_url: str, redis_url: str, tmp_path_factory) -> Iterator[Stack]:
    home: Path = tmp_path_factory.mktemp("home-raw-redis")
    settings = Settings(
        home=home,
        database_url=postgres_url,
        broker_url=redis_url,
        master_key=TEST_MASTER_KEY,
        require_signatures=True,
    )
    runtime = Runtime(settings)
    stack = Stack(
        "redis+postgres",
        settings,
        SqlBackend("postgres", runtime.engine, runtime.master_key),
        stack_env(settings),
        home / "worker.log",
    )
    process = start_worker(stack.env, stack.log, "-c", "1")
    try:
        wait_until_serving(stack, process)
        yield stack
    finally:
        stop_worker(process)
        runtime.close()


def test_a_signed_command_pushed_with_a_plain_redis_client_is_applied_and_answered(redis_stack):
    example = load_example()
    org = redis_stack.backend.new_org()
    command = {
        "requestId": str(uuid.uuid4()),
        "organizationId": org,
        "deviceIdentifier": "SN-RAW",
        "customerEmails": ["raw@example.com"],
        "autoCreateDevice": True,
        "deviceType": "Thermostat",
    }
    key = redis_stack.backend.key_for(org)
    signed = example.sign(command, key.key_id, key.secret)
    reply = example.publish_and_wait(
        redis_stack.settings.broker_url, "custody.assign_device", signed
    )
    assert reply["requestId"] == command["requestId"]
    assert reply["result"]["success"] is True
    assert reply["result"]["deviceCreated"] is True
    assert redis_stack.backend.state(org).owners == {("SN-RAW", "raw@example.com")}


def test_the_canonical_json_of_the_example_matches_the_projects():
    from models.canonical import canonical_json

    example = load_example()
    command = {"b": 1, "a": ["é", {"z": None, "y": True}], "signature": {"keyId": "k"}}
    assert example.canonical(command) == canonical_json(command)


def test_an_unsigned_command_pushed_with_a_plain_redis_client_is_refused(redis_stack):
    example = load_example()
    org = redis_stack.backend.new_org()
    command = {
        "requestId": str(uuid.uuid4()),
        "organizationId": org,
        "deviceIdentifier": "SN-RAW",
        "customerEmails": ["raw@example.com"],
    }
    reply = example.publish_and_wait(
        redis_stack.settings.broker_url, "custody.assign_device", command
    )
    assert reply["result"]["statusCode"] == 401
    assert redis_stack.backend.state(org).customers == {}
