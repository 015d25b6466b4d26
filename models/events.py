"""Events as they travel on the wire: CloudEvents 1.0, structured JSON mode.

An event is a fact ("device.assigned"). Its ``id`` derives from the command that caused it,
so it is stable across every redelivery and subscribers can deduplicate on it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter

from models import constants as c
from models.commands import WireModel
from models.domain import DeviceAssigned, DeviceUnassigned, DomainEvent, OwnerRef

_EVENT_NAMESPACE = uuid.UUID("6f1c4a52-7d0e-4a8e-9c55-2a6a2f0f6a10")
_NAMESPACE_BYTES = _EVENT_NAMESPACE.bytes
_TIME = TypeAdapter(datetime)


class Owner(WireModel):
    customer_id: int
    email: str


class DeviceAssignedData(WireModel):
    device_id: int
    device_identifier: str
    device_created: bool
    owners_added: list[Owner]
    owners: list[Owner]


class DeviceUnassignedData(WireModel):
    device_id: int
    device_identifier: str
    owners_removed: list[Owner]
    owners: list[Owner]  # the owners that remain


class CloudEvent(BaseModel):
    """The envelope; attribute names are CloudEvents' own (lowercase, no camelCase)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str = c.EVENT_SOURCE
    type: str
    subject: str
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    correlationid: str
    organizationid: str
    data: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _owners(refs: list[OwnerRef]) -> list[Owner]:
    return [Owner(customer_id=r.customer_id, email=r.email) for r in refs]


def _device_assigned(event: DeviceAssigned) -> WireModel:
    return DeviceAssignedData(
        device_id=event.device_id,
        device_identifier=event.device_identifier,
        device_created=event.device_created,
        owners_added=_owners(event.owners_added),
        owners=_owners(event.owners),
    )


def _device_unassigned(event: DeviceUnassigned) -> WireModel:
    return DeviceUnassignedData(
        device_id=event.device_id,
        device_identifier=event.device_identifier,
        owners_removed=_owners(event.owners_removed),
        owners=_owners(event.owners),
    )


def _device_assigned_wire(event: DeviceAssigned) -> dict[str, Any]:
    """``_device_assigned(event).to_wire()``, built directly (a test holds them equal)."""
    return {
        "deviceId": event.device_id,
        "deviceIdentifier": event.device_identifier,
        "deviceCreated": event.device_created,
        "ownersAdded": [
            {"customerId": r.customer_id, "email": r.email} for r in event.owners_added
        ],
        "owners": [{"customerId": r.customer_id, "email": r.email} for r in event.owners],
    }


# One converter per domain event: the wire shape of its ``data``.
_DATA: dict[type[DomainEvent], Callable[[Any], WireModel]] = {
    DeviceAssigned: _device_assigned,
    DeviceUnassigned: _device_unassigned,
}

# The pydantic model of each event type's ``data``: the source of its JSON Schema.
DATA_MODELS: dict[str, type[WireModel]] = {
    c.DEVICE_ASSIGNED: DeviceAssignedData,
    c.DEVICE_UNASSIGNED: DeviceUnassignedData,
}
# Optional shortcuts straight to the wire form of ``data``, for events emitted by the
# thousand (bulk commands); each must equal its converter's ``to_wire()``.
_DATA_WIRE: dict[type[DomainEvent], Callable[[Any], dict[str, Any]]] = {
    DeviceAssigned: _device_assigned_wire,
}


def register_event_data(
    kind: type[DomainEvent],
    convert: Callable[[Any], WireModel],
    *,
    model: type[WireModel] | None = None,
) -> None:
    """Declare the wire shape of a domain event's ``data`` (``model`` for its JSON Schema)."""
    _DATA[kind] = convert
    if model is not None:
        DATA_MODELS[kind.type] = model


def _register_every_event() -> None:
    """Import the modules that declare event data beside their feature (they import this
    one, so they cannot be imported at the top of it)."""
    import models.access_wire  # noqa: F401


def registered_event_types() -> list[str]:
    """Every event type a handler can emit."""
    _register_every_event()
    return sorted(kind.type for kind in _DATA)


def event_id(organization_id: str, request_id: str, sequence: int) -> str:
    """Deterministic: the same command always yields the same event ids.

    ``uuid.uuid5(namespace, f"{organization_id}\\0{request_id}\\0{sequence}")``, computed
    without building UUID objects (a batch names a thousand events)."""
    name = f"{organization_id}\x00{request_id}\x00{sequence}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def to_cloud_event(
    event: DomainEvent, *, organization_id: str, request_id: str, sequence: int, time: datetime
) -> CloudEvent:
    data = _DATA[type(event)](event)
    return CloudEvent(
        id=event_id(organization_id, request_id, sequence),
        type=event.type,
        subject=event.device_identifier,
        time=time,
        correlationid=request_id,
        organizationid=organization_id,
        data=data.to_wire(),
    )


JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def event_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of the envelope (``cloudevent``) and of each event type's ``data``,
    keyed by file stem; what ``custody contract`` writes under ``schemas/events``."""
    _register_every_event()
    schemas: dict[str, dict[str, Any]] = {
        "cloudevent": {
            "$schema": JSON_SCHEMA_DIALECT,
            **CloudEvent.model_json_schema(mode="serialization"),
            "title": "custody CloudEvent 1.0, structured JSON mode",
        }
    }
    for event_type, model in sorted(DATA_MODELS.items()):
        schemas[f"{event_type}.data"] = {
            "$schema": JSON_SCHEMA_DIALECT,
            **model.model_json_schema(by_alias=True, mode="serialization"),
            "title": f"data of {event_type}",
        }
    return schemas


def wire_time(time: datetime) -> str:
    """An instant as CloudEvent JSON carries it (the same text ``CloudEvent.to_wire`` gives)."""
    return str(_TIME.dump_python(time, mode="json"))


def cloud_event_wire(
    event: DomainEvent, *, organization_id: str, request_id: str, sequence: int, time_text: str
) -> dict[str, Any]:
    """``to_cloud_event(…).to_wire()`` without building the models: the outbox payload."""
    fast = _DATA_WIRE.get(type(event))
    data = fast(event) if fast is not None else _DATA[type(event)](event).to_wire()
    return {
        "specversion": "1.0",
        "id": event_id(organization_id, request_id, sequence),
        "source": c.EVENT_SOURCE,
        "type": event.type,
        "subject": event.device_identifier,
        "time": time_text,
        "datacontenttype": "application/json",
        "correlationid": request_id,
        "organizationid": organization_id,
        "data": data,
    }
