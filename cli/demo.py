"""``custody demo``: the quick start. Starts a worker (with the outbox relay inside it),
applies the seed examples, shows each result and the events it published, stops the
worker. Runs on whatever the settings name (embedded by default)."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import click

from cli.access import describe_access_result
from cli.output import describe_result

# The examples of the "Assign Device to Owners" page, as commands.
ASSIGN_EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    (
        "single customer (the device is auto-created the first time)",
        {
            "device_identifier": "SN-1001",
            "customer_emails": ["alice@example.com"],
            "auto_create_device": True,
            "device_type": "Thermostat",
        },
    ),
    (
        "several customers: a shared family device, one e-mail malformed",
        {
            "device_identifier": "SN-1001",
            "customer_emails": [" Alice@Example.com ", "bob@example.com", "not-an-email"],
        },
    ),
    (
        "auto-create device",
        {
            "device_identifier": "GW-7f3a",
            "customer_emails": ["carol@example.com"],
            "auto_create_device": True,
            "device_type": "Gateway",
        },
    ),
    (
        "unknown device without autoCreateDevice",
        {"device_identifier": "SN-0000", "customer_emails": ["dave@example.com"]},
    ),
]

# Its unassign sibling: remove owner mappings.
UNASSIGN_EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    (
        "remove one owner of the family device, and someone who never owned it",
        {
            "device_identifier": "SN-1001",
            "customer_emails": ["bob@example.com", "erin@example.com"],
        },
    ),
]

EVENT_WAIT_S = 15.0  # longest wait for the event of a change


def expects_event(result: dict[str, Any], *, replayed: bool) -> bool:
    """Whether the command changed something, so that an event was published."""
    if replayed or not result.get("success"):
        return False
    if "customers" in result:
        return any(not c["alreadyAssigned"] for c in result["customers"])
    if "removedEmails" in result:
        return bool(result["removedEmails"])
    return True


def show_events(tail: Any, answer: Any) -> None:
    """Print the events the command published, as a subscriber receives them."""
    from subscribers.describe import describe_event

    if not expects_event(answer.result, replayed=answer.replayed):
        click.secho("  event: none (nothing changed)", dim=True)
        return
    deadline = time.monotonic() + EVENT_WAIT_S
    while (remaining := deadline - time.monotonic()) > 0:
        event = tail.next(timeout_s=remaining)
        if event is not None and event.correlationid == answer.request_id:
            click.secho(f"  event: {describe_event(event)}", fg="cyan")
            return
    click.secho(f"  event: none arrived within {EVENT_WAIT_S:g}s (is a relay running?)", fg="red")


# The examples of the "Create device access" page, granted by the owner of SN-1001.
GRANT_EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    (
        "permanent administrator access",
        {"user_email": "john@example.com", "access_level": 1},
    ),
    (
        "guest, time restricted",
        {
            "user_email": "jane@example.com",
            "access_level": 0,
            "start_date": "2020-12-14T08:09:57.781Z",
            "end_date": "2020-12-31T08:10:57.781Z",
        },
    ),
    (
        "guest, custom: Mon-Wed (weekDays 7), 08:00-20:00, December 2020",
        {
            "user_email": "joe@example.com",
            "access_level": 0,
            "week_days": 7,
            "day_start_time": "2020-12-01T08:00:00.000Z",
            "day_end_time": "2020-12-31T20:00:00.000Z",
            "start_date": "2020-12-01T08:09:57.781Z",
            "end_date": "2020-12-31T23:10:57.781Z",
        },
    ),
]
GRANTED_BY = "alice@example.com"  # owner of SN-1001 after the first assignment

# "May this user use SN-1001 at this instant?" (None = now)
CHECKS: list[tuple[str, str | None]] = [
    ("alice@example.com", None),
    ("john@example.com", None),
    ("jane@example.com", "2020-12-20T12:00:00Z"),
    ("jane@example.com", None),
    ("joe@example.com", "2020-12-02T09:00:00Z"),
    ("joe@example.com", "2020-12-05T09:00:00Z"),
    ("joe@example.com", "2020-12-02T21:00:00Z"),
]


@click.command()
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True)
@click.pass_obj
def demo(obj: Any, timeout_s: float) -> None:
    """Start a worker, apply the documentation's examples and print what happened."""
    from cli.main import Context
    from producers.client import Client, Reply
    from subscribers.tail import EventTail

    ctx = obj if isinstance(obj, Context) else Context()
    settings = ctx.settings
    ctx.runtime().close()  # schema and local organization ready before the worker starts
    click.echo(f"database {settings.resolved_database_url}")
    click.echo(f"broker   {settings.resolved_broker_url}")
    log_path = settings.home / "demo-worker.log"
    click.echo(f"worker   started with the outbox relay inside, its log in {log_path}")
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", "--pool", "solo", "--relay", "-l", "INFO"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    started = time.monotonic()
    tail = EventTail.from_settings(settings, organization=settings.organization)
    click.echo("events   watched like `custody events tail` does")
    try:
        with tail, Client.from_settings(settings) as client:
            for n, (title, fields) in enumerate(ASSIGN_EXAMPLES, 1):
                click.secho(f"\n[{n}] assign_device: {title}", bold=True)
                answer = client.assign_device(
                    **fields, request_id=f"demo-assign-{n}", wait=True, timeout_s=timeout_s
                )
                assert isinstance(answer, Reply)
                suffix = (
                    " (replayed: this requestId was already processed)" if answer.replayed else ""
                )
                click.echo(describe_result(answer.result, request_id=answer.request_id) + suffix)
                show_events(tail, answer)
            for n, (title, fields) in enumerate(GRANT_EXAMPLES, 1):
                click.secho(f"\n[{n}] grant_access: {title}", bold=True)
                answer = client.grant_access(
                    "SN-1001",
                    **fields,
                    granted_by=GRANTED_BY,
                    request_id=f"demo-grant-{n}",
                    wait=True,
                    timeout_s=timeout_s,
                )
                assert isinstance(answer, Reply)
                suffix = (
                    " (replayed: this requestId was already processed)" if answer.replayed else ""
                )
                text = describe_access_result(answer.result, request_id=answer.request_id)
                click.echo(text + suffix)
                show_events(tail, answer)
            for n, (title, fields) in enumerate(UNASSIGN_EXAMPLES, 1):
                click.secho(f"\n[{len(ASSIGN_EXAMPLES) + n}] unassign_device: {title}", bold=True)
                answer = client.unassign_device(
                    **fields, request_id=f"demo-unassign-{n}", wait=True, timeout_s=timeout_s
                )
                assert isinstance(answer, Reply)
                suffix = (
                    " (replayed: this requestId was already processed)" if answer.replayed else ""
                )
                click.echo(describe_result(answer.result, request_id=answer.request_id) + suffix)
                show_events(tail, answer)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    _checks(ctx)
    click.echo(f"\ndone in {time.monotonic() - started:.1f}s; state is kept under {settings.home}/")


def _checks(ctx: Any) -> None:
    """Ask the stored schedules whether each user may use SN-1001 at a few instants."""
    from datetime import UTC, datetime

    from models.access_commands import parse_instant
    from tasks.access_check import check_access

    click.secho("\naccess check SN-1001", bold=True)
    runtime = ctx.runtime()
    try:
        with runtime.uow() as uow:
            for email, at in CHECKS:
                instant = datetime.now(UTC) if at is None else parse_instant(at)
                answer = check_access(uow, ctx.settings.organization, "SN-1001", email, instant)
                verdict = "allowed" if answer.allowed else "denied "
                click.echo(f"  {email:<18} at {at or 'now':<20} {verdict} {answer.reason}")
    finally:
        runtime.close()
