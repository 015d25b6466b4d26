"""A rerun of an onboarding after a crash applies nothing twice: the same file yields the
same batches under the same requestIds, and finished batches are answered from their
stored results. Checked on the fake, SQLite and PostgreSQL, with the real pipeline."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from producers.client import Client
from producers.onboarding import onboard
from tasks.pipeline import Delivery, Outcome, process

HEADER = "deviceIdentifier,customerEmails,deviceType\n"


def fleet(path: Path, count: int) -> Path:
    with path.open("w") as out:
        out.write(HEADER)
        for n in range(count):
            out.write(f"SN-{n:04d},user{n}@example.com;family{n % 7}@example.com,Lock\n")
        out.write("SN-bad,no-address,Lock\n")
    return path


def drain(client: Client, backend: Any) -> list[Outcome]:
    """Apply every queued command with the real pipeline, as a worker would, in order."""
    channel = client._connection.default_channel
    outcomes = []
    while (message := channel.basic_get(client._queue.name)) is not None:
        (command,), _, _ = message.decode()
        delivery = Delivery(message.headers["task"], message.headers["id"], command)
        outcomes.append(process(delivery, backend.uow))
        message.ack()
    return outcomes


def test_a_rerun_after_a_crash_applies_nothing_twice(backend, tmp_path):
    # Given a file of 50 good rows and one bad row, onboarded in batches of 10
    org = backend.new_org()
    path = fleet(tmp_path / "fleet.csv", 50)
    queue = f"custody.t-{uuid.uuid4().hex}"
    with Client("memory://", organization=org, queue=queue) as client:
        # When a first run stops ("crashes") after two batches, which the worker applies
        first = onboard(path, client, batch_size=10, max_batches=2)
        applied = drain(client, backend)
        assert first.batches == 2 and not first.complete
        assert [o.replayed for o in applied] == [False, False]
        after_crash = backend.state(org)
        assert len(after_crash.devices) == 20
        # and the same file is onboarded again, to the end
        second = onboard(path, client, batch_size=10)
        outcomes = drain(client, backend)
    # Then the same requestIds came again: the first two are answered from their stored
    # results, the other three are applied
    assert second.complete and second.batches == 5 and second.invalid == 1
    assert second.first_request_id == first.first_request_id
    assert [o.replayed for o in outcomes] == [True, True, False, False, False]
    assert [o.result for o in outcomes[:2]] == [o.result for o in applied]
    # and every row took effect exactly once
    state = backend.state(org)
    assert len(state.devices) == 50 and state.owner_rows == 100
    assert len(state.events) == 50
    assert len({e["subject"] for e in state.events}) == 50
    assert len(state.processed) == 5
    assert sum(o.result["summary"]["assigned"] for o in outcomes[2:]) == 30


def test_a_third_run_of_a_finished_file_changes_nothing(backend, tmp_path):
    org = backend.new_org()
    path = fleet(tmp_path / "fleet.csv", 12)
    with Client("memory://", organization=org, queue=f"custody.t-{uuid.uuid4().hex}") as client:
        onboard(path, client, batch_size=5)
        drain(client, backend)
        before = backend.state(org)
        onboard(path, client, batch_size=5)
        again = drain(client, backend)
    assert [o.replayed for o in again] == [True, True, True]
    assert backend.state(org) == before
