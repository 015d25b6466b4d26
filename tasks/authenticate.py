"""Who sent this command: a signature under a key of the organization the command names.

The key's row is read inside the command's own transaction every time, so a revocation
counts from the next command on; only opened secrets are kept in memory, per process.
"""

from __future__ import annotations

import logging
from typing import Any

from models.errors import Rejected, Transient
from models.keystore import MasterKey, SealedSecretError
from models.ports import SigningKeyRecord, UnitOfWork
from models.signing import matches, parse_signature

log = logging.getLogger("custody.authenticate")

MAX_CACHED_SECRETS = 4_096  # opened secrets kept per process; the cache empties when full


class Authenticator:
    """Checks a command's signature; with ``required`` off, only signatures that are there."""

    def __init__(self, master_key: MasterKey | None, *, required: bool) -> None:
        self.required = required
        self._master_key = master_key
        self._secrets: dict[tuple[str, str], str] = {}  # (keyId, sealed) -> secret

    def __repr__(self) -> str:
        return f"Authenticator(required={self.required}, master_key={self._master_key!r})"

    def check(
        self,
        uow: UnitOfWork,
        *,
        organization_id: str,
        signature: Any,
        signed: bytes,
        keys: dict[str, SigningKeyRecord | None] | None = None,
    ) -> bool:
        """True when a signature of the organization was verified (which also proves that
        the organization exists), False for an unsigned command where signatures are
        optional; otherwise ``Rejected`` 401 saying why. ``signed`` is the canonical JSON.
        ``keys``: key rows already read in this transaction, by key id (and kept there)."""
        if signature is None:
            if self.required:
                raise Rejected.unauthorized(
                    "signature: required; sign the command with a key of its organization "
                    "(HMAC-SHA256 of the canonical JSON without 'signature')"
                )
            return False
        parsed = parse_signature(signature)
        if parsed is None:
            raise Rejected.unauthorized(
                'signature: malformed; expected {"keyId": "…", "value": 64 lowercase hex digits}'
            )
        key_id, value = parsed
        if keys is None:
            record = uow.signing_keys.get(key_id)
        elif key_id in keys:
            record = keys[key_id]
        else:
            record = keys[key_id] = uow.signing_keys.get(key_id)
        if record is None or record.organization_id != organization_id:
            raise Rejected.unauthorized(
                f"signature: key {key_id!r} is not a key of organization {organization_id!r}"
            )
        if record.revoked_at is not None:
            raise Rejected.unauthorized(f"signature: key {key_id!r} was revoked")
        if not matches(signed, self._secret(record), value):
            raise Rejected.unauthorized(
                "signature: value does not match the command "
                "(HMAC-SHA256 of the canonical JSON without 'signature')"
            )
        return True

    def _secret(self, record: SigningKeyRecord) -> str:
        cache_key = (record.key_id, record.secret_sealed)
        secret = self._secrets.get(cache_key)
        if secret is not None:
            return secret
        if self._master_key is None:
            raise Transient(
                f"cannot check key {record.key_id!r}: no master key (set CUSTODY_MASTER_KEY)"
            )
        try:
            secret = self._master_key.open(
                record.secret_sealed, key_id=record.key_id, organization_id=record.organization_id
            )
        except SealedSecretError as exc:
            # This worker's configuration, not the sender, is at fault: retry, then dead-letter.
            log.error("cannot open signing key %s: %s", record.key_id, exc)
            raise Transient(str(exc)) from exc
        if len(self._secrets) >= MAX_CACHED_SECRETS:
            self._secrets.clear()
        self._secrets[cache_key] = secret
        return secret
