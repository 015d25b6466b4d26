"""``custody onboard FILE``: publish a file of assignments in batches, with progress, and
report what happened. Running it again on the same file resumes: batches already applied
are answered from their stored results, never applied twice."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cli.output import emit_json
from models import constants as c


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["csv", "jsonl"]),
    default=None,
    help="File format (default: from the suffix, else from the first character).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, c.MAX_BULK_ITEMS),
    default=c.MAX_BULK_ITEMS,
    show_default=True,
    help="Items per custody.assign_devices command.",
)
@click.option(
    "--auto-create/--no-auto-create",
    default=None,
    help="Create unknown devices, for rows that do not say "
    "(default: exactly when the row names a deviceType).",
)
@click.option(
    "--wait/--no-wait",
    default=False,
    show_default=True,
    help="Wait for every batch's answer and print the final report.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=120.0,
    show_default=True,
    help="Seconds to wait for one batch's answer (with --wait).",
)
@click.option("--dry-run", is_flag=True, help="Check every row and count batches; publish nothing.")
@click.option(
    "--max-batches",
    type=click.IntRange(min=1),
    default=None,
    help="Publish at most this many batches, then stop (run again to go on).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: when stderr is a terminal).",
)
@click.option(
    "--organization",
    "-o",
    default=None,
    help="Organization to act as (default: CUSTODY_ORGANIZATION, else 'local').",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def onboard(
    obj: Any,
    file: Path,
    file_format: str | None,
    batch_size: int,
    auto_create: bool | None,
    wait: bool,
    timeout_s: float,
    dry_run: bool,
    max_batches: int | None,
    progress: bool | None,
    organization: str | None,
    as_json: bool,
) -> None:
    """Assign the devices listed in FILE, in batches of custody.assign_devices.

    CSV with the header deviceIdentifier,customerEmails,deviceType (e-mail addresses
    separated by ';'; an optional autoCreateDevice column), or JSON Lines with one item per
    line as on the wire. Rows that fail the checks are reported with their line numbers and
    not published. Exit code 1 when any row was invalid, skipped or failed.
    """
    from tqdm import tqdm

    from cli.main import Context
    from producers.client import Client
    from producers.onboarding import FileFacts
    from producers.onboarding import onboard as run
    from producers.rows import OnboardingError

    ctx = obj if isinstance(obj, Context) else Context()
    show = sys.stderr.isatty() if progress is None else progress
    bar: Any = None

    def start(facts: FileFacts) -> None:
        nonlocal bar
        bar = tqdm(
            total=facts.lines,
            unit=" rows",
            unit_scale=True,
            desc="dry run" if dry_run else "onboarding",
            disable=not show,
            file=sys.stderr,
            smoothing=0.1,
        )

    def rows(count: int) -> None:
        if bar is not None:
            bar.update(count)

    client = None if dry_run else Client.from_settings(ctx.settings, organization=organization)
    try:
        report = run(
            file,
            client,
            file_format=file_format,
            batch_size=batch_size,
            auto_create=auto_create,
            wait=wait,
            timeout_s=timeout_s,
            max_batches=max_batches,
            on_start=start,
            on_rows=rows,
        )
    except OnboardingError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if bar is not None:
            bar.close()
        if client is not None:
            client.close()
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(describe(report))
    if not report.ok:
        sys.exit(1)


def describe(report: Any) -> str:
    """The report, for a person."""
    verb = "checked" if report.dry_run else "published"
    lines = [
        f"{report.file}: {report.rows:,} row(s) read, {report.invalid:,} invalid (not published), "
        f"{report.items:,} item(s) {verb} in {report.batches:,} batch(es) "
        f"in {report.elapsed_s:.1f}s"
    ]
    if report.waited:
        lines.append(
            f"  assigned {report.assigned:,}, already assigned {report.already_assigned:,}, "
            f"skipped {report.skipped:,}, failed {report.failed:,}"
        )
        if report.replayed_batches:
            lines.append(
                f"  {report.replayed_batches:,} batch(es) were already applied by an earlier "
                "run: answered from their stored results, nothing applied twice"
            )
    elif report.batches and not report.dry_run:
        lines.append(
            f"  requestIds {report.first_request_id} … {report.last_request_id}; "
            "run with --wait for the results, or: custody status REQUEST_ID"
        )
    if not report.complete:
        lines.append("  stopped early (--max-batches): run the same command again to go on")
    for problem in report.problems:
        lines.append(
            f"  line {problem.line}: {problem.status} {problem.error_code}: "
            + "; ".join(problem.messages)
        )
    if report.problems_not_listed:
        lines.append(f"  … and {report.problems_not_listed:,} more problem row(s)")
    return "\n".join(lines)
