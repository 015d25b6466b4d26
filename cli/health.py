"""``custody health``: one line per check; exit code 0 when all pass, 1 otherwise."""

from __future__ import annotations

import sys
from typing import Any

import click

from cli.output import emit_json


@click.command()
@click.option(
    "--max-outbox-lag",
    "max_outbox_lag_s",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds the oldest unsent event may wait before the check fails.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def health(obj: Any, max_outbox_lag_s: float, as_json: bool) -> None:
    """Check the database, schema version, broker, outbox lag and dead letters."""
    from cli.main import Context
    from worker.health import check_all
    from worker.runtime import Runtime

    ctx = obj if isinstance(obj, Context) else Context()
    runtime = Runtime(ctx.settings)
    try:
        checks = check_all(ctx.settings, runtime, max_outbox_lag_s=max_outbox_lag_s)
    finally:
        runtime.close()
    healthy = all(c.ok for c in checks)
    if as_json:
        emit_json(
            {
                "healthy": healthy,
                "checks": {c.name: {"ok": c.ok, "detail": c.detail, **c.figures} for c in checks},
            }
        )
    else:
        for check in checks:
            click.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name:<9} {check.detail}")
    sys.exit(0 if healthy else 1)
