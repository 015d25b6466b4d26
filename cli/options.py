"""Options and context shared by the command modules registered beside ``cli.main``.

Those modules import this one, never ``cli.main`` at import time (which imports them)."""

from __future__ import annotations

from typing import Any

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
organization_option = click.option(
    "--organization",
    "-o",
    default=None,
    help="Organization to act as (default: CUSTODY_ORGANIZATION, else 'local').",
)
request_id_option = click.option(
    "--request-id", default=None, help="Idempotency key of the command (default: generated)."
)


def context(obj: Any) -> Any:
    """The ``cli.main.Context`` of this invocation (made on first use)."""
    from cli.main import Context

    return obj if isinstance(obj, Context) else Context()
