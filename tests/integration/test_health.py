"""``custody health`` tells a probe the truth, with an exit code it can use."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from cli.main import cli
from models import tables as t
from models.database import create_engine


def run_health(env: dict[str, str], *args: str):
    result = CliRunner().invoke(cli, ["health", "--json", *args], env=env)
    return result.exit_code, json.loads(result.output)


@pytest.fixture
def embedded_env(tmp_path):
    env = {"CUSTODY_HOME": str(tmp_path), "CUSTODY_DATABASE_URL": "", "CUSTODY_BROKER_URL": ""}
    # a fresh embedded home: schema and folders prepared as the CLI does
    assert CliRunner().invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    return env


def test_a_fresh_embedded_install_is_healthy(embedded_env):
    code, report = run_health(embedded_env)
    assert code == 0, report
    assert report["checks"]["database"]["schema"] == report["checks"]["database"]["schema_head"]
    assert report["checks"]["broker"]["ok"] is True


def test_an_unreachable_broker_fails_the_probe(embedded_env):
    code, report = run_health({**embedded_env, "CUSTODY_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert code == 1
    assert report["checks"]["broker"]["ok"] is False
    assert "unreachable" in report["checks"]["broker"]["detail"]


def test_an_old_unsent_event_fails_the_outbox_lag_check(embedded_env, tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'custody.db'}")
    with engine.begin() as conn:
        conn.execute(
            sa.insert(t.organizations).values(id="o", name="o", created_at=datetime.now(UTC))
        )
        conn.execute(
            sa.insert(t.outbox).values(
                event_id="e1",
                organization_id="o",
                type="device.assigned",
                subject="SN",
                payload={},
                created_at=datetime.now(UTC) - timedelta(minutes=5),
            )
        )
    engine.dispose()
    code, report = run_health(embedded_env, "--max-outbox-lag", "60")
    assert code == 1
    assert report["checks"]["database"]["outbox_unsent"] == 1
    assert "outbox lag" in report["checks"]["database"]["detail"]


@pytest.mark.postgres
@pytest.mark.redis
def test_the_production_stack_is_healthy(postgres_url, redis_url, tmp_path):
    env = {
        "CUSTODY_HOME": str(tmp_path),
        "CUSTODY_DATABASE_URL": postgres_url,
        "CUSTODY_BROKER_URL": redis_url,
    }
    code, report = run_health(env, "--max-outbox-lag", "100000")
    assert code == 0, report


def test_an_unreachable_database_fails_the_probe(tmp_path):
    env = {
        "CUSTODY_HOME": str(tmp_path),
        "CUSTODY_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/none",
        "CUSTODY_BROKER_URL": "",
    }
    code, report = run_health(env)
    assert code == 1
    assert report["checks"]["database"]["ok"] is False
