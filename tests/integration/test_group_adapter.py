"""The pool side of coalescing: a group of messages as a pool process runs it, with the
worker's real Celery app and runtime on the embedded store (nothing is published: the
commands ask for no reply)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from models import constants as c
from models import tables as t
from models.errors import Transient
from models.settings import Settings
from tasks.celery_tasks import Queued, run_group
from tests.backends import SqlBackend
from worker.app import create_app
from worker.runtime import Runtime


class FirstTransactionFails(Runtime):
    """A database that is away for the group's transaction and back right after it."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.transactions = 0

    def uow(self) -> Any:
        self.transactions += 1
        if self.transactions == 1:
            raise Transient("database unavailable: the server closed the connection")
        return super().uow()


def queued(command: Any) -> Queued:
    body = json.dumps([[command], {}, {"callbacks": None, "errbacks": None}])
    return Queued(str(uuid.uuid4()), body, None, None, {"routing_key": "custody.commands"})


@pytest.fixture
def embedded(tmp_path) -> Settings:
    settings = Settings(home=tmp_path, database_url=None, broker_url=None)
    Runtime(settings).prepare_embedded()
    return settings


def commands(org: str) -> list[dict[str, Any]]:
    fresh = [
        {
            "requestId": f"g-{n}",
            "organizationId": org,
            "deviceIdentifier": f"SN-{n % 2}",
            "customerEmails": [f"u{n}@example.com"],
            "autoCreateDevice": True,
            "deviceType": "Lock",
        }
        for n in range(4)
    ]
    invalid = {"requestId": "g-bad", "organizationId": org, "deviceIdentifier": "SN-0"}
    stranger = {**fresh[0], "requestId": "g-x", "organizationId": "no-such-org"}
    return [*fresh, dict(fresh[1]), invalid, stranger, "not an object"]


@pytest.mark.parametrize("runtime_kind", [Runtime, FirstTransactionFails])
def test_a_group_acknowledges_every_message_once_its_answer_is_recorded(embedded, runtime_kind):
    # Given the worker's app, on a database that works or is away for the group's transaction
    runtime = runtime_kind(embedded)
    app = create_app(embedded, runtime)
    backend = SqlBackend("sqlite", runtime.engine)
    org = backend.new_org()
    # When a pool process runs a group of fresh, repeated, invalid and unauthenticated commands
    acks = run_group(app.tasks[c.ASSIGN_DEVICE], runtime, [queued(b) for b in commands(org)])
    # Then every message is acknowledged, each with its answer recorded, in one way or the other
    assert acks == [True] * 8
    state = backend.state(org)
    assert sorted(state.processed) == ["g-0", "g-1", "g-2", "g-3", "g-bad"]
    assert state.processed["g-bad"]["statusCode"] == 400
    assert state.owners == {
        ("SN-0", "u0@example.com"),
        ("SN-1", "u1@example.com"),
        ("SN-0", "u2@example.com"),
        ("SN-1", "u3@example.com"),
    }
    assert len(state.events) == 4
    assert [r["statusCode"] for r in backend.state("no-such-org").rejections] == [401]
    # And the fresh commands shared one transaction, unless it failed: then one by one
    p = t.processed_commands
    with runtime.engine.connect() as conn:
        clocks = conn.execute(
            sa.select(sa.func.count(sa.distinct(p.c.created_at))).where(
                p.c.organization_id == org, p.c.request_id.like("g-_")
            )
        ).scalar_one()
    assert clocks == (1 if runtime_kind is Runtime else 4)
    runtime.close()
