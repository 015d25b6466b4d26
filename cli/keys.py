"""``custody keys``: organizations' signing keys. A secret is printed once, at creation;
nothing else ever shows it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from cli.output import emit_json


@click.group()
def keys() -> None:
    """Signing keys: every command is signed with a key of its organization.

    Rotation: create a new key, move producers to it, revoke the old one. Several keys
    may be active at once; a revocation counts from the next command on.
    """


@keys.command("create")
@click.argument("organization")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def keys_create(obj: Any, organization: str, as_json: bool) -> None:
    """Create a signing key for ORGANIZATION and print its secret (shown this once)."""
    from tasks.keys import create_key

    runtime = _context(obj).runtime()
    with runtime.uow() as uow:
        key = create_key(uow, runtime.master_key, organization)
        uow.commit()
    if as_json:
        emit_json({"keyId": key.key_id, "organizationId": organization, "secret": key.secret})
        return
    click.echo(f"key {key.key_id} created for organization {organization!r}")
    click.echo(f"secret {key.secret}")
    click.echo("The secret is shown this once. Producers sign with:")
    click.echo(f"  export CUSTODY_KEY_ID={key.key_id}")
    click.echo(f"  export CUSTODY_KEY_SECRET={key.secret}")


@keys.command("list")
@click.argument("organization")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def keys_list(obj: Any, organization: str, as_json: bool) -> None:
    """List ORGANIZATION's keys, revoked ones too (never their secrets)."""
    from tasks.keys import list_keys

    runtime = _context(obj).runtime()
    with runtime.uow() as uow:
        found = list_keys(uow, organization)
    if as_json:
        emit_json(
            [
                {
                    "keyId": k.key_id,
                    "organizationId": k.organization_id,
                    "createdAt": _iso(k.created_at),
                    "revokedAt": _iso(k.revoked_at),
                    "active": k.active,
                }
                for k in found
            ]
        )
        return
    if not found:
        click.echo(
            f"organization {organization!r} has no keys (custody keys create {organization})"
        )
    for k in found:
        state = "active" if k.active else f"revoked {_iso(k.revoked_at)}"
        click.echo(f"{k.key_id}  created {_iso(k.created_at)}  {state}")


@keys.command("revoke")
@click.argument("key_id")
@click.pass_obj
def keys_revoke(obj: Any, key_id: str) -> None:
    """Revoke KEY_ID: commands signed with it are refused (401) from now on."""
    from tasks.keys import revoke_key

    runtime = _context(obj).runtime()
    with runtime.uow() as uow:
        info, revoked = revoke_key(uow, key_id)
        uow.commit()
    when = _iso(info.revoked_at)
    if revoked:
        click.echo(f"key {key_id} of organization {info.organization_id!r} revoked at {when}")
    else:
        click.echo(f"key {key_id} was already revoked at {when}")


@keys.command("master-key")
def keys_master_key() -> None:
    """Print a new random master key, for CUSTODY_MASTER_KEY."""
    from models.keystore import MasterKey

    click.echo(MasterKey.generate_text())


@keys.command("reseal")
@click.pass_obj
def keys_reseal(obj: Any) -> None:
    """Seal every key again under the first key of CUSTODY_MASTER_KEY (master key rotation:
    set CUSTODY_MASTER_KEY=NEW,OLD, reseal, then drop OLD)."""
    from tasks.keys import reseal_keys

    runtime = _context(obj).runtime()
    with runtime.uow() as uow:
        count = reseal_keys(uow, runtime.master_key)
        uow.commit()
    click.echo(f"{count} key(s) sealed again under the current master key")


def _context(obj: Any) -> Any:
    from cli.main import Context

    return obj if isinstance(obj, Context) else Context()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")
