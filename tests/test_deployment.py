"""docker-compose.yml is checked by reading it: no engine runs where the tests run."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_every_dependency_names_a_service_and_the_graph_has_no_cycle():
    services = compose()["services"]
    graph = {name: set(spec.get("depends_on") or {}) for name, spec in services.items()}
    for name, deps in graph.items():
        assert deps <= graph.keys(), f"{name} depends on unknown {deps - graph.keys()}"
    done: set[str] = set()
    while len(done) < len(graph):
        ready = {n for n, deps in graph.items() if n not in done and deps <= done}
        assert ready, f"dependency cycle among {set(graph) - done}"
        done |= ready


def test_workers_start_after_migrations_complete_and_servers_are_healthy():
    services = compose()["services"]
    depends = services["worker"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for server in ("redis", "postgres"):
        assert "healthcheck" in services[server]


def test_redis_is_durable_and_never_evicts():
    command = " ".join(compose()["services"]["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command


def test_the_services_use_the_documented_settings():
    env = compose()["x-custody-env"]
    assert env["CUSTODY_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["CUSTODY_BROKER_URL"].startswith("redis://")


def test_the_master_key_comes_from_the_environment_and_is_required():
    env = compose()["x-custody-env"]
    assert env["CUSTODY_MASTER_KEY"].startswith("${CUSTODY_MASTER_KEY:?")
    assert "CUSTODY_REQUIRE_SIGNATURES" not in env  # production default: required


def test_the_image_copies_every_package():
    dockerfile = (REPO / "Dockerfile").read_text()
    for package in ("models", "tasks", "worker", "producers", "subscribers", "cli"):
        assert f"COPY {package} ./{package}" in dockerfile


def test_a_relay_publishes_events_beside_the_workers_once_the_schema_exists():
    services = compose()["services"]
    relay = services["relay"]
    assert relay["command"] == ["relay"]
    assert relay["environment"] == compose()["x-custody-env"]
    depends = relay["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"
    assert relay.get("restart") == "unless-stopped"
    # the workers do not run a relay of their own in production (no CUSTODY_WORKER_RELAY)
    assert "CUSTODY_WORKER_RELAY" not in compose()["x-custody-env"]


def test_every_long_running_service_has_a_health_check():
    services = compose()["services"]
    for name, spec in services.items():
        if spec.get("restart") != "no":
            assert "healthcheck" in spec, name
    assert services["worker"]["healthcheck"]["test"][:3] == ["CMD", "custody", "health"]
    assert services["relay"]["healthcheck"]["test"][:3] == ["CMD", "custody", "health"]
