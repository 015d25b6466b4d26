"""``custody dead-letters`` on the embedded default: list, show, replay, and clear errors for
bad input. (On a real worker: tests/e2e/test_reliability.py.)"""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from kombu import Connection

from cli.main import cli
from models.settings import Settings
from tasks.dead_letters import BODY_COMMAND, BODY_MESSAGE, bury
from tests.helpers import assign_body
from worker.runtime import Runtime


@pytest.fixture
def embedded(home):
    # A queue of its own: kombu's filesystem transport remembers declarations per process.
    queue = f"custody.test.{uuid.uuid4().hex}"
    settings = Settings(home=home, database_url=None, broker_url=None, commands_queue=queue)
    runtime = Runtime(settings)
    runtime.prepare_embedded()
    yield settings, runtime
    runtime.close()


def custody(settings: Settings, *args: str):
    env = {
        "CUSTODY_HOME": str(settings.home),
        "CUSTODY_DATABASE_URL": "",
        "CUSTODY_BROKER_URL": "",
        "CUSTODY_COMMANDS_QUEUE": settings.commands_queue,
    }
    return CliRunner().invoke(cli, list(args), env=env)


def queued(settings: Settings) -> int:
    with Connection(
        settings.resolved_broker_url, transport_options=settings.broker_transport_options()
    ) as conn:
        return conn.default_channel.queue_declare(settings.commands_queue).message_count


def test_a_dead_letter_is_listed_shown_and_replayed_once_marked(embedded):
    settings, runtime = embedded
    # Given a command whose retries ran out, and an undecodable message
    command = assign_body("local", "SN-1", ["a@example.com"])
    kept = bury(
        runtime.uow,
        body=json.dumps(command),
        reason="transient fault outlived 8 retries: database unavailable",
        message_id="m-1",
        task="custody.assign_device",
        headers={"body_format": BODY_COMMAND},
        attempts=9,
    )
    garbage = bury(
        runtime.uow,
        body="{not json",
        reason="body is not JSON",
        message_id="m-2",
        task="custody.assign_device",
        headers={"body_format": BODY_MESSAGE},
        attempts=1,
    )
    # When an operator lists and shows them
    listed = custody(settings, "dead-letters", "list")
    as_json = json.loads(custody(settings, "dead-letters", "list", "--json").output)
    shown = json.loads(custody(settings, "dead-letters", "show", str(kept), "--json").output)
    # Then both are there, newest first, with everything kept
    assert listed.exit_code == 0 and "transient fault outlived 8 retries" in listed.output
    assert [d["id"] for d in as_json] == [garbage, kept]
    assert json.loads(shown["body"]) == command and shown["attempts"] == 9
    assert "body:\n{not json" in custody(settings, "dead-letters", "show", str(garbage)).output

    # When both are replayed with --all
    replayed = custody(settings, "dead-letters", "replay", "--all")
    # Then the command is published once more, the garbage is refused with its reason
    assert replayed.exit_code == 0, replayed.output
    assert f"replayed #{kept}: custody.assign_device, requestId {command['requestId']}" in (
        replayed.output
    )
    assert f"dead letter #{garbage} cannot be replayed: its body is not JSON" in replayed.output
    assert "1 replayed, 1 cannot be replayed" in replayed.output
    assert queued(settings) == 1
    # And only the garbage still waits; --all shows when the other was replayed
    waiting = json.loads(custody(settings, "dead-letters", "list", "--json").output)
    everything = json.loads(custody(settings, "dead-letters", "list", "--all", "--json").output)
    assert [d["id"] for d in waiting] == [garbage]
    assert next(d for d in everything if d["id"] == kept)["replayedAt"] is not None


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "12345"], 1, "no dead letter with id 12345"),
        (["show", "abc"], 2, "'abc' is not a valid integer"),
        (["replay", "12345"], 1, "no dead letter with id 12345"),
        (["replay"], 2, "name one or more dead letter IDs, or give --all (not both)"),
        (["replay", "1", "--all"], 2, "name one or more dead letter IDs, or give --all"),
        (["list", "--limit", "0"], 2, "0 is not in the range"),
    ],
)
def test_bad_input_gets_a_clear_error_and_no_traceback(embedded, args, code, message):
    settings, _ = embedded
    result = custody(settings, "dead-letters", *args)
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_the_fault_suite_refuses_a_run_of_no_commands(capsys):
    from faults.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["--commands", "0"])
    assert exited.value.code == 2
    assert "--commands must be at least 1" in capsys.readouterr().err
