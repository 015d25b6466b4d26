"""``custody unassign``: remove owners from a device."""

from __future__ import annotations

from typing import Any

import click

from cli.options import context, json_option, organization_option, request_id_option
from cli.output import emit_json


@click.command()
@click.argument("device")
@click.argument("emails", nargs=-1, required=True)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the result.")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True)
@organization_option
@request_id_option
@json_option
@click.pass_obj
def unassign(
    obj: Any,
    device: str,
    emails: tuple[str, ...],
    wait: bool,
    timeout_s: float,
    organization: str | None,
    request_id: str | None,
    as_json: bool,
) -> None:
    """Remove the customers with EMAILS from DEVICE's owners (publishes
    custody.unassign_device). The customers themselves stay."""
    from cli.main import _print_reply
    from producers.client import Client, Reply

    ctx = context(obj)
    with Client.from_settings(ctx.settings, organization=organization) as client:
        answer = client.unassign_device(
            device, emails, request_id=request_id, wait=wait, timeout_s=timeout_s
        )
    if isinstance(answer, Reply):
        _print_reply(answer, as_json)
    elif as_json:
        emit_json({"requestId": answer.request_id, "messageId": answer.message_id})
    else:
        click.echo(f"published {answer.task}, requestId {answer.request_id}")
