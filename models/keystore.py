"""Signing secrets at rest: sealed with AES-256-GCM under a master key that lives outside
the database (``CUSTODY_MASTER_KEY``), so a read of the database alone cannot sign.

Each sealed secret is bound to its key id and organization (GCM associated data): a sealed
secret copied onto another key's row does not open. Several master keys may be given,
comma-separated: the first seals, all open, which is how the master key is rotated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from models import constants as c
from models.errors import CustodyError, Misconfigured
from models.settings import Settings
from models.signing import write_private_file

_FORMAT = "v1"
_NONCE_BYTES = 12


class SealedSecretError(CustodyError):
    """Raised when a sealed secret does not open with any configured master key."""


class MasterKey:
    """One or more 256-bit keys; the first seals, every one opens what it sealed."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys or any(len(k) != 32 for k in keys):
            raise Misconfigured("a master key is 32 bytes, written in URL-safe base64")
        self._keys = {_fingerprint(k): AESGCM(k) for k in keys}
        self._sealing = _fingerprint(keys[0])

    def __repr__(self) -> str:
        return f"MasterKey(sealing={self._sealing}, keys={len(self._keys)})"

    @classmethod
    def from_text(cls, text: str) -> MasterKey:
        """Parse ``CUSTODY_MASTER_KEY``: URL-safe base64 keys, comma-separated, newest first."""
        keys = []
        for part in text.split(","):
            try:
                keys.append(base64.urlsafe_b64decode(part.strip().encode("ascii")))
            except (ValueError, binascii.Error) as exc:
                raise Misconfigured(
                    "CUSTODY_MASTER_KEY: not URL-safe base64 (make one with "
                    "`custody keys master-key`)"
                ) from exc
        return cls(keys)

    @staticmethod
    def generate_text() -> str:
        return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")

    def seal(self, secret: str, *, key_id: str, organization_id: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self._sealing].encrypt(
            nonce, secret.encode("utf-8"), _bound_to(key_id, organization_id)
        )
        blob = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{_FORMAT}:{self._sealing}:{blob}"

    def open(self, sealed: str, *, key_id: str, organization_id: str) -> str:
        """The secret, or ``SealedSecretError`` (never the secret's text in a message)."""
        try:
            version, fingerprint, blob = sealed.split(":", 2)
            raw = base64.urlsafe_b64decode(blob.encode("ascii"))
        except (ValueError, binascii.Error) as exc:
            raise SealedSecretError(f"key {key_id!r}: not a sealed secret") from exc
        cipher = self._keys.get(fingerprint) if version == _FORMAT else None
        if cipher is None:
            raise SealedSecretError(
                f"key {key_id!r} was sealed under master key {fingerprint}, which is not "
                "configured (CUSTODY_MASTER_KEY)"
            )
        try:
            plain = cipher.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _bound_to(key_id, organization_id)
            )
        except InvalidTag as exc:
            raise SealedSecretError(
                f"key {key_id!r}: sealed secret does not open (altered, or moved from another key)"
            ) from exc
        return plain.decode("utf-8")

    def is_current(self, sealed: str) -> bool:
        """Whether ``sealed`` was sealed under the first (current) master key."""
        return sealed.startswith(f"{_FORMAT}:{self._sealing}:")


def _fingerprint(key: bytes) -> str:
    return hashlib.sha256(b"custody-master-key" + key).hexdigest()[:8]


def _bound_to(key_id: str, organization_id: str) -> bytes:
    return f"custody-signing-key\x00{key_id}\x00{organization_id}".encode()


def load_master_key(settings: Settings) -> MasterKey | None:
    """The master key the settings name. Without ``CUSTODY_MASTER_KEY``, the embedded
    default (a SQLite database) keeps one in ``CUSTODY_HOME/master.key`` (mode 0600),
    created on first use; any other setup has none."""
    if settings.master_key is not None:
        return MasterKey.from_text(settings.master_key.get_secret_value())
    if not settings.resolved_database_url.startswith("sqlite"):
        return None
    return MasterKey.from_text(_read_or_create(settings.home / c.MASTER_KEY_FILE))


def _read_or_create(path: Path) -> str:
    if not path.exists():
        write_private_file(path, MasterKey.generate_text() + "\n", replace=False)
    return path.read_text(encoding="ascii").strip()
