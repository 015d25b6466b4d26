"""The commands a fault run sends, and the publisher that sends them through broker outages.

Every logical message has its own message id and an expected kind of outcome. The mix
overlaps on purpose: few devices and few e-mail addresses shared by many commands (conflicts
on the same rows, on several workers at once), exact duplicates (the same message id
published twice), requestIds reused with another body, invalid commands, an unknown
organization, and messages that are not commands at all.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from kombu import Connection

from models.canonical import command_hash
from models.signing import SigningKey, sign
from models.topology import commands_queue
from producers.envelope import task_message

ASSIGN = "custody.assign_device"

# Kinds of message and the outcome each must end in.
VALID = "valid"  # a valid assignment: 200 (or 409 if a reuse of its requestId won)
NOT_FOUND = "not-found"  # an unknown device without autoCreateDevice: a recorded 404
INVALID = "invalid"  # a schema violation: a recorded 400
UNKNOWN_ORG = "unknown-org"  # an organization that does not exist: a 401 rejection
REUSE = "reuse"  # another body under an earlier requestId: one of the two wins, the other 409
MALFORMED = "malformed"  # not a command message at all: a dead letter
PROBE = "probe"  # sent right after a fault ends, to time the recovery


@dataclass
class Sent:
    message_id: str
    kind: str
    task: str
    body: Any  # the command (JSON value), or raw bytes for a malformed message
    organization_id: str | None = None
    request_id: str | None = None
    copies: int = 1  # 2: the same message (same id) published twice
    published_at: float | None = None

    @property
    def digest(self) -> str | None:
        if isinstance(self.body, dict):
            return command_hash(self.body)
        return None


def plan(
    *, commands: int, organizations: list[str], seed: int, devices: int, emails: int
) -> list[Sent]:
    """``commands`` logical messages in the order they will be published."""
    rng = random.Random(seed)
    device_names = [f"SN-{n:05d}" for n in range(devices)]
    addresses = [f"user{n:05d}@example.com" for n in range(emails)]
    sent: list[Sent] = []
    assigns: list[Sent] = []

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128)))

    def assign(org: str, *, auto: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "requestId": f"rq-{new_id()}",
            "organizationId": org,
            "deviceIdentifier": rng.choice(device_names) if auto else f"GHOST-{new_id()[:8]}",
            "customerEmails": rng.sample(addresses, rng.randint(1, 3)),
        }
        if auto:
            body |= {"autoCreateDevice": True, "deviceType": "Thermostat"}
        return body

    for _ in range(commands):
        org = rng.choice(organizations)
        roll = rng.random()
        if roll < 0.04:
            body = assign(org, auto=False)
            item = Sent(new_id(), NOT_FOUND, ASSIGN, body, org, body["requestId"])
        elif roll < 0.09:
            body = assign(org)
            body["customerEmails"] = rng.choice(["not-a-list@example.com", [], [42]])
            item = Sent(new_id(), INVALID, ASSIGN, body, org, body["requestId"])
        elif roll < 0.12:
            body = assign("no-such-org")
            item = Sent(new_id(), UNKNOWN_ORG, ASSIGN, body, "no-such-org", body["requestId"])
        elif roll < 0.18 and assigns:
            earlier = rng.choice(assigns)
            body = {**assign(earlier.organization_id or org), "requestId": earlier.request_id}
            item = Sent(new_id(), REUSE, ASSIGN, body, earlier.organization_id, earlier.request_id)
        elif roll < 0.21:
            item = _malformed(rng, new_id())
        else:
            body = assign(org)
            item = Sent(new_id(), VALID, ASSIGN, body, org, body["requestId"])
            item.copies = 2 if rng.random() < 0.06 else 1
            assigns.append(item)
        sent.append(item)
    return sent


def _malformed(rng: random.Random, message_id: str) -> Sent:
    command = {"requestId": "x", "organizationId": "x"}
    task, raw = rng.choice(
        [
            (ASSIGN, b"{this is not json"),
            (ASSIGN, b"\xff\xfe\x00binary"),
            ("custody.no_such_command", json.dumps([[command], {}, {}]).encode()),
            (ASSIGN, json.dumps([[command, command], {}, {}]).encode()),
        ]
    )
    return Sent(message_id, MALFORMED, task, raw)


def probe(organization_id: str, number: int) -> Sent:
    body = {
        "requestId": f"probe-{number}-{uuid.uuid4().hex[:8]}",
        "organizationId": organization_id,
        "deviceIdentifier": f"PROBE-{number}",
        "customerEmails": [f"probe{number}@example.com"],
        "autoCreateDevice": True,
        "deviceType": "Probe",
    }
    return Sent(str(uuid.uuid4()), PROBE, ASSIGN, body, organization_id, body["requestId"])


@dataclass
class Publisher:
    """Publishes on the commands queue; a broker outage only delays a publish: it is tried
    again (same message id) until the broker takes it."""

    broker_url: str
    queue_name: str
    transport_options: dict[str, Any]
    keys: dict[str, SigningKey] = field(default_factory=dict)  # organization → its key
    publish_retries: int = 0
    published: list[Sent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._queue = commands_queue(self.queue_name)
        self._connection = Connection(self.broker_url, transport_options=self.transport_options)

    def send(self, item: Sent, *, copies: int | None = None, deadline_s: float = 300) -> None:
        with self._lock:
            for _ in range(item.copies if copies is None else copies):
                self._publish(item, time.monotonic() + deadline_s)
            item.published_at = time.time()
            self.published.append(item)

    def _publish(self, item: Sent, deadline: float) -> None:
        options: dict[str, Any]
        if isinstance(item.body, bytes):
            body: Any = item.body
            options = {"headers": {"task": item.task, "id": item.message_id}}
            options |= {"content_type": "application/json", "content_encoding": "utf-8"}
        else:
            command = item.body
            key = (
                self.keys.get(command.get("organizationId")) if isinstance(command, dict) else None
            )
            if key is not None:  # commands of unknown organizations go unsigned
                command = sign(command, key)
            body, headers = task_message(item.task, command, message_id=item.message_id)
            options = {"headers": headers, "serializer": "json"}
        while True:
            try:
                self._connection.Producer().publish(
                    body,
                    exchange=self._queue.exchange,
                    routing_key=self._queue.routing_key,
                    declare=[self._queue],
                    delivery_mode=2,
                    retry=True,
                    retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.3},
                    **options,
                )
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                self.publish_retries += 1
                time.sleep(0.5)
                fresh = self._connection.clone()
                self._connection.release()
                self._connection = fresh

    def close(self) -> None:
        self._connection.release()
