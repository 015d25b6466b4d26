"""Concurrent transactions on real databases end in the state one worker would reach."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.backends import SqlBackend
from tests.helpers import assign_body, deliver, new_device


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_backend(request: pytest.FixtureRequest) -> SqlBackend:
    return SqlBackend(request.param, request.getfixturevalue(f"{request.param}_engine"))


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Start every call at the same instant on its own thread; return results or errors."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # reported to the test, not swallowed
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_overlapping_new_customers_on_one_device_end_with_one_row_each(sql_backend):
    # Given a new device and several commands that assign overlapping new customers
    org, device = sql_backend.new_org(), new_device()
    emails = [f"user{i}@example.com" for i in range(6)]
    bodies = [
        assign_body(org, device, emails[i : i + 4], autoCreateDevice=True, deviceType="T")
        for i in range(3)
    ]
    # When they run at the same time
    outcomes = run_together([lambda b=b: deliver(sql_backend, b) for b in bodies])
    # Then none failed, and the invariants hold
    assert all(not isinstance(o, BaseException) for o in outcomes), outcomes
    assert all(o.result["success"] for o in outcomes)
    state = sql_backend.state(org)
    assert sorted(state.customers) == sorted(emails)
    assert state.owner_rows == len(emails)
    assert len(state.devices) == 1
    assert sum(o.result["deviceCreated"] for o in outcomes) == 1
    # and every owner was reported newly assigned by exactly one command
    newly = [
        c["email"] for o in outcomes for c in o.result["customers"] if not c["alreadyAssigned"]
    ]
    assert sorted(newly) == sorted(emails)
    # and the events added each owner exactly once, with a growing owner list
    added = [o["email"] for e in state.events for o in e["data"]["ownersAdded"]]
    assert sorted(added) == sorted(emails)
    sizes = [len(e["data"]["owners"]) for e in state.events]
    assert sizes == sorted(sizes) and sizes[-1] == len(emails)


def test_the_same_request_delivered_concurrently_has_one_effect(sql_backend):
    org, device = sql_backend.new_org(), new_device()
    body = assign_body(
        org, device, ["a@example.com", "b@example.com"], autoCreateDevice=True, deviceType="T"
    )
    outcomes = run_together([lambda: deliver(sql_backend, dict(body)) for _ in range(4)])
    assert all(not isinstance(o, BaseException) for o in outcomes), outcomes
    assert all(o.result == outcomes[0].result for o in outcomes)  # the one stored answer
    assert sum(not o.replayed for o in outcomes) == 1
    state = sql_backend.state(org)
    assert len(state.events) == 1 and state.owner_rows == 2 and len(state.processed) == 1
