"""``Client``: build a command, validate it locally, publish it, optionally wait for its result.

A command that fails validation raises ``Rejected`` here and never reaches the queue.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from kombu import Connection, Consumer, Queue
from pydantic import ValidationError

from models import constants as c
from models.access_commands import GrantAccess, RevokeAccess, UpdateAccess
from models.bulk import AssignDevices, parse_item
from models.commands import AssignDevice, Command, UnassignDevice
from models.errors import Misconfigured, Rejected
from models.settings import Settings
from models.signing import SigningKey, read_key_file, sign
from models.topology import commands_queue
from producers.envelope import new_id, task_message

# A command's JSON must leave room for the task envelope within the broker message limit.
MAX_COMMAND_BYTES = c.MAX_MESSAGE_BYTES - 4_096


@dataclass(frozen=True)
class Receipt:
    """A published command: what to wait for, or to ask ``custody status`` about."""

    request_id: str
    message_id: str
    task: str


@dataclass(frozen=True)
class Reply:
    """The worker's answer to one command."""

    request_id: str
    replayed: bool
    result: dict[str, Any]

    @property
    def success(self) -> bool:
        return bool(self.result.get("success"))


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()  # update_access: leave this field as it is


def new_request_id() -> str:
    return str(uuid.uuid4())


def build(model: type[Command], **fields: Any) -> Command:
    """Validate a command locally; ``Rejected`` (400) with one line per problem if invalid."""
    try:
        return model(**fields)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            loc = [_wire_name(model, p) for p in error["loc"][:1]] + list(error["loc"][1:])
            where = ".".join(str(p) for p in loc) or "command"
            lines.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
        raise Rejected.invalid(*lines) from exc


def _wire_name(model: type[Command], name: Any) -> Any:
    """Name a field as it is spelled on the wire, as the worker's rejections do."""
    field = model.model_fields.get(name) if isinstance(name, str) else None
    return field.alias if field is not None and field.alias else name


def signing_key_from(settings: Settings, organization: str) -> SigningKey | None:
    """The key to sign with: ``CUSTODY_KEY_ID`` + ``CUSTODY_KEY_SECRET`` when set, else, for
    the local organization of the embedded default, the key it keeps under CUSTODY_HOME."""
    if (settings.key_id is None) != (settings.key_secret is None):
        raise Misconfigured("set CUSTODY_KEY_ID and CUSTODY_KEY_SECRET together, or neither")
    if settings.key_id is not None and settings.key_secret is not None:
        return SigningKey(settings.key_id, settings.key_secret.get_secret_value())
    local = read_key_file(settings.home / c.LOCAL_KEY_FILE)
    if local is not None and local.organization_id == organization:
        return local
    return None


class Client:
    """Publishes commands on the commands queue as one organization, signed with
    ``signing_key`` when one is given (required wherever signatures are)."""

    def __init__(
        self,
        broker_url: str,
        *,
        organization: str = c.LOCAL_ORGANIZATION,
        signing_key: SigningKey | None = None,
        transport: str | None = None,
        transport_options: dict[str, Any] | None = None,
        queue: str = c.COMMANDS_QUEUE,
    ) -> None:
        self.organization = organization
        self.signing_key = signing_key
        self._queue = commands_queue(queue)
        self._connection = Connection(
            broker_url, transport=transport, transport_options=transport_options or {}
        )
        self._producer: Any = None
        self._reply_queue: Queue | None = None
        self._replies: defaultdict[str, list[Reply]] = defaultdict(list)
        self._consumer: Consumer | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        organization: str | None = None,
        signing_key: SigningKey | None = None,
    ) -> Client:
        """A client as the settings describe it; it signs with ``signing_key``, else with
        the key the settings name (``signing_key_from``)."""
        settings.prepare_home()
        organization = organization or settings.organization
        return cls(
            settings.resolved_broker_url,
            organization=organization,
            signing_key=signing_key or signing_key_from(settings, organization),
            transport=settings.broker_transport,
            transport_options=settings.broker_transport_options(),
            queue=settings.commands_queue,
        )

    # -- commands -------------------------------------------------------------------------

    def assign_device(
        self,
        device_identifier: str,
        customer_emails: Iterable[str],
        *,
        auto_create_device: bool | None = None,
        device_type: str | None = None,
        request_id: str | None = None,
        wait: bool = False,
        timeout_s: float = 30.0,
    ) -> Receipt | Reply:
        command = build(
            AssignDevice,
            **_given(
                request_id=request_id or new_request_id(),
                organization_id=self.organization,
                device_identifier=device_identifier,
                customer_emails=list(customer_emails),
                auto_create_device=auto_create_device,
                device_type=device_type,
            ),
        )
        return self.send(command, wait=wait, timeout_s=timeout_s)

    def assign_devices(
        self,
        items: Iterable[Mapping[str, Any]],
        *,
        request_id: str | None = None,
        wait: bool = False,
        timeout_s: float = 30.0,
    ) -> Receipt | Reply:
        """Publish up to 1,000 assignments as one ``custody.assign_devices``.

        Items use the wire names (``deviceIdentifier``, ``customerEmails``,
        ``autoCreateDevice``, ``deviceType``). Every item is validated here: one invalid
        item raises ``Rejected`` naming it, and nothing is published.
        """
        listed = [dict(item) if isinstance(item, Mapping) else item for item in items]
        command = build(
            AssignDevices,
            request_id=request_id or new_request_id(),
            organization_id=self.organization,
            items=listed,
        )
        problems = [
            f"items.{n}: {message}"
            for n, raw in enumerate(listed)
            if isinstance(parsed := parse_item(raw), list)
            for message in parsed
        ]
        if problems:
            raise Rejected.invalid(*problems)
        size = len(json.dumps(command.to_wire()).encode())  # ASCII-escaped, as kombu sends it
        if size > MAX_COMMAND_BYTES:
            raise Rejected.invalid(
                f"command too large: {size} bytes of JSON, at most {MAX_COMMAND_BYTES}; "
                "send fewer items per command"
            )
        return self.send(command, wait=wait, timeout_s=timeout_s)

    def grant_access(
        self,
        device_identifier: str,
        user_email: str,
        *,
        granted_by: str,
        access_level: int = 0,
        remote_access_disabled: bool | None = None,
        week_days: int | str | None = None,
        start_date: str | dt.datetime | None = None,
        end_date: str | dt.datetime | None = None,
        day_start_time: str | dt.time | None = None,
        day_end_time: str | dt.time | None = None,
        time_zone: str | None = None,
        request_id: str | None = None,
        wait: bool = False,
        timeout_s: float = 30.0,
    ) -> Receipt | Reply:
        """Grant ``user_email`` access to the device (guest unless ``access_level`` 1)."""
        command = build(
            GrantAccess,
            **_given(
                request_id=request_id or new_request_id(),
                organization_id=self.organization,
                device_identifier=device_identifier,
                granted_by=granted_by,
                user_email=user_email,
                access_level=access_level,
                remote_access_disabled=remote_access_disabled,
                week_days=week_days,
                start_date=start_date,
                end_date=end_date,
                day_start_time=day_start_time,
                day_end_time=day_end_time,
                time_zone=time_zone,
            ),
        )
        return self.send(command, wait=wait, timeout_s=timeout_s)

    def update_access(
        self,
        device_identifier: str,
        access_id: int,
        *,
        updated_by: str,
        access_level: Any = UNCHANGED,
        remote_access_disabled: Any = UNCHANGED,
        week_days: Any = UNCHANGED,
        start_date: Any = UNCHANGED,
        end_date: Any = UNCHANGED,
        day_start_time: Any = UNCHANGED,
        day_end_time: Any = UNCHANGED,
        time_zone: Any = UNCHANGED,
        request_id: str | None = None,
        wait: bool = False,
        timeout_s: float = 30.0,
    ) -> Receipt | Reply:
        """Change an access: a field left ``UNCHANGED`` stays as it is, ``None`` clears it."""
        changes = {
            "access_level": access_level,
            "remote_access_disabled": remote_access_disabled,
            "week_days": week_days,
            "start_date": start_date,
            "end_date": end_date,
            "day_start_time": day_start_time,
            "day_end_time": day_end_time,
            "time_zone": time_zone,
        }
        command = build(
            UpdateAccess,
            request_id=request_id or new_request_id(),
            organization_id=self.organization,
            device_identifier=device_identifier,
            access_id=access_id,
            updated_by=updated_by,
            **{k: v for k, v in changes.items() if v is not UNCHANGED},
        )
        return self.send(command, wait=wait, timeout_s=timeout_s)

    def revoke_access(
        self,
        device_identifier: str,
        access_id: int,
        *,
        revoked_by: str,
        request_id: str | None = None,
        wait: bool = False,
        timeout_s: float = 30.0,
    ) -> Receipt | Reply:
        """End an access (it is kept, marked revoked)."""
        command = build(
            RevokeAccess,
            request_id=request_id or new_request_id(),
            organization_id=self.organization,
            device_identifier=device_identifier,
            access_id=access_id,
            revoked_by=revoked_by,
        )
        return self.send(command, wait=wait, timeout_s=timeout_s)

    def unassign_device(
        self,
        device_identifier: str,
        customer_emails: Iterable[str],
        *,
        request_id: str | None = None,
        wait: bool = False,
        timeout_s: float = 30.0,
    ) -> Receipt | Reply:
        """Remove the owner mappings of ``customer_emails`` from the device."""
        command = build(
            UnassignDevice,
            request_id=request_id or new_request_id(),
            organization_id=self.organization,
            device_identifier=device_identifier,
            customer_emails=list(customer_emails),
        )
        return self.send(command, wait=wait, timeout_s=timeout_s)

    # -- transport ------------------------------------------------------------------------

    def send(
        self, command: Command, *, wait: bool = False, timeout_s: float = 30.0
    ) -> Receipt | Reply:
        receipt = self.publish(command, reply=wait)
        if not wait:
            return receipt
        return self.wait([receipt], timeout_s=timeout_s)[0]

    def publish(self, command: Command, *, reply: bool = False) -> Receipt:
        """Put one command on the queue; with ``reply`` its result comes back to this client."""
        return self.publish_raw(command.task_name, command.to_wire(), reply=reply)

    def publish_raw(
        self,
        task: str,
        command: Any,
        *,
        reply: bool = False,
        message_id: str | None = None,
        signed: bool = True,
    ) -> Receipt:
        """Publish any JSON value as the command of ``task``, unvalidated (tools and tests).

        An object without a ``signature`` is signed when the client has a key, unless
        ``signed`` is False. Reusing ``message_id`` publishes a true duplicate, as a broker
        redelivery would."""
        message_id = message_id or new_id()
        if (
            signed
            and self.signing_key is not None
            and isinstance(command, dict)
            and c.SIGNATURE_FIELD not in command
        ):
            command = sign(command, self.signing_key)
        body, headers = task_message(task, command, message_id=message_id)
        properties: dict[str, Any] = {"correlation_id": message_id}
        if reply:
            properties["reply_to"] = self._ensure_reply_queue().name
        self._get_producer().publish(
            body,
            exchange=self._queue.exchange,
            routing_key=self._queue.routing_key,
            declare=[self._queue],
            serializer="json",
            headers=headers,
            delivery_mode=2,
            retry=True,
            retry_policy={"max_retries": 5, "interval_start": 0.2, "interval_step": 0.5},
            **properties,
        )
        request_id = command.get("requestId") if isinstance(command, dict) else None
        return Receipt(request_id=str(request_id), message_id=message_id, task=task)

    def wait(self, receipts: Sequence[Receipt], *, timeout_s: float = 30.0) -> list[Reply]:
        """The replies to ``receipts``, in their order; ``TimeoutError`` names what is missing."""
        if self._consumer is None:
            raise RuntimeError("publish with reply=True (or wait=True) before waiting")
        wanted = Counter(r.message_id for r in receipts)
        deadline = time.monotonic() + timeout_s
        while any(len(self._replies[m]) < n for m, n in wanted.items()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = [r.request_id for r in receipts if not self._replies[r.message_id]]
                raise TimeoutError(
                    f"no result within {timeout_s:g}s for requestId {', '.join(missing[:5])}"
                    f"{' …' if len(missing) > 5 else ''}; is a worker running? "
                    "(custody status REQUEST_ID tells later)"
                )
            try:
                self._connection.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:
                continue
        return [self._replies[r.message_id].pop(0) for r in receipts]

    def _on_reply(self, body: Any, message: Any) -> None:
        correlation_id = message.properties.get("correlation_id")
        if isinstance(body, dict) and correlation_id:
            self._replies[correlation_id].append(
                Reply(
                    request_id=str(body.get("requestId")),
                    replayed=bool(body.get("replayed")),
                    result=body.get("result") or {},
                )
            )
        message.ack()

    def _get_producer(self) -> Any:
        if self._producer is None:
            self._producer = self._connection.Producer(serializer="json")
        return self._producer

    def _ensure_reply_queue(self) -> Queue:
        if self._reply_queue is None:
            name = f"custody.reply.{uuid.uuid4().hex}"
            self._reply_queue = Queue(name, routing_key=name, durable=False, auto_delete=True)
            self._consumer = Consumer(
                self._connection.default_channel,
                [self._reply_queue],
                callbacks=[self._on_reply],
                accept=["json"],
            )
            self._consumer.consume()
        return self._reply_queue

    def close(self) -> None:
        try:
            if self._consumer is not None:
                self._consumer.cancel()
                if self._reply_queue is not None:
                    self._reply_queue.bind(self._connection.default_channel).delete()
        finally:
            self._connection.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _given(**fields: Any) -> dict[str, Any]:
    """Only the fields the caller set: absent stays absent on the wire."""
    return {k: v for k, v in fields.items() if v is not None}
