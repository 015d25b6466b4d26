"""The wire contract as files: a JSON Schema for every command, result and event, and an
AsyncAPI 3 document for the queues, exchange, routing keys and messages. Generated from the
pydantic models by ``custody contract``; a test fails when the files drift from the code."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from models import constants as c
from models.commands import Command, WireModel
from models.events import event_json_schemas
from models.results import Rejection

# Modules that declare commands and results beside their feature.
FEATURE_MODULES = (
    "models.commands",
    "models.results",
    "models.access_commands",
    "models.bulk",
    "models.access_wire",
)


def _load_features() -> list[Any]:
    return [importlib.import_module(name) for name in FEATURE_MODULES]


def command_models() -> dict[str, type[Command]]:
    """Task name → command model, for every command custody knows."""
    _load_features()
    found: dict[str, type[Command]] = {}
    pending = list(Command.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if "task_name" in model.__dict__:
            found[model.task_name] = model
    return dict(sorted(found.items()))


def result_model(command: type[Command]) -> type[WireModel]:
    """The success result of a command: ``<Command>Result`` beside the feature."""
    name = f"{command.__name__}Result"
    for module in _load_features():
        model = getattr(module, name, None)
        if model is not None:
            return model  # type: ignore[no-any-return]
    raise LookupError(f"no {name} for {command.task_name}")


def _schema(model: type[Any], title: str) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema(by_alias=True, mode="validation")
    schema["title"] = title
    return schema


def contract_files() -> dict[str, dict[str, Any]]:
    """Relative path → JSON document, for every file of the contract."""
    files: dict[str, dict[str, Any]] = {}
    for task, model in command_models().items():
        files[f"schemas/commands/{task}.json"] = _schema(model, task)
        files[f"schemas/results/{task}.json"] = _schema(result_model(model), f"{task} result")
    files["schemas/results/rejection.json"] = _schema(Rejection, "rejection (any command)")
    for stem, schema in event_json_schemas().items():
        files[f"schemas/events/{stem}.json"] = schema
    files["asyncapi.json"] = asyncapi()
    return files


def _ref(path: str) -> dict[str, str]:
    return {"$ref": f"./{path}"}


def asyncapi() -> dict[str, Any]:
    commands = command_models()
    messages: dict[str, Any] = {}
    for task, _ in commands.items():
        key = task.replace(".", "_")
        messages[key] = {
            "name": task,
            "title": task,
            "summary": f"The command {task}: body [[COMMAND], {{}}, {{}}] (Celery protocol 2).",
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "required": ["task", "id"],
                "properties": {
                    "task": {"const": task},
                    "id": {
                        "type": "string",
                        "description": "message id; the reply's correlation_id",
                    },
                },
            },
            "payload": _ref(f"schemas/commands/{task}.json"),
        }
        messages[f"{key}_reply"] = {
            "name": f"{task} reply",
            "contentType": "application/json",
            "payload": {
                "type": "object",
                "properties": {
                    "requestId": {"type": "string"},
                    "organizationId": {"type": "string"},
                    "replayed": {"type": "boolean"},
                    "result": {
                        "oneOf": [
                            _ref(f"schemas/results/{task}.json"),
                            _ref("schemas/results/rejection.json"),
                        ]
                    },
                },
            },
        }
    events = sorted(s for s in event_json_schemas() if s != "cloudevent")
    for stem in events:
        kind = stem.removesuffix(".data")
        messages[kind.replace(".", "_")] = {
            "name": kind,
            "title": kind,
            "summary": f"CloudEvent of type {kind}, routing key {kind}; "
            f"data: schemas/events/{stem}.json",
            "contentType": "application/cloudevents+json",
            "payload": _ref("schemas/events/cloudevent.json"),
        }
    command_keys = [t.replace(".", "_") for t in commands]
    event_keys = [s.removesuffix(".data").replace(".", "_") for s in events]
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "custody",
            "version": "1",
            "description": "Commands in on a queue, results back on reply queues, events out "
            "on a topic exchange. See docs/publishing.md and docs/events.md.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "redis": {"host": "localhost:6379", "protocol": "redis"},
            "rabbitmq": {"host": "localhost:5672", "protocol": "amqp"},
        },
        "channels": {
            "commands": {
                "address": c.COMMANDS_QUEUE,
                "messages": {k: {"$ref": f"#/components/messages/{k}"} for k in command_keys},
                "bindings": {
                    "amqp": {"is": "queue", "queue": {"name": c.COMMANDS_QUEUE, "durable": True}}
                },
            },
            "replies": {
                "address": "{replyTo}",
                "parameters": {"replyTo": {"description": "the reply_to property of a command"}},
                "messages": {
                    f"{k}_reply": {"$ref": f"#/components/messages/{k}_reply"} for k in command_keys
                },
            },
            "events": {
                "address": c.EVENTS_EXCHANGE,
                "messages": {k: {"$ref": f"#/components/messages/{k}"} for k in event_keys},
                "bindings": {
                    "amqp": {
                        "is": "routingKey",
                        "exchange": {"name": c.EVENTS_EXCHANGE, "type": "topic", "durable": True},
                    }
                },
            },
        },
        "operations": {
            **{
                f"send_{k}": {
                    "action": "send",
                    "channel": {"$ref": "#/channels/commands"},
                    "messages": [{"$ref": f"#/channels/commands/messages/{k}"}],
                    "reply": {
                        "channel": {"$ref": "#/channels/replies"},
                        "messages": [{"$ref": f"#/channels/replies/messages/{k}_reply"}],
                    },
                }
                for k in command_keys
            },
            "receive_events": {
                "action": "receive",
                "summary": "Subscribe with a durable queue of your own, bound by pattern "
                "(device.*, access.#); deduplicate on the event id.",
                "channel": {"$ref": "#/channels/events"},
            },
        },
        "components": {"messages": messages},
    }


def file_text(document: dict[str, Any]) -> str:
    """How every contract file is written: indented JSON in the models' own key order."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def drifted(folder: Path) -> list[str]:
    """Files under ``folder`` that are missing or differ from what the models generate."""
    return [
        relative
        for relative, document in contract_files().items()
        if not (folder / relative).is_file()
        or (folder / relative).read_text() != file_text(document)
    ]


def write(folder: Path) -> list[str]:
    """Write the files that drifted; return them."""
    stale = drifted(folder)
    files = contract_files()
    for relative in stale:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(file_text(files[relative]))
    return stale
