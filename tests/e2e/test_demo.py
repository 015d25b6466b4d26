"""The README's quick start works from nothing and shows each command's event."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.e2e.conftest import REPO

pytestmark = pytest.mark.e2e


def run_demo(home) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env.update(CUSTODY_HOME=str(home), PYTHONPATH=str(REPO))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "cli", "demo"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, time.monotonic() - started


def test_the_demo_prints_each_event_after_its_result_and_a_rerun_changes_nothing(tmp_path):
    # When the quick start runs on a fresh machine
    first, seconds = run_demo(tmp_path / "var")
    # Then it succeeds within a minute and shows one event per change, after its result
    assert first.returncode == 0, first.stdout + first.stderr
    assert seconds < 60
    events = [line for line in first.stdout.splitlines() if line.startswith("  event: ")]
    kinds = ["device.assigned", "access.granted", "device.unassigned"]
    assert [[kind in e for kind in kinds] for e in events] == [
        [True, False, False],
        [True, False, False],
        [True, False, False],
        [False, False, False],  # the 404 changed nothing
        [False, True, False],  # permanent admin
        [False, True, False],  # time-restricted guest
        [False, True, False],  # custom guest
        [False, False, True],
    ]
    assert "+alice@example.com (device created)" in events[0]
    assert "access 1 of john@example.com (admin): permanent" in events[4]
    assert "-bob@example.com -> owners: alice@example.com" in events[7]
    # and the access checks answer from the stored schedules
    assert "john@example.com   at now                  allowed admin access 1" in first.stdout
    # And a second run is answered from the idempotency records: no event at all
    again, _ = run_demo(tmp_path / "var")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("replayed") == 8
    assert not any(kind in again.stdout for kind in kinds)
