"""Canonical JSON: the bytes that are hashed for idempotency and signed for authentication."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(command: dict[str, Any]) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8; the ``signature`` field left out."""
    unsigned = {k: v for k, v in command.items() if k != "signature"}
    return json.dumps(
        unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def command_hash(command: dict[str, Any]) -> str:
    """What makes two commands "the same" under one requestId."""
    return digest_of(canonical_json(command))


def digest_of(canonical: bytes) -> str:
    """``command_hash`` of the command whose canonical JSON is ``canonical``."""
    return hashlib.sha256(canonical).hexdigest()
