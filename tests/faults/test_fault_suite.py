"""The fault-injection suite's short form, as CI runs it: private Redis and PostgreSQL, three
real workers, kill -9, broker restarts, a database outage, duplicates, reused requestIds,
malformed messages and conflicting commands; then the invariants on the database."""

from __future__ import annotations

import pytest

from faults.forms import KILL, POSTGRES, REDIS, SHORT
from faults.invariants import DEAD
from faults.load import INVALID, MALFORMED, NOT_FOUND, PROBE, REUSE, UNKNOWN_ORG, VALID
from faults.report import render
from faults.run import run
from faults.servers import ServerUnavailable
from tests.conftest import unavailable

pytestmark = pytest.mark.e2e


def test_under_faults_nothing_is_lost_nothing_takes_effect_twice_and_workers_keep_serving():
    # Given the short form's commands and faults
    try:
        result = run(SHORT, log=False)
    except ServerUnavailable as exc:
        unavailable(f"the fault suite needs its own servers: {exc}")
    table = render(result)
    verdict = result.verdict
    # Then every kind of message was sent, under every kind of fault
    assert set(verdict.kinds) == {VALID, INVALID, MALFORMED, NOT_FOUND, PROBE, REUSE, UNKNOWN_ORG}
    assert {s.fault.kind for s in result.struck} == {KILL, REDIS, POSTGRES}
    assert result.redeliveries > 0, table  # the kills made the broker hand messages out again
    # And nothing was lost, and every message ended as its kind must
    assert verdict.lost == [], table
    assert verdict.unexpected == [], table
    assert verdict.classes[DEAD] >= verdict.kinds[MALFORMED], table
    # And nothing took effect twice, and every change has exactly its one event
    assert sum(verdict.duplicate_effects.values()) == 0, table
    assert sum(verdict.violations.values()) == 0, table
    # And the workers kept serving: none exited on its own, each fault was recovered from
    assert result.worker_exits == 0 and result.workers_alive == SHORT.workers, table
    assert all(s.service_back_s is not None for s in result.struck), table
    assert result.quiet_after_s is not None, table
