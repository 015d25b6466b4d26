"""The worker's envelope check: what goes to the dead-letter store instead of a task."""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from kombu import compression
from kombu.message import Message as KombuMessage

from models.constants import MAX_MESSAGE_BYTES
from producers.envelope import task_message
from worker.consumer import (
    MAX_KEPT_OVERSIZED_BYTES,
    body_text,
    inspect_message,
    kept_body,
    refuse_compressed_messages,
)


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


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"id": "m" * 256}, "'id' header: a text of 1 to 255"),
        ({"id": ""}, "'id' header: a text of 1 to 255"),
        ({"id": "m\x00"}, "'id' header: a text of 1 to 255"),
        ({"compression": "application/x-gzip"}, "compressed messages are not accepted"),
        ({"task": "custody." + "x" * 10_000}, "unknown task"),
    ],
)
def test_headers_no_store_can_keep_are_refused_with_a_reason(headers, reason):
    message = good()
    message.headers = {**message.headers, **headers}
    problem = inspect_message(message)
    assert problem is not None and reason in problem
    assert len(problem) < 1_000  # a reason never carries the sender's megabytes


def test_a_body_nested_beyond_what_the_decoder_can_read_is_refused_not_raised():
    message = Message(body=b"[" * 200_000 + b"]" * 200_000, headers=good().headers)
    problem = inspect_message(message)
    assert problem is not None and "nested too deeply" in problem


def test_text_with_nul_is_kept_as_base64_since_text_columns_refuse_it():
    assert body_text(b'{"a": "\x00"}') == "base64:" + base64.b64encode(b'{"a": "\x00"}').decode()


def test_an_oversized_body_is_kept_as_its_start_its_size_and_its_digest():
    body = b'[[{"signature": {"keyId": "k", "value": "' + b"a" * 64 + b'"}}], {}, {}]'
    big = body + b" " * (MAX_MESSAGE_BYTES + 10)
    kept, notes = kept_body(big)
    assert len(kept) <= MAX_KEPT_OVERSIZED_BYTES
    assert notes == {
        "truncated": True,
        "size_bytes": len(big),
        "sha256": hashlib.sha256(big).hexdigest(),
    }
    assert "a" * 64 not in kept and '"value": "redacted"' in kept


def test_a_body_is_kept_whole_with_its_signature_values_redacted():
    kept, notes = kept_body(b'{"signature":{"keyId":"k","value":"' + b"b" * 64 + b'"}}')
    assert kept == '{"signature":{"keyId":"k","value":"redacted"}}' and notes == {}


def test_a_worker_refuses_to_unpack_compressed_messages():
    # Given this process set up as a worker
    decoders = dict(compression._decoders)
    refuse_compressed_messages()
    try:
        # When a message arrives that says it is compressed (a bomb: 64 MiB of zeros)
        bomb = zlib.compress(b"0" * 64 * 1024 * 1024)
        message = KombuMessage(
            body=bomb,
            headers={"compression": "application/x-gzip"},
            content_type="application/json",
        )
        # Then kombu records an error instead of unpacking it, and the body stays small
        assert message.errors and len(message.body) == len(bomb)
    finally:
        compression._decoders.update(decoders)


def test_a_body_in_another_unicode_encoding_is_refused_as_the_worker_could_not_read_it():
    body = json.dumps([[{"a": 1}], {}, {}]).encode("utf-16")
    problem = inspect_message(Message(body=body, headers=good().headers))
    assert problem is not None and "not JSON" in problem
