"""Publish a custody command and read its result with nothing but a Redis client.

No Celery, no kombu, no custody import: this is the whole wire contract on Redis, as a
publisher in any language would implement it (see docs/publishing.md).

    python examples/publish_with_redis.py redis://127.0.0.1:6379/0 local SN-1001 alice@example.com
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import uuid

import redis

QUEUE = "custody.commands"


def canonical(command: dict) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8, without "signature"."""
    unsigned = {k: v for k, v in command.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(command: dict, key_id: str, secret: str) -> dict:
    value = hmac.new(secret.encode(), canonical(command), hashlib.sha256).hexdigest()
    return {**command, "signature": {"keyId": key_id, "value": value}}


def envelope(task: str, command: dict, *, message_id: str, reply_to: str | None) -> bytes:
    """A Celery task protocol 2 message as kombu's Redis transport stores it."""
    body = json.dumps(
        [[command], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    )
    properties = {
        "correlation_id": message_id,
        "delivery_mode": 2,
        "delivery_info": {"exchange": QUEUE, "routing_key": QUEUE},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    if reply_to:
        properties["reply_to"] = reply_to
    return json.dumps(
        {
            "body": base64.b64encode(body.encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py",
                "task": task,
                "id": message_id,
                "root_id": message_id,
                "parent_id": None,
                "group": None,
                "retries": 0,
                "eta": None,
                "expires": None,
                "timelimit": [None, None],
            },
            "properties": properties,
        }
    ).encode()


def publish_and_wait(url: str, task: str, command: dict, *, timeout_s: int = 30) -> dict:
    client = redis.Redis.from_url(url)
    message_id = str(uuid.uuid4())
    reply_to = f"custody.reply.{uuid.uuid4().hex}"
    client.lpush(QUEUE, envelope(task, command, message_id=message_id, reply_to=reply_to))
    popped = client.brpop([reply_to], timeout=timeout_s)
    if popped is None:
        raise TimeoutError(f"no reply within {timeout_s}s (is a worker running?)")
    reply = json.loads(popped[1])
    assert reply["properties"]["correlation_id"] == message_id
    return json.loads(base64.b64decode(reply["body"]))


def main() -> None:
    url, organization, device, *emails = sys.argv[1:]
    command = {
        "requestId": str(uuid.uuid4()),
        "organizationId": organization,
        "deviceIdentifier": device,
        "customerEmails": emails,
        "autoCreateDevice": True,
        "deviceType": "Thermostat",
    }
    print(json.dumps(publish_and_wait(url, "custody.assign_device", command), indent=2))


if __name__ == "__main__":
    main()
