"""Signed commands: ``signature = {"keyId", "value"}`` where ``value`` is the hex
HMAC-SHA256 of the command's canonical JSON (``signature`` left out) under the secret of one
of its organization's keys.

Standard library only, so any producer can sign without the storage stack.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models import constants as c
from models.canonical import canonical_json
from models.limits import is_clean_text

REDACTED = "redacted"  # what a stored copy shows instead of a signature value

_HEX_VALUE = re.compile(r"[0-9a-f]{64}")
# A signature value inside JSON text, for bodies that cannot be parsed (or were cut short).
_VALUE_IN_TEXT = re.compile(r'("value"\s*:\s*")[0-9A-Fa-f]{64}(")')


@dataclass(frozen=True)
class SigningKey:
    """A key as its holder uses it. The secret never appears in a repr."""

    key_id: str
    secret: str = field(repr=False)
    organization_id: str | None = None


def new_key_id() -> str:
    return "ck_" + secrets.token_hex(10)


def new_secret() -> str:
    """256 random bits; the HMAC key is this text's UTF-8 bytes."""
    return "cks_" + secrets.token_urlsafe(32)


def signature_value(signed_bytes: bytes, secret: str) -> str:
    """The hex HMAC-SHA256 of ``signed_bytes`` (a command's canonical JSON) under ``secret``."""
    return hmac.new(secret.encode("utf-8"), signed_bytes, hashlib.sha256).hexdigest()


def sign(command: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """A copy of ``command`` carrying its signature under ``key`` (any old one replaced)."""
    unsigned = {k: v for k, v in command.items() if k != c.SIGNATURE_FIELD}
    value = signature_value(canonical_json(unsigned), key.secret)
    return {**unsigned, c.SIGNATURE_FIELD: {"keyId": key.key_id, "value": value}}


def matches(signed_bytes: bytes, secret: str, value: str) -> bool:
    """Whether ``value`` is the signature of ``signed_bytes``, compared in constant time."""
    expected = signature_value(signed_bytes, secret)
    return hmac.compare_digest(expected.encode("ascii"), value.encode("ascii", "replace"))


def parse_signature(signature: Any) -> tuple[str, str] | None:
    """``(keyId, value)`` from a command's ``signature`` field; None if it is malformed."""
    if not isinstance(signature, dict) or set(signature) != {"keyId", "value"}:
        return None
    key_id, value = signature["keyId"], signature["value"]
    if not (
        isinstance(key_id, str)
        and 0 < len(key_id) <= c.MAX_KEY_ID_CHARS
        and is_clean_text(key_id)
        and isinstance(value, str)
        and _HEX_VALUE.fullmatch(value)
    ):
        return None
    return key_id, value


def redacted(command: Any) -> Any:
    """``command`` as it may be stored or logged: the signature value replaced."""
    if not isinstance(command, dict):
        return command
    signature = command.get(c.SIGNATURE_FIELD)
    if not isinstance(signature, dict) or "value" not in signature:
        return command
    return {**command, c.SIGNATURE_FIELD: {**signature, "value": REDACTED}}


def redact_text(text: str) -> str:
    """JSON text as it may be stored: every signature value in it replaced."""
    return _VALUE_IN_TEXT.sub(rf"\g<1>{REDACTED}\g<2>", text)


# -- the key file of the embedded default ----------------------------------------------------


def read_key_file(path: Path) -> SigningKey | None:
    """The key kept in ``path`` (JSON: keyId, secret, organizationId), or None if absent."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable or half-written: the embedded default makes a new one
    if not isinstance(data, dict):
        return None
    key_id, secret, org = data.get("keyId"), data.get("secret"), data.get("organizationId")
    if not (isinstance(key_id, str) and isinstance(secret, str) and isinstance(org, str)):
        return None
    return SigningKey(key_id, secret, org)


def write_key_file(path: Path, key: SigningKey) -> None:
    """Keep ``key`` in ``path``, readable by its owner only, replaced atomically."""
    text = json.dumps(
        {"keyId": key.key_id, "secret": key.secret, "organizationId": key.organization_id}
    )
    write_private_file(path, text, replace=True)


def write_private_file(path: Path, text: str, *, replace: bool) -> bool:
    """Write ``text`` to ``path`` with mode 0600, never visible half-written. Without
    ``replace`` an existing file wins; returns whether this call's text is in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)  # atomic, and fails if another process got there first
        except FileExistsError:
            return False
        return True
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
