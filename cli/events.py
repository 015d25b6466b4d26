"""``custody relay`` and ``custody events …``: moving events out of the outbox, watching
them, and the JSON Schemas of their data."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import click

from cli.options import context, json_option


@click.command()
@click.option(
    "--batch-size", type=click.IntRange(1, 10_000), default=None, help="Events per batch."
)
@click.option(
    "--poll-interval",
    "poll_interval_s",
    type=click.FloatRange(min=0.01),
    default=None,
    help="Longest wait for a commit signal before looking anyway (seconds).",
)
@click.option("--loglevel", "-l", default=None, help="DEBUG, INFO, WARNING…")
@click.pass_obj
def relay(
    obj: Any, batch_size: int | None, poll_interval_s: float | None, loglevel: str | None
) -> None:
    """Publish committed events from the outbox to the events exchange, until stopped.

    Run one or more beside the workers (several at once are safe and keep each device's
    events in commit order). The embedded default runs one inside `custody worker`.
    """
    from worker.relay import relay_from_settings

    ctx = context(obj)
    ctx.runtime().close()  # the embedded default's schema exists before the first read
    overrides: dict[str, Any] = {}
    if batch_size is not None:
        overrides["relay_batch_size"] = batch_size
    if poll_interval_s is not None:
        overrides["relay_poll_interval_s"] = poll_interval_s
    settings = ctx.settings.model_copy(update=overrides)
    from worker.logs import configure_logging

    level = (loglevel or settings.log_level).upper()
    configure_logging(level, json_lines=settings.log_format == "json")
    if settings.metrics_port is not None:
        from worker.metrics import serve

        serve(settings.metrics_port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker = relay_from_settings(settings)
    try:
        worker.run(stop)
    finally:
        worker.close()


@click.group()
def events() -> None:
    """Events: watch them, and the schemas of their data."""


@events.command()
@click.argument("patterns", nargs=-1)
@click.option("--organization", "-o", default=None, help="Only this organization's events.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N events.")
@click.option(
    "--idle-timeout",
    "idle_timeout_s",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop after this many seconds without an event.",
)
@json_option
@click.pass_obj
def tail(
    obj: Any,
    patterns: tuple[str, ...],
    organization: str | None,
    count: int | None,
    idle_timeout_s: float | None,
    as_json: bool,
) -> None:
    """Print events as they are published, one line each (--json: the CloudEvent).

    PATTERNS select event types, e.g. 'device.*' or 'access.#' (default: every event).
    Only events published while tail runs are shown; use a subscriber to miss none.
    """
    from subscribers.describe import describe_event
    from subscribers.tail import EventTail

    ctx = context(obj)
    try:
        watcher = EventTail.from_settings(
            ctx.settings, patterns or ("#",), organization=organization
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="PATTERNS") from exc
    # SIGTERM ends the loop like Ctrl-C does, so the throw-away queue is always deleted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    shown = 0
    with watcher:
        click.echo(f"watching {' '.join(watcher.patterns)} (Ctrl-C to stop)", err=True)
        for event in watcher.events(idle_timeout_s=idle_timeout_s):
            if as_json:
                click.echo(json.dumps(event.to_wire(), ensure_ascii=False))
            else:
                click.echo(describe_event(event))
            shown += 1
            if count is not None and shown >= count:
                break


@events.command()
@click.argument("name")
@click.option("--replay", is_flag=True, help="Move them back to the subscriber's queue.")
@click.pass_obj
def parked(obj: Any, name: str, replay: bool) -> None:
    """Count the events subscriber NAME parked (its handler kept failing), or replay them."""
    from subscribers.subscriber import Subscriber

    ctx = context(obj)

    def nothing(_: Any) -> None:
        pass

    try:
        subscriber = Subscriber.from_settings(ctx.settings, name, ["#"], nothing)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from exc
    with subscriber:
        if replay:
            click.echo(
                f"{subscriber.replay_parked()} event(s) moved back to {subscriber.queue_name}"
            )
        else:
            click.echo(f"{subscriber.parked()} event(s) parked in {subscriber.parked_queue_name}")
