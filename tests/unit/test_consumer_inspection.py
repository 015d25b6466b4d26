"""The worker's envelope check: what goes to the dead-letter store instead of a task."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from models.constants import MAX_MESSAGE_BYTES
from producers.envelope import task_message
from worker.consumer import body_text, inspect_message


@dataclass
class Message:
    """A kombu-like message: just the attributes the check reads."""

    body: Any
    headers: Any = field(default_factory=dict)
    content_type: str = "application/json"
    properties: dict[str, Any] = field(default_factory=dict)


def good(command: Any = None, task: str = "custody.assign_device") -> Message:
    body, headers = task_message(
        task, command if command is not None else {"a": 1}, message_id="m1"
    )
    return Message(body=json.dumps(body).encode(), headers=headers)


def test_a_well_formed_command_message_passes():
    assert inspect_message(good()) is None


def test_an_array_command_passes_the_envelope_check_and_is_left_to_validation():
    assert inspect_message(good(["x"])) is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (Message(body=b"{not json", headers=good().headers), "not JSON"),
        (Message(body=b"\xff\xfe", headers=good().headers), "not JSON"),
        (Message(body=good().body, headers={}), "no 'task' header"),
        (Message(body=good().body, headers=None), "no 'task' header"),
        (good(task="custody.nope"), "unknown task"),
        (
            Message(
                body=good().body,
                headers=good().headers,
                content_type="application/x-python-serialize",
            ),
            "content type",
        ),
        (Message(body=b'{"a": 1}', headers=good().headers), "wrong shape"),
        (Message(body=b"[[1, 2], {}, {}]", headers=good().headers), "exactly one positional"),
        (Message(body=b'[[1], {"x": 1}, {}]', headers=good().headers), "exactly one positional"),
        (Message(body=b"x" * (MAX_MESSAGE_BYTES + 1), headers=good().headers), "too large"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(message, reason):
    problem = inspect_message(message)
    assert problem is not None and reason in problem


def test_bodies_are_kept_losslessly():
    assert body_text(b'{"a": "\xc3\xa9"}') == '{"a": "é"}'
    assert body_text(b"\xff\x00") == "base64:/wA="
