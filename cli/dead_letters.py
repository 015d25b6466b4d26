"""``custody dead-letters list | show ID | replay ID… [--all]``: what the workers could not
process, and sending it again. A replay republishes the original command; its requestId
makes that safe (a command already applied answers its stored result and changes nothing).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from cli.output import emit_json
from models.ports import StoredDeadLetter
from models.settings import Settings

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

PREVIEW_CHARS = 60


class Context:
    """Settings read once per command, at the edge; the runtime built from them."""

    def __init__(self) -> None:
        self.settings = Settings()

    def runtime(self) -> Any:
        from worker.runtime import Runtime

        runtime = Runtime(self.settings)
        if self.settings.resolved_database_url.startswith("sqlite"):
            runtime.prepare_embedded()
        return runtime


pass_ctx = click.make_pass_decorator(Context, ensure=True)


@click.group("dead-letters")
def dead_letters() -> None:
    """Messages the workers could not process: list, show, replay."""


@dead_letters.command("list")
@click.option("--all", "include_replayed", is_flag=True, help="Include replayed dead letters.")
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="At most."
)
@json_option
@pass_ctx
def list_dead_letters(ctx: Context, include_replayed: bool, limit: int, as_json: bool) -> None:
    """The newest dead letters first (not yet replayed, unless --all)."""
    with ctx.runtime().uow() as uow:
        found = uow.dead_letters.list(include_replayed=include_replayed, limit=limit)
    if as_json:
        emit_json([_summary(d) for d in found])
        return
    if not found:
        click.echo("no dead letters" + ("" if include_replayed else " waiting for replay"))
        return
    click.echo(f"{'id':>6}  {'when (UTC)':<19}  {'task':<24} {'tries':>5}  reason")
    for dead in found:
        replayed = "  [replayed]" if dead.replayed_at else ""
        click.echo(
            f"{dead.id:>6}  {dead.created_at:%Y-%m-%d %H:%M:%S}  {dead.task or '-':<24.24} "
            f"{dead.attempts:>5}  {_one_line(dead.reason)}{replayed}"
        )


@dead_letters.command("show")
@click.argument("dead_letter_id", metavar="ID", type=int)
@json_option
@pass_ctx
def show(ctx: Context, dead_letter_id: int, as_json: bool) -> None:
    """Everything kept of dead letter ID: reason, raw body, headers."""
    dead = _load(ctx, dead_letter_id)
    if as_json:
        emit_json({**_summary(dead), "body": dead.body, "headers": dead.headers})
        return
    for label, value in _summary(dead).items():
        click.echo(f"{label + ':':<13} {value if value is not None else '-'}")
    click.echo(f"{'headers:':<13} {dead.headers}")
    click.echo("body:")
    click.echo(dead.body)


@dead_letters.command("replay")
@click.argument("dead_letter_ids", metavar="[ID]...", nargs=-1, type=int)
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter not replayed yet.")
@json_option
@pass_ctx
def replay(ctx: Context, dead_letter_ids: tuple[int, ...], replay_all: bool, as_json: bool) -> None:
    """Publish the command of each dead letter ID again and mark it replayed.

    A message that is not one command (undecodable, wrong shape, unknown task) cannot be
    replayed and says why. Replaying twice is safe: the requestId applies it once."""
    from producers.client import Client
    from tasks.dead_letters import NotReplayable, replay_of
    from tasks.registry import COMMANDS

    if bool(dead_letter_ids) == replay_all:
        raise click.UsageError("name one or more dead letter IDs, or give --all (not both)")
    runtime = ctx.runtime()
    with runtime.uow() as uow:
        if replay_all:
            chosen = list(reversed(uow.dead_letters.list(limit=1_000_000)))
        else:
            chosen = [_load(ctx, i, uow=uow) for i in dead_letter_ids]
    done: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    with Client.from_settings(ctx.settings) as client:
        for dead in chosen:
            try:
                again = replay_of(dead, known_tasks=COMMANDS)
            except NotReplayable as exc:
                refused.append({"id": dead.id, "reason": str(exc)})
                continue
            try:
                command = _signed_again(runtime, again.command)
            except NotReplayable as exc:
                refused.append({"id": dead.id, "reason": f"dead letter #{dead.id}: {exc}"})
                continue
            receipt = client.publish_raw(
                again.task, command, message_id=again.message_id, signed=False
            )
            with runtime.uow() as uow:
                uow.dead_letters.mark_replayed(dead.id)
                uow.commit()
            done.append({"id": dead.id, "task": again.task, "requestId": receipt.request_id})
    if as_json:
        emit_json({"replayed": done, "refused": refused})
    else:
        for item in done:
            click.echo(f"replayed #{item['id']}: {item['task']}, requestId {item['requestId']}")
        for item in refused:
            click.echo(f"error: {item['reason']}", err=True)
        if replay_all:
            click.echo(f"{len(done)} replayed, {len(refused)} cannot be replayed")
    if refused and not replay_all:
        sys.exit(1)


def _signed_again(runtime: Any, command: Any) -> Any:
    """The command signed anew with a key of its own organization (stored copies keep no
    signature value); unsigned where signatures are not required and no key is at hand."""
    from models.errors import Misconfigured
    from models.signing import sign
    from tasks.dead_letters import NotReplayable
    from tasks.keys import replay_key

    if not isinstance(command, dict) or not isinstance(command.get("organizationId"), str):
        return command  # the worker answers it with a clear 400, as it did the first time
    unsigned = {k: v for k, v in command.items() if k != "signature"}
    organization = command["organizationId"]
    try:
        master_key = runtime.master_key
    except Misconfigured:
        master_key = None
    key = None
    if master_key is not None:
        with runtime.uow() as uow:
            key = replay_key(uow, master_key, organization)
    if key is not None:
        return sign(unsigned, key)
    if runtime.settings.signatures_required:
        raise NotReplayable(
            f"organization {organization!r} has no active signing key to sign the replay with"
            if master_key is not None
            else "no master key (CUSTODY_MASTER_KEY) to sign the replay with"
        )
    return unsigned


def _load(ctx: Context, dead_letter_id: int, *, uow: Any = None) -> StoredDeadLetter:
    if uow is None:
        with ctx.runtime().uow() as fresh:
            dead = fresh.dead_letters.get(dead_letter_id)
    else:
        dead = uow.dead_letters.get(dead_letter_id)
    if dead is None:
        raise click.ClickException(f"no dead letter with id {dead_letter_id}")
    return dead


def _summary(dead: StoredDeadLetter) -> dict[str, Any]:
    return {
        "id": dead.id,
        "createdAt": dead.created_at.isoformat(),
        "task": dead.task,
        "messageId": dead.message_id,
        "attempts": dead.attempts,
        "reason": dead.reason,
        "replayedAt": dead.replayed_at.isoformat() if dead.replayed_at else None,
        "bodyPreview": _one_line(dead.body),
    }


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"
