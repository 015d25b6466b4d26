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

# Access grants (SPEC section 3).
MAX_TIME_ZONE_CHARS = 64  # an IANA time zone name (the longest in use has 32)
MAX_DATETIME_CHARS = 64  # an ISO 8601 date, time of day or date-time, as text
MAX_WEEK_DAYS_CHARS = 64  # weekDays given as names ("Monday, Tuesday")
MAX_ACCESS_ID = 2**63 - 1  # accessId is a BIGINT

# Bounds on the shape of a raw command, checked before the schema reads it (models/limits.py).
MAX_JSON_DEPTH = 8  # nesting of objects and arrays; the command object itself is level 1
MAX_JSON_VALUES = 100_000  # values of every kind in one command, all levels together
MAX_JSON_ARRAY_ITEMS = MAX_BULK_ITEMS  # items of any one array
MAX_JSON_OBJECT_KEYS = 64  # keys of any one object
MAX_JSON_KEY_CHARS = 128  # characters of any one object key
MAX_ERROR_MESSAGES = 50  # lines of errorMessages in one rejection; the rest are counted

# Signed commands (SPEC section 8).
SIGNATURE_FIELD = "signature"  # the command field that carries {"keyId", "value"}
MAX_KEY_ID_CHARS = 64  # a signing key's public id
MASTER_KEY_FILE = "master.key"  # under CUSTODY_HOME: the embedded default's master key
LOCAL_KEY_FILE = "local-signing-key.json"  # under CUSTODY_HOME: the local organization's key
