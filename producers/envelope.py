"""The message a command travels in: Celery task protocol 2, JSON, one positional argument.

Any language can publish it; see docs/publishing.md for the bytes on Redis.
"""

from __future__ import annotations

import socket
import uuid
from typing import Any


def new_id() -> str:
    return str(uuid.uuid4())


def task_message(
    task_name: str, command: Any, *, message_id: str
) -> tuple[list[Any], dict[str, Any]]:
    """Body and headers of a protocol-2 task message carrying ``command``."""
    body = [[command], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    headers = {
        "lang": "py",
        "task": task_name,
        "id": message_id,
        "root_id": message_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "timelimit": [None, None],
        "argsrepr": f"(<command {_request_id(command)!s:.80}>,)",
        "kwargsrepr": "{}",
        "origin": f"custody-producer@{socket.gethostname()}",
        "ignore_result": True,
    }
    return body, headers


def _request_id(command: Any) -> Any:
    return command.get("requestId") if isinstance(command, dict) else None
