"""Names and limits that are part of the wire contract, each in one place."""

from __future__ import annotations

# Queue that carries every command; the task name inside each message selects the command.
COMMANDS_QUEUE = "custody.commands"
# Topic exchange that carries events; routing key = event type.
EVENTS_EXCHANGE = "custody.events"

# Task names: the command each message carries.
ASSIGN_DEVICE = "custody.assign_device"
UNASSIGN_DEVICE = "custody.unassign_device"
ASSIGN_DEVICES = "custody.assign_devices"
GRANT_ACCESS = "custody.grant_access"
UPDATE_ACCESS = "custody.update_access"
REVOKE_ACCESS = "custody.revoke_access"

# Event types (CloudEvents "type", also the routing key on EVENTS_EXCHANGE).
DEVICE_ASSIGNED = "device.assigned"
DEVICE_UNASSIGNED = "device.unassigned"
ACCESS_GRANTED = "access.granted"
ACCESS_UPDATED = "access.updated"
ACCESS_REVOKED = "access.revoked"

# Queue of one event subscriber: PREFIX + name, bound to EVENTS_EXCHANGE by its patterns.
SUBSCRIBER_QUEUE_PREFIX = "custody.subscriber."
# Suffix of the queue where a subscriber parks events its handler kept failing on.
PARKED_QUEUE_SUFFIX = ".parked"
# Prefix of the throw-away queue of one `custody events tail`.
TAIL_QUEUE_PREFIX = "custody.tail."
# PostgreSQL channel notified in the transaction that writes outbox rows; the relay listens.
OUTBOX_CHANNEL = "custody_outbox"

# CloudEvents "source" of every event custody emits.
EVENT_SOURCE = "urn:custody"

# Organization the embedded default creates and the CLI uses when none is named.
LOCAL_ORGANIZATION = "local"

# Bounds on input: anything larger is rejected with a clear reason, never processed.
MAX_MESSAGE_BYTES = 1_048_576  # one encoded message on the queue
MAX_REQUEST_ID_CHARS = 255
MAX_ORGANIZATION_ID_CHARS = 64
MAX_DEVICE_IDENTIFIER_CHARS = 128
MAX_DEVICE_TYPE_CHARS = 64
MAX_EMAIL_CHARS = 320  # RFC 3696 errata: 64 local + @ + 255 domain
MAX_EMAILS_PER_COMMAND = 100
MAX_BULK_ITEMS = 1_000
