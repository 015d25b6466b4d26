"""The ``custody`` command line. Errors are one line on stderr and a non-zero exit code."""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from pydantic import ValidationError as SettingsError

from cli.output import describe_result, emit_json
from models.errors import CustodyError, Rejected
from models.settings import Settings


class Context:
    """Settings are read once, here at the edge, and passed to whatever needs them."""

    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings()
        return self._settings

    def runtime(self) -> Any:
        from worker.runtime import Runtime

        runtime = Runtime(self.settings)
        if self.settings.resolved_database_url.startswith("sqlite"):
            runtime.prepare_embedded()
        return runtime


pass_ctx = click.make_pass_decorator(Context, ensure=True)

organization_option = click.option(
    "--organization",
    "-o",
    default=None,
    help="Organization to act as (default: CUSTODY_ORGANIZATION, else 'local').",
)
request_id_option = click.option(
    "--request-id", default=None, help="Idempotency key of the command (default: generated)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="custody")
def cli() -> None:
    """custody: which customers own a device and which users may access it.

    With no configuration everything runs embedded under ./var (SQLite and a
    filesystem broker). Set CUSTODY_DATABASE_URL and CUSTODY_BROKER_URL for production.
    """


@cli.command()
@click.option("--concurrency", "-c", type=int, default=None, help="Worker processes.")
@click.option(
    "--pool", type=click.Choice(["prefork", "solo", "threads"]), default=None, help="Pool kind."
)
@click.option("--loglevel", "-l", default=None, help="DEBUG, INFO, WARNING…")
@click.option(
    "--relay/--no-relay",
    default=None,
    help="Also run the outbox relay in this process (default: CUSTODY_WORKER_RELAY, "
    "else only for the embedded default; production runs `custody relay`).",
)
@pass_ctx
def worker(
    ctx: Context,
    concurrency: int | None,
    pool: str | None,
    loglevel: str | None,
    relay: bool | None,
) -> None:
    """Consume commands and apply them."""
    from worker.app import create_app, quiet_per_task_logs
    from worker.logs import configure_logging

    settings = ctx.settings
    if settings.metrics_port is not None:
        from worker import metrics

        # Before anything imports prometheus_client: every pool process records here.
        metrics.prepare(settings.home.resolve() / "metrics" / f"worker-{os.getpid()}")
    runtime = ctx.runtime()
    runtime.authenticator  # noqa: B018  (no master key where signatures are required: stop now)
    runtime.close()  # forked children open their own connections
    app = create_app(settings, runtime, relay=settings.relay_in_worker if relay is None else relay)
    level = (loglevel or settings.log_level).upper()
    configure_logging(level, json_lines=settings.log_format == "json")
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port)
    quiet_per_task_logs(level)
    if (pool or settings.worker_pool) != "prefork":
        from worker.runtime import settle_memory

        settle_memory()  # no forked children: the main process applies commands itself
    app.worker_main(
        [
            "worker",
            "-Q",
            settings.commands_queue,
            "-c",
            str(concurrency or settings.worker_concurrency),
            "-P",
            pool or settings.worker_pool,
            "-l",
            level,
            "-n",
            f"custody.{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Apply every migration not yet applied."""
    from models.migrations import current_revision, upgrade
    from worker.runtime import Runtime

    runtime = Runtime(ctx.settings)
    ctx.settings.prepare_home()
    upgrade(runtime.engine)
    click.echo(f"schema at revision {current_revision(runtime.engine)}")


@cli.group()
def org() -> None:
    """Organizations (tenants)."""


@org.command("create")
@click.argument("organization")
@click.option("--name", default=None, help="Display name (default: the id).")
@pass_ctx
def org_create(ctx: Context, organization: str, name: str | None) -> None:
    """Create an organization (ids: letters, digits, '.', '_', '-'; at most 64)."""
    from pydantic import TypeAdapter

    from models.commands import OrganizationId

    try:
        TypeAdapter(OrganizationId).validate_python(organization)
    except SettingsError as exc:
        raise click.BadParameter(exc.errors()[0]["msg"], param_hint="ORGANIZATION") from exc
    runtime = ctx.runtime()
    with runtime.uow() as uow:
        created = uow.organizations.add(organization, name or organization)
        uow.commit()
    click.echo(f"organization {organization!r} {'created' if created else 'already exists'}")
    if created:
        click.echo(f"give its producers a signing key: custody keys create {organization}")


@cli.command()
@click.argument("device")
@click.argument("emails", nargs=-1, required=True)
@click.option("--auto-create", is_flag=True, help="Create the device if it does not exist.")
@click.option("--type", "device_type", default=None, help="Device type (with --auto-create).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the result.")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True)
@organization_option
@request_id_option
@json_option
@pass_ctx
def assign(
    ctx: Context,
    device: str,
    emails: tuple[str, ...],
    auto_create: bool,
    device_type: str | None,
    wait: bool,
    timeout_s: float,
    organization: str | None,
    request_id: str | None,
    as_json: bool,
) -> None:
    """Assign DEVICE to the customers with EMAILS (publishes custody.assign_device)."""
    from producers.client import Client, Reply

    with Client.from_settings(ctx.settings, organization=organization) as client:
        answer = client.assign_device(
            device,
            emails,
            auto_create_device=auto_create or None,
            device_type=device_type,
            request_id=request_id,
            wait=wait,
            timeout_s=timeout_s,
        )
    if isinstance(answer, Reply):
        _print_reply(answer, as_json)
    elif as_json:
        emit_json({"requestId": answer.request_id, "messageId": answer.message_id})
    else:
        click.echo(f"published {answer.task}, requestId {answer.request_id}")


def _print_reply(reply: Any, as_json: bool) -> None:
    if as_json:
        emit_json({"requestId": reply.request_id, "replayed": reply.replayed, **reply.result})
    else:
        text = describe_result(reply.result, request_id=reply.request_id)
        click.echo(text + (" (replayed: already processed)" if reply.replayed else ""))
    if not reply.success:
        sys.exit(1)


@cli.command()
@click.argument("request_id")
@organization_option
@json_option
@pass_ctx
def status(ctx: Context, request_id: str, organization: str | None, as_json: bool) -> None:
    """Show the recorded result of REQUEST_ID."""
    from tasks.queries import find_result

    runtime = ctx.runtime()
    with runtime.uow() as uow:
        found = find_result(uow, organization or ctx.settings.organization, request_id)
    if found is None:
        raise click.ClickException(f"no result recorded for requestId {request_id!r} (yet)")
    if as_json:
        emit_json({"requestId": request_id, "task": found.task, **found.result})
    else:
        click.echo(f"{found.task}: " + describe_result(found.result, request_id=request_id))


def _register_more() -> None:
    from cli import access, contract, dead_letters, demo, events, health, keys, owners

    cli.add_command(demo.demo)
    cli.add_command(health.health)
    cli.add_command(contract.contract)
    cli.add_command(keys.keys)
    cli.add_command(dead_letters.dead_letters)
    cli.add_command(owners.unassign)
    cli.add_command(events.relay)
    cli.add_command(events.events)
    for command in access.COMMANDS:
        cli.add_command(command)

    from cli import onboard

    cli.add_command(onboard.onboard)


_register_more()


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Rejected as exc:
        click.echo(f"error: invalid command: {'; '.join(exc.messages)}", err=True)
        sys.exit(2)
    except (CustodyError, TimeoutError, SettingsError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("CUSTODY_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(f"error: {type(exc).__name__}: {first}", err=True)
        sys.exit(1)
