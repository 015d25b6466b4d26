"""What every outcome of a fuzzed input must be."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from models import constants as c
from models.limits import is_clean_text
from tests.backends import FakeBackend

STATUS_CODES = {200, 400, 401, 404, 409}


@dataclass
class Message:
    body: Any
    headers: Any = field(default_factory=dict)
    content_type: Any = "application/json"
    properties: dict[str, Any] = field(default_factory=dict)


def check_result(result: Any, *, secrets: set[str]) -> None:
    """A result as the wire contract and every store want it."""
    text = json.dumps(result, allow_nan=False)  # plain JSON, nothing else
    assert isinstance(result["success"], bool)
    assert result["statusCode"] in STATUS_CODES, result
    if not result["success"]:
        assert isinstance(result["errorCode"], str)
        assert result["errorMessages"] and all(isinstance(m, str) for m in result["errorMessages"])
        assert len(result["errorMessages"]) <= c.MAX_ERROR_MESSAGES + 1
    assert not [s for s in secrets if s in text]


def check_storable(backend: FakeBackend) -> None:
    """What PostgreSQL would refuse: NUL, lone surrogates, ids over their column's length."""
    state = backend.db.state
    rows = [*state.rejections, *state.processed.values(), *state.dead_letters, *state.outbox]
    for row in rows:
        for value in _strings(asdict(row)):
            assert is_clean_text(value), row
        for column in ("message_id", "task", "request_id"):
            assert len(getattr(row, column, None) or "") <= 255, row


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []
