"""One active access per user and device holds under concurrency: the database carries it
(a partial unique index), and concurrent grants end as one worker would leave them."""

from __future__ import annotations

import multiprocessing
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from models import tables as t
from models.access import AccessLevel, AccessTerms, Schedule
from models.database import create_engine
from models.store import SqlUnitOfWork
from tasks.pipeline import Delivery, process
from tests.access_helpers import grant, grant_body, owned_device
from tests.backends import SqlBackend
from tests.integration.test_concurrency import run_together

JOHN = "john@example.com"
GUEST = AccessTerms(AccessLevel.GUEST, False, Schedule())


def test_the_store_refuses_a_second_open_access_and_reports_it(backend):
    # Given a device and a user with one open access
    org, device = owned_device(backend)
    with backend.uow() as uow:
        device_id = uow.devices.get(org, device).id
        (user,) = uow.customers.ensure(org, [JOHN])
        first = uow.accesses.add(org, device_id, user.id, GUEST, granted_by_customer_id=None)
        # When a second open access is added for the same pair
        second = uow.accesses.add(org, device_id, user.id, GUEST, granted_by_customer_id=None)
        # Then the store refuses it; once the first is closed, a new one fits
        assert first is not None and second is None
        uow.accesses.close(first.id, revoke=True)
        third = uow.accesses.add(org, device_id, user.id, GUEST, granted_by_customer_id=None)
        assert third is not None and third.id != first.id
        uow.commit()
    assert backend.state(org).open_accesses(device, JOHN) == [third.id]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_backend(request: pytest.FixtureRequest) -> SqlBackend:
    return SqlBackend(request.param, request.getfixturevalue(f"{request.param}_engine"))


def test_the_unique_index_itself_refuses_a_second_open_row(sql_backend):
    # Given one open access row
    org, device = owned_device(sql_backend)
    with sql_backend.uow() as uow:
        device_id = uow.devices.get(org, device).id
        (user,) = uow.customers.ensure(org, [JOHN])
        uow.accesses.add(org, device_id, user.id, GUEST, granted_by_customer_id=None)
        uow.commit()
    # When a plain INSERT (no ON CONFLICT) tries a second open row
    now = sa.func.now() if sql_backend.name == "postgres" else sa.text("CURRENT_TIMESTAMP")
    row = {
        "organization_id": org,
        "device_id": device_id,
        "customer_id": user.id,
        "access_level": 0,
        "remote_access_disabled": False,
        "time_zone": "UTC",
        "created_at": now,
        "updated_at": now,
    }
    # Then the database refuses it
    with pytest.raises(sa.exc.IntegrityError), sql_backend.engine.begin() as conn:
        conn.execute(sa.insert(t.accesses).values(**row))
    # while a closed row for the same pair is fine
    with sql_backend.engine.begin() as conn:
        conn.execute(sa.insert(t.accesses).values(**row, closed_at=now))


def racing_grants(org: str, device: str, n: int) -> list[dict[str, Any]]:
    """Half the same guest grant, half an admin grant, each under its own requestId."""
    return [grant_body(org, device, JOHN, level=i % 2) for i in range(n)]


def check_one_winner(results: list[dict[str, Any]], state: Any, device: str) -> None:
    """Exactly one access; every success names it; every failure is ACCESS_EXISTS."""
    assert len(state.open_accesses(device, JOHN)) == 1
    (access_id,) = state.open_accesses(device, JOHN)
    assert len(state.accesses) == 1
    successes = [r for r in results if r["success"]]
    failures = [r for r in results if not r["success"]]
    assert [r["statusCode"] for r in successes].count(201) == 1
    assert all(r["result"]["id"] == access_id for r in successes)
    assert all(r["errorCode"] == "ACCESS_EXISTS" for r in failures), failures
    assert len(successes) == len(results) // 2 and len(failures) == len(results) // 2
    assert [e["type"] for e in state.events].count("access.granted") == 1


def test_concurrent_grants_on_threads_leave_one_access(sql_backend):
    org, device = owned_device(sql_backend)
    bodies = racing_grants(org, device, 8)
    outcomes = run_together([lambda b=b: grant(sql_backend, b) for b in bodies])
    assert all(not isinstance(o, BaseException) for o in outcomes), outcomes
    check_one_winner([o.result for o in outcomes], sql_backend.state(org), device)


def _grant_in_a_process(url: str, body: dict[str, Any], barrier: Any, results: Any) -> None:
    engine = create_engine(url)
    try:
        with engine.connect():  # connect before the start line, so the race is the grant
            pass
        barrier.wait(timeout=60)
        delivery = Delivery(task="custody.grant_access", message_id=str(uuid.uuid4()), command=body)
        results.put(process(delivery, lambda: SqlUnitOfWork(engine)).result)
    except BaseException as exc:  # reported to the test
        results.put({"crashed": repr(exc)})
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_concurrent_grants_from_several_processes_on_postgres_leave_one_access(
    postgres_url, postgres_engine
):
    # Given one device and six grants of the same user, each in its own OS process
    backend = SqlBackend("postgres", postgres_engine)
    org, device = owned_device(backend)
    bodies = racing_grants(org, device, 6)
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(len(bodies)), spawn.Queue()
    processes = [
        spawn.Process(target=_grant_in_a_process, args=(postgres_url, b, barrier, results))
        for b in bodies
    ]
    # When they start together
    for p in processes:
        p.start()
    answers = [results.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(timeout=30)
    # Then nothing crashed and exactly one access exists
    assert not [a for a in answers if "crashed" in a], answers
    check_one_winner(answers, backend.state(org), device)
