"""Every command is authenticated as its organization before anything else reads it:
unsigned, unknown, revoked, foreign or wrong signatures are a 401 that changes nothing and
takes no idempotency key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.canonical import command_hash
from models.errors import Transient
from models.keystore import MasterKey
from models.ports import StoredResult
from models.signing import SigningKey, sign
from tasks.authenticate import Authenticator
from tasks.keys import revoke_key
from tests.helpers import assign_body, deliver, new_device, signed


def required(backend) -> Authenticator:
    return Authenticator(backend.master_key, required=True)


def auto_assign(org: str, **extra) -> dict:
    return assign_body(
        org, new_device(), ["a@example.com"], autoCreateDevice=True, deviceType="T", **extra
    )


def revoke(backend, key_id: str) -> None:
    with backend.uow() as uow:
        revoke_key(uow, key_id)
        uow.commit()


def test_a_command_signed_with_a_key_of_its_organization_is_applied(backend):
    org = backend.new_org()
    outcome = deliver(backend, signed(backend, auto_assign(org)), authenticator=required(backend))
    assert outcome.success, outcome.result
    assert len(backend.state(org).owners) == 1


def _unsigned(backend, org, body):
    return body


def _unknown_key(backend, org, body):
    return sign(body, SigningKey("ck_nobody", "cks_guess"))


def _key_of_another_organization(backend, org, body):
    return signed(backend, body, org=backend.new_org())


def _tampered_after_signing(backend, org, body):
    return {**signed(backend, body), "customerEmails": ["mallory@example.com"]}


def _wrong_secret(backend, org, body):
    return sign(body, SigningKey(backend.key_for(org).key_id, "cks_guess"))


def _malformed(backend, org, body):
    return {**body, "signature": {"keyId": backend.key_for(org).key_id, "value": "XYZ"}}


def _revoked_key(backend, org, body):
    revoke(backend, backend.key_for(org).key_id)
    return signed(backend, body)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_unsigned, "signature: required"),
        (_unknown_key, "is not a key of organization"),
        (_key_of_another_organization, "is not a key of organization"),
        (_tampered_after_signing, "value does not match"),
        (_wrong_secret, "value does not match"),
        (_malformed, "signature: malformed"),
        (_revoked_key, "was revoked"),
    ],
)
def test_a_command_that_is_not_authentic_is_a_401_that_changes_nothing_and_takes_no_key(
    backend, make, says
):
    # Given an organization and a command that is not signed by one of its active keys
    org = backend.new_org()
    body = auto_assign(org)
    forged = make(backend, org, body)
    before = backend.state(org)
    # When it is delivered where signatures are required
    outcome = deliver(backend, forged, authenticator=required(backend))
    # Then it is refused with 401, recorded as an unbound rejection, and nothing changed
    assert outcome.result["statusCode"] == 401
    assert outcome.result["errorCode"] == "UNAUTHORIZED"
    assert any(says in m for m in outcome.result["errorMessages"]), outcome.result
    after = backend.state(org)
    assert after.rejections == [*before.rejections, outcome.result]
    assert (after.devices, after.customers, after.processed, after.events) == ({}, {}, {}, [])
    # And the requestId is still free for the real sender
    new_key = backend.new_key(org)
    retry = deliver(backend, sign(body, new_key), authenticator=required(backend))
    assert retry.success and not retry.replayed


def test_a_revocation_counts_from_the_next_command_and_spares_the_other_keys(backend):
    # Given an organization with two active keys (a rotation under way)
    org = backend.new_org()
    old, new = backend.key_for(org), backend.new_key(org)
    assert deliver(backend, sign(auto_assign(org), old), authenticator=required(backend)).success
    assert deliver(backend, sign(auto_assign(org), new), authenticator=required(backend)).success
    # When the old key is revoked
    revoke(backend, old.key_id)
    # Then the very next command signed with it is refused, and the new key still works
    refused = deliver(backend, sign(auto_assign(org), old), authenticator=required(backend))
    assert refused.result["statusCode"] == 401
    assert deliver(backend, sign(auto_assign(org), new), authenticator=required(backend)).success


def test_a_command_sent_again_under_another_key_of_the_organization_is_the_same_command(backend):
    org = backend.new_org()
    body = auto_assign(org)
    first = deliver(backend, signed(backend, body), authenticator=required(backend))
    again = deliver(backend, sign(body, backend.new_key(org)), authenticator=required(backend))
    assert again.replayed and again.result == first.result


def test_where_signatures_are_optional_a_signature_that_is_there_is_still_checked(backend):
    org = backend.new_org()
    optional = Authenticator(backend.master_key, required=False)
    forged = {**signed(backend, auto_assign(org)), "deviceIdentifier": "SN-other"}
    assert deliver(backend, forged, authenticator=optional).result["statusCode"] == 401
    assert deliver(backend, auto_assign(org), authenticator=optional).success
    assert deliver(backend, signed(backend, auto_assign(org)), authenticator=optional).success


def test_a_request_id_used_for_another_task_is_a_conflict_not_a_replay(backend):
    # Given a requestId recorded for another command type with the same body
    org = backend.new_org()
    body = auto_assign(org)
    with backend.uow() as uow:
        uow.commands.add(
            StoredResult(
                org,
                body["requestId"],
                "custody.unassign_device",
                command_hash(body),
                200,
                {"success": True, "statusCode": 200},
            )
        )
        uow.commit()
    # When the body arrives as an assignment
    outcome = deliver(backend, signed(backend, body), authenticator=required(backend))
    # Then it is a conflict, not the other command's answer
    assert outcome.result["errorCode"] == "IDEMPOTENCY_CONFLICT"
    assert backend.state(org).devices == {}


def test_a_key_this_worker_cannot_open_is_a_transient_fault_not_the_senders_fault(backend):
    # Given a worker configured with another master key than the one that sealed the keys
    org = backend.new_org()
    stranger = Authenticator(MasterKey.from_text(MasterKey.generate_text()), required=True)
    # Then the command is left for a retry (and, in the end, a replayable dead letter)
    with pytest.raises(Transient, match="not configured"):
        deliver(backend, signed(backend, auto_assign(org)), authenticator=stranger)
    assert backend.state(org).rejections == [] and backend.state(org).processed == {}


def test_signing_secrets_are_stored_sealed(backend):
    org = backend.new_org()
    key = backend.key_for(org)
    with backend.uow() as uow:
        (record,) = uow.signing_keys.of(org)
    assert record.key_id == key.key_id and record.revoked_at is None
    assert key.secret not in record.secret_sealed
    assert (
        backend.master_key.open(record.secret_sealed, key_id=key.key_id, organization_id=org)
        == key.secret
    )
    assert record.created_at <= datetime.now(UTC)
