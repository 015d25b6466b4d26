"""``custody grant``, ``custody revoke``, ``custody access update|check``: access grants
from the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from cli.output import describe_result, emit_json

LEVELS = {"guest": 0, "admin": 1}


def _context() -> Any:
    from cli.main import Context

    return click.get_current_context().ensure_object(Context)


def _publishing(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of every command that publishes and (by default) waits for its result."""
    for option in reversed(
        [
            click.option("--wait/--no-wait", default=True, show_default=True),
            click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True),
            click.option(
                "--organization",
                "-o",
                default=None,
                help="Organization to act as (default: CUSTODY_ORGANIZATION, else 'local').",
            ),
            click.option(
                "--request-id", default=None, help="Idempotency key (default: generated)."
            ),
            click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts."),
        ]
    ):
        command = option(command)
    return command


def describe_access_result(result: dict[str, Any], *, request_id: str | None = None) -> str:
    """A line or two that say what a grant, update or revoke did."""
    access = result.get("result") or {}
    if not result.get("success") or "id" not in access:
        return describe_result(result, request_id=request_id)
    who = f"access {access['id']} of {access['sharedUserDisplayName']}"
    if "changedFields" in access:
        changed = ", ".join(access["changedFields"])
        line = f"updated {who}: {changed}" if changed else f"{who} unchanged"
    elif "alreadyEnded" in access:
        line = f"{who} had already ended" if access["alreadyEnded"] else f"revoked {who}"
    elif result.get("statusCode") == 201:
        line = f"granted {who}"
    else:
        line = f"{who} already exists with these terms: nothing changed"
    return line + (f"\n  requestId {request_id}" if request_id else "")


def _show(answer: Any, as_json: bool) -> None:
    from producers.client import Reply

    if not isinstance(answer, Reply):
        if as_json:
            emit_json({"requestId": answer.request_id, "messageId": answer.message_id})
        else:
            click.echo(f"published {answer.task}, requestId {answer.request_id}")
        return
    if as_json:
        emit_json({"requestId": answer.request_id, "replayed": answer.replayed, **answer.result})
    else:
        text = describe_access_result(answer.result, request_id=answer.request_id)
        click.echo(text + (" (replayed: already processed)" if answer.replayed else ""))
    if not answer.success:
        sys.exit(1)


def _client(organization: str | None) -> Any:
    from producers.client import Client

    return Client.from_settings(_context().settings, organization=organization)


@click.command()
@click.argument("device")
@click.argument("user_email")
@click.option("--by", "granted_by", required=True, help="E-mail of the owner or admin granting.")
@click.option("--level", type=click.Choice(list(LEVELS)), default="guest", show_default=True)
@click.option("--weekdays", default=None, help="Days: 'mon,tue,…' or a mask 1-127 (31 = Mon-Fri).")
@click.option("--start", default=None, help="From this instant (ISO 8601, UTC if no offset).")
@click.option("--end", default=None, help="Until this instant (ISO 8601, excluded).")
@click.option("--from", "day_start", default=None, help="Daily window start, HH:MM.")
@click.option(
    "--to", "day_end", default=None, help="Daily window end, HH:MM (before --from: overnight)."
)
@click.option(
    "--tz", "time_zone", default=None, help="IANA time zone of weekdays and window [UTC]."
)
@click.option("--remote-disabled", is_flag=True, help="Disable remote access.")
@_publishing
def grant(
    device: str,
    user_email: str,
    granted_by: str,
    level: str,
    weekdays: str | None,
    start: str | None,
    end: str | None,
    day_start: str | None,
    day_end: str | None,
    time_zone: str | None,
    remote_disabled: bool,
    **publishing: Any,
) -> None:
    """Grant USER_EMAIL access to DEVICE (publishes custody.grant_access)."""
    with _client(publishing["organization"]) as client:
        answer = client.grant_access(
            device,
            user_email,
            granted_by=granted_by,
            access_level=LEVELS[level],
            remote_access_disabled=remote_disabled or None,
            week_days=weekdays,
            start_date=start,
            end_date=end,
            day_start_time=day_start,
            day_end_time=day_end,
            time_zone=time_zone,
            request_id=publishing["request_id"],
            wait=publishing["wait"],
            timeout_s=publishing["timeout_s"],
        )
    _show(answer, publishing["as_json"])


