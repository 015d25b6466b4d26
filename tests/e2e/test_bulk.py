"""Bulk assignment and onboarding through a real worker process, on Redis + PostgreSQL and on
the embedded default."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from producers.client import Reply
from tests.e2e.conftest import REPO

pytestmark = pytest.mark.e2e


def test_a_batch_is_applied_by_the_worker_with_one_answer_per_item(stack):
    org = stack.backend.new_org()
    items = [
        {
            "deviceIdentifier": "SN-B1",
            "customerEmails": ["a@example.com"],
            "autoCreateDevice": True,
            "deviceType": "Lock",
        },
        {"deviceIdentifier": "SN-B1", "customerEmails": ["b@example.com"]},
        {"deviceIdentifier": "SN-B2", "customerEmails": ["c@example.com"]},
    ]
    with stack.client(org) as client:
        reply = client.assign_devices(items, wait=True, timeout_s=30)
    assert isinstance(reply, Reply) and reply.success
    assert [i["status"] for i in reply.result["items"]] == ["assigned", "assigned", "skipped"]
    state = stack.backend.state(org)
    assert state.owners == {("SN-B1", "a@example.com"), ("SN-B1", "b@example.com")}
    assert len(state.events) == 1


def onboard(stack, org: str, path, *options: str) -> dict:
    env = stack.cli_env(org)  # acts as, and signs for, the organization
    done = subprocess.run(
        [sys.executable, "-m", "cli", "onboard", str(path), "--json", "--no-progress", *options],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def test_onboarding_a_file_waits_for_the_report_and_a_rerun_applies_nothing_again(stack, tmp_path):
    # Given a CSV of 120 devices, one of them with no valid address
    org = stack.backend.new_org()
    path = tmp_path / "fleet.csv"
    rows = [f"SN-{n:03d},user{n}@example.com;shared@example.com,Lock" for n in range(119)]
    rows.insert(60, "SN-bad,nobody,Lock")
    path.write_text("deviceIdentifier,customerEmails,deviceType\n" + "\n".join(rows) + "\n")
    # When it is onboarded in batches of 50, waiting for the answers
    report = onboard(stack, org, path, "--wait", "--batch-size", "50")
    # Then the report counts every row and names the bad one by its line
    assert (report["rows"], report["invalid"], report["batches"]) == (120, 1, 3)
    assert (report["assigned"], report["alreadyAssigned"], report["failed"]) == (119, 0, 0)
    assert [p["line"] for p in report["problems"]] == [62]
    assert report["replayedBatches"] == 0
    state = stack.backend.state(org)
    assert len(state.devices) == 119 and state.owner_rows == 238 and len(state.events) == 119
    # and running it again is answered from the stored results, changing nothing
    again = onboard(stack, org, path, "--wait", "--batch-size", "50")
    assert again["replayedBatches"] == 3 and again["assigned"] == 119
    assert stack.backend.state(org) == state
