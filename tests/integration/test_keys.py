"""Signing keys as operators handle them: ``custody keys create | list | revoke | reseal``,
and the embedded default's local key that the CLI uses with no set-up."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from models.keystore import MasterKey, SealedSecretError
from models.signing import read_key_file
from tasks.keys import (
    UnknownKey,
    UnknownOrganization,
    create_key,
    list_keys,
    reseal_keys,
    revoke_key,
)

REPO = Path(__file__).resolve().parents[2]


def custody(home: Path, *args: str, **env: str):
    """Run the CLI in this process on the embedded default under ``home``."""
    result = CliRunner().invoke(
        cli, list(args), env={"CUSTODY_HOME": str(home), **env}, catch_exceptions=False
    )
    return result


def custody_process(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user does, for its error lines and exit codes."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env={**clean, "CUSTODY_HOME": str(home), "PYTHONPATH": str(REPO), **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def listed(home: Path, org: str = "local") -> list[dict]:
    result = custody(home, "keys", "list", org, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_embedded_default_makes_a_local_key_the_cli_can_use(home):
    # Given a fresh machine, when any command prepares the embedded default
    (key,) = listed(home)
    # Then the local organization has one active key, kept for the CLI in a private file
    kept = read_key_file(home / "local-signing-key.json")
    assert kept is not None and kept.key_id == key["keyId"] and key["active"] is True
    assert stat.S_IMODE((home / "local-signing-key.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "master.key").stat().st_mode) == 0o600
    # And it stays the same key on the next run
    assert [k["keyId"] for k in listed(home)] == [key["keyId"]]


def test_a_created_key_shows_its_secret_once_and_the_database_does_not_hold_it(home):
    created = custody(home, "keys", "create", "local", "--json")
    assert created.exit_code == 0, created.output
    key = json.loads(created.output)
    assert key["secret"].startswith("cks_") and key["organizationId"] == "local"
    # Then listing never shows it, and no byte of the database file holds it
    listing = custody(home, "keys", "list", "local")
    assert key["keyId"] in listing.output and key["secret"] not in listing.output
    assert key["secret"] not in json.dumps(listed(home))
    database = b"".join(p.read_bytes() for p in home.glob("custody.db*"))
    assert key["keyId"].encode() in database
    assert key["secret"].encode() not in database
    human = custody(home, "keys", "create", "local")
    assert "shown this once" in human.output and "CUSTODY_KEY_SECRET=" in human.output


def test_a_revoked_key_is_listed_as_revoked_and_revoking_again_says_so(home):
    key = json.loads(custody(home, "keys", "create", "local", "--json").output)
    first = custody(home, "keys", "revoke", key["keyId"])
    assert "revoked at" in first.output
    assert "already revoked" in custody(home, "keys", "revoke", key["keyId"]).output
    states = {k["keyId"]: k["active"] for k in listed(home)}
    assert states[key["keyId"]] is False and list(states.values()).count(True) == 1


def test_revoking_the_local_key_makes_the_embedded_default_make_a_new_one(home):
    (old,) = listed(home)
    custody(home, "keys", "revoke", old["keyId"])
    keys = listed(home)
    active = [k["keyId"] for k in keys if k["active"]]
    assert len(keys) == 2 and len(active) == 1 and active[0] != old["keyId"]
    assert read_key_file(home / "local-signing-key.json").key_id == active[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["keys", "revoke", "ck_nope"], "error: no signing key 'ck_nope'"),
        (["keys", "create", "nope"], "error: organization 'nope' does not exist"),
        (["keys", "list", "nope"], "error: organization 'nope' does not exist"),
    ],
)
def test_key_commands_on_unknown_things_fail_with_one_clear_line(home, args, says):
    result = custody_process(home, *args)
    assert result.returncode == 1
    assert result.stderr.strip() == says + (
        " (custody org create nope)" if "create" in args else ""
    )


def test_production_without_a_master_key_refuses_to_handle_keys_or_run_a_worker(
    tmp_path, postgres_url, redis_url
):
    production = {"CUSTODY_DATABASE_URL": postgres_url, "CUSTODY_BROKER_URL": redis_url}
    for args in (["keys", "create", "local"], ["worker"]):
        result = custody_process(tmp_path, *args, **production)
        assert result.returncode == 1, result.stderr
        assert "no master key: set CUSTODY_MASTER_KEY" in result.stderr
    assert not (tmp_path / "master.key").exists()


def test_a_master_key_rotation_reseals_every_key_and_drops_the_old_master_key(home):
    # Given keys sealed under the embedded default's master key
    (local,) = listed(home)
    old = (home / "master.key").read_text().strip()
    new = custody(home, "keys", "master-key").output.strip()
    assert isinstance(MasterKey.from_text(new), MasterKey)
    # When the new master key is put first and the keys are resealed
    resealed = custody(home, "keys", "reseal", CUSTODY_MASTER_KEY=f"{new},{old}")
    assert resealed.exit_code == 0 and "1 key(s) sealed again" in resealed.output
    # Then the new master key alone opens them: the local key is still the same one
    again = custody(home, "keys", "list", "local", "--json", CUSTODY_MASTER_KEY=new)
    assert [k["keyId"] for k in json.loads(again.output)] == [local["keyId"]]
    assert "0 key(s)" in custody(home, "keys", "reseal", CUSTODY_MASTER_KEY=new).output


def test_key_operations_on_every_store(backend):
    org = backend.new_org()
    extra = backend.new_key(org)
    with backend.uow() as uow:
        assert [k.key_id for k in list_keys(uow, org)] == [
            backend.key_for(org).key_id,
            extra.key_id,
        ]
        info, revoked = revoke_key(uow, extra.key_id)
        assert revoked and not info.active
        assert revoke_key(uow, extra.key_id)[1] is False
        with pytest.raises(UnknownKey):
            revoke_key(uow, "ck_nope")
        with pytest.raises(UnknownOrganization):
            create_key(uow, backend.master_key, "no-such-org")
        uow.commit()


def test_resealing_stops_at_a_key_no_configured_master_key_opens(backend):
    backend.new_org()  # a key sealed under the test master key
    stranger = MasterKey.from_text(MasterKey.generate_text())
    with backend.uow() as uow, pytest.raises(SealedSecretError, match="not configured"):
        reseal_keys(uow, stranger)
