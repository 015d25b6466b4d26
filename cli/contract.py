"""``custody contract``: write (or check) the wire contract files."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where schemas/ and asyncapi.json live.",
)
@click.option("--check", is_flag=True, help="Fail if any file differs from the models.")
def contract(folder: Path, check: bool) -> None:
    """Write the JSON Schemas of every command, result and event, and asyncapi.json."""
    from models.contract import drifted, write

    stale = drifted(folder) if check else write(folder)
    if check and stale:
        raise click.ClickException(
            f"out of date: {', '.join(stale)}; run `custody contract` and commit the files"
        )
    click.echo(f"{len(stale)} file(s) written" if stale else "the contract files are up to date")