@click.command()
@click.argument("device")
@click.argument("access_id", type=int)
@click.option("--by", "revoked_by", required=True, help="E-mail of the owner or admin revoking.")
@_publishing
def revoke(device: str, access_id: int, revoked_by: str, **publishing: Any) -> None:
    """Revoke access ACCESS_ID to DEVICE (publishes custody.revoke_access)."""
    with _client(publishing["organization"]) as client:
        answer = client.revoke_access(
            device,
            access_id,
            revoked_by=revoked_by,
            request_id=publishing["request_id"],
            wait=publishing["wait"],
            timeout_s=publishing["timeout_s"],
        )
    _show(answer, publishing["as_json"])


@click.group()
def access() -> None:
    """Change accesses, and ask whether a user may use a device."""


CLEAR = "none"


@access.command("update")
@click.argument("device")
@click.argument("access_id", type=int)
@click.option("--by", "updated_by", required=True, help="E-mail of the owner or admin.")
@click.option("--level", type=click.Choice(list(LEVELS)), default=None)
@click.option("--remote-disabled/--remote-enabled", "remote_disabled", default=None)
@click.option("--weekdays", default=None, help="'mon,tue,…', a mask 1-127, or 'none'.")
@click.option("--start", default=None, help="ISO 8601 instant, or 'none'.")
@click.option("--end", default=None, help="ISO 8601 instant, or 'none'.")
@click.option("--from", "day_start", default=None, help="HH:MM, or 'none'.")
@click.option("--to", "day_end", default=None, help="HH:MM, or 'none'.")
@click.option("--tz", "time_zone", default=None, help="IANA time zone, or 'none' (UTC).")
@_publishing
def access_update(
    device: str,
    access_id: int,
    updated_by: str,
    level: str | None,
    remote_disabled: bool | None,
    **options: Any,
) -> None:
    """Change access ACCESS_ID to DEVICE: options left out stay, 'none' clears a field."""
    from producers.client import UNCHANGED

    schedule = {
        "week_days": options.pop("weekdays"),
        "start_date": options.pop("start"),
        "end_date": options.pop("end"),
        "day_start_time": options.pop("day_start"),
        "day_end_time": options.pop("day_end"),
        "time_zone": options.pop("time_zone"),
    }
    changes = {
        name: UNCHANGED if value is None else (None if value.lower() == CLEAR else value)
        for name, value in schedule.items()
    }
    with _client(options["organization"]) as client:
        answer = client.update_access(
            device,
            access_id,
            updated_by=updated_by,
            access_level=UNCHANGED if level is None else LEVELS[level],
            remote_access_disabled=UNCHANGED if remote_disabled is None else remote_disabled,
            **changes,
            request_id=options["request_id"],
            wait=options["wait"],
            timeout_s=options["timeout_s"],
        )
    _show(answer, options["as_json"])


@access.command("check")
@click.argument("device")
@click.argument("user_email")
@click.option("--at", default=None, help="The instant to ask about (ISO 8601; default: now).")
@click.option(
    "--organization",
    "-o",
    default=None,
    help="Organization to look in (default: CUSTODY_ORGANIZATION, else 'local').",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def access_check(
    device: str, user_email: str, at: str | None, organization: str | None, as_json: bool
) -> None:
    """May USER_EMAIL use DEVICE at --at? Prints allowed or denied and why.

    Exit code 0 when allowed, 1 when denied. Owners are always allowed.
    """
    from models.access_commands import parse_instant
    from tasks.access_check import check_access

    try:
        instant = datetime.now(UTC) if at is None else parse_instant(at)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None
    ctx = _context()
    runtime = ctx.runtime()
    try:
        with runtime.uow() as uow:
            answer = check_access(
                uow, organization or ctx.settings.organization, device, user_email, instant
            )
    finally:
        runtime.close()
    if as_json:
        emit_json(
            {
                "deviceIdentifier": answer.device_identifier,
                "userEmail": answer.user_email,
                "at": answer.at.isoformat().replace("+00:00", "Z"),
                "allowed": answer.allowed,
                "reason": answer.reason,
                "role": answer.role,
                "accessId": answer.access_id,
                "remoteAccessDisabled": answer.remote_access_disabled,
            }
        )
    else:
        click.echo(f"{'allowed' if answer.allowed else 'denied'}: {answer.reason}")
    if not answer.allowed:
        sys.exit(1)


COMMANDS = [grant, revoke, access]
