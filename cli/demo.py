"""``custody demo``: the quick start. Starts a worker, applies the seed examples, shows
their results, stops the worker. Runs on whatever the settings name (embedded by default)."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import click

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


@click.command()
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True)
@click.pass_obj
def demo(obj: Any, timeout_s: float) -> None:
    """Start a worker, apply the documentation's examples and print what happened."""
    from cli.main import Context
    from producers.client import Client, Reply

    ctx = obj if isinstance(obj, Context) else Context()
    settings = ctx.settings
    ctx.runtime().close()  # schema and local organization ready before the worker starts
    click.echo(f"database {settings.resolved_database_url}")
    click.echo(f"broker   {settings.resolved_broker_url}")
    log_path = settings.home / "demo-worker.log"
    click.echo(f"worker   started, its log in {log_path}")
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", "--pool", "solo", "--loglevel", "INFO"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    started = time.monotonic()
    try:
        with Client.from_settings(settings) as client:
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
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    click.echo(f"\ndone in {time.monotonic() - started:.1f}s; state is kept under {settings.home}/")
