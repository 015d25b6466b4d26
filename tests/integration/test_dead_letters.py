"""The dead-letter store on every backend: kept whole, listed newest first, marked replayed;
and what a replay of each kind of dead letter sends again (or why it cannot)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest

from models.constants import MAX_MESSAGE_BYTES
from models.ports import RejectionRecord, StoredDeadLetter
from tasks.dead_letters import BODY_COMMAND, BODY_MESSAGE, NotReplayable, bury, replay_of
from tasks.registry import COMMANDS
from tests.helpers import assign_body


def bury_one(backend, **overrides) -> int:
    fields = {
        "body": json.dumps({"requestId": "r"}),
        "reason": "transient fault outlived 8 retries",
        "message_id": str(uuid.uuid4()),
        "task": "custody.assign_device",
        "headers": {"body_format": BODY_COMMAND, "retries": 8},
        "attempts": 9,
        **overrides,
    }
    return bury(backend.uow, **fields)


def test_a_dead_letter_is_kept_whole_and_can_be_read_back(backend):
    # Given a message that could not be processed
    raw = '{"not": "a call", "emoji": "é"}'
    dead_letter_id = bury_one(backend, body=raw, headers={"body_format": BODY_MESSAGE, "x": (1,)})
    # When it is read back
    with backend.uow() as uow:
        dead = uow.dead_letters.get(dead_letter_id)
    # Then body, headers, reason, attempts and time are all there
    assert dead is not None and dead.body == raw
    assert dead.headers == {"body_format": BODY_MESSAGE, "x": [1]}
    assert dead.reason.startswith("transient fault") and dead.attempts == 9
    assert dead.created_at.tzinfo is not None and dead.replayed_at is None


def test_a_dead_letter_and_its_500_answer_are_written_together(backend):
    org, request_id = backend.new_org(), f"r-{uuid.uuid4().hex}"
    rejection = RejectionRecord(
        message_id="m",
        organization_id=org,
        request_id=request_id,
        task="custody.assign_device",
        status_code=500,
        result={"success": False, "statusCode": 500, "errorCode": "INTERNAL"},
        body="{}",
    )
    bury_one(backend, rejection=rejection)
    assert backend.state(org).rejections == [rejection.result]


def test_listing_shows_the_newest_first_and_hides_replayed_ones_unless_asked(backend):
    first, second = bury_one(backend), bury_one(backend)
    with backend.uow() as uow:
        assert uow.dead_letters.mark_replayed(first) is True
        assert uow.dead_letters.mark_replayed(10**9) is False
        uow.commit()
    with backend.uow() as uow:
        waiting = [d.id for d in uow.dead_letters.list()]
        everything = [d.id for d in uow.dead_letters.list(include_replayed=True)]
        replayed = uow.dead_letters.get(first)
    assert second in waiting and first not in waiting
    assert everything.index(second) < everything.index(first)
    assert replayed is not None and replayed.replayed_at is not None
    with backend.uow() as uow:
        assert len(uow.dead_letters.list(include_replayed=True, limit=1)) == 1


def stored(body: str, *, task: str | None = "custody.assign_device", **headers) -> StoredDeadLetter:
    return StoredDeadLetter(
        message_id="m-1",
        task=task,
        reason="r",
        body=body,
        headers=headers,
        attempts=1,
        id=7,
        created_at=datetime.now(UTC),
        replayed_at=None,
    )


def test_a_command_whose_retries_ran_out_replays_as_that_command():
    command = assign_body("org", "SN-1", ["a@example.com"])
    again = replay_of(stored(json.dumps(command), body_format=BODY_COMMAND), known_tasks=COMMANDS)
    assert (again.task, again.command, again.message_id) == (
        "custody.assign_device",
        command,
        "m-1",
    )


def test_a_task_call_kept_as_a_raw_message_replays_its_one_command():
    command = assign_body("org", "SN-1", ["a@example.com"])
    body = json.dumps([[command], {}, {"callbacks": None}])
    again = replay_of(stored(body, body_format=BODY_MESSAGE), known_tasks=COMMANDS)
    assert again.command == command
    # Dead letters written before the format was named are recognised by their headers
    assert replay_of(stored(body, headers={"task": "x"}), known_tasks=COMMANDS).command == command


@pytest.mark.parametrize(
    ("dead", "why"),
    [
        (stored("{not json", body_format=BODY_MESSAGE), "not JSON (an undecodable message)"),
        (
            stored("base64:" + base64.b64encode(b"\xff").decode(), body_format=BODY_MESSAGE),
            "not JSON",
        ),
        (stored('[[{"a": 1}, {"b": 2}], {}, {}]', body_format=BODY_MESSAGE), "wrong shape"),
        (stored('{"a": 1}', body_format=BODY_MESSAGE), "wrong shape"),
        (stored("[[{}], {}, {}]", task="custody.no_such"), "'custody.no_such' is not a command"),
        (stored("[[{}], {}, {}]", task=None), "None is not a command"),
        (stored("x" * (MAX_MESSAGE_BYTES + 1), body_format=BODY_MESSAGE), "over 1048576 bytes"),
    ],
)
def test_a_dead_letter_that_is_not_one_command_cannot_be_replayed_and_says_why(dead, why):
    with pytest.raises(NotReplayable) as caught:
        replay_of(dead, known_tasks=COMMANDS)
    assert "dead letter #7 cannot be replayed" in str(caught.value)
    assert why in str(caught.value)
