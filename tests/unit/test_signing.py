"""Signatures: HMAC-SHA256 of the canonical JSON, checked in constant time, never stored."""

from __future__ import annotations

import json
import stat

import pytest

from models.canonical import canonical_json
from models.signing import (
    REDACTED,
    SigningKey,
    matches,
    parse_signature,
    read_key_file,
    redact_text,
    redacted,
    sign,
    write_key_file,
    write_private_file,
)

KEY = SigningKey("ck_example", "cks_example-secret", "acme")
COMMAND = {
    "requestId": "r-1",
    "organizationId": "acme",
    "deviceIdentifier": "SN-1001",
    "customerEmails": ["alice@example.com"],
}


def test_the_signature_is_the_documented_hmac_of_the_canonical_json():
    # Given the example of SECURITY.md, computed independently with
    #   printf '%s' '<canonical JSON>' | openssl dgst -sha256 -hmac 'cks_example-secret'
    expected = "fc66b7b92cb5a3508ef3a21955798f95b3fb88a42c28458e851ebb719c2fca51"
    # Then signing gives exactly that value under the key's id
    assert sign(COMMAND, KEY)["signature"] == {"keyId": "ck_example", "value": expected}


def test_non_ascii_text_is_signed_as_utf_8_not_as_escapes():
    command = {"requestId": "r-2", "organizationId": "acme", "deviceIdentifier": "Gerät-7"}
    expected = "6c6c1034c1bb02d5f0aba7c6105b1b5e9780d2879af93df95ce07c00980a584f"
    assert sign(command, KEY)["signature"]["value"] == expected


def test_key_order_and_whitespace_do_not_change_the_signature():
    reordered = json.loads(json.dumps(dict(reversed(list(COMMAND.items()))), indent=4))
    assert sign(reordered, KEY)["signature"] == sign(COMMAND, KEY)["signature"]


def test_a_signed_command_verifies_and_any_change_breaks_it():
    signed = sign(COMMAND, KEY)
    value = signed["signature"]["value"]
    assert matches(canonical_json(signed), KEY.secret, value)
    for field, other in [
        ("requestId", "r-2"),
        ("organizationId", "other"),
        ("deviceIdentifier", "SN-1002"),
        ("customerEmails", ["alice@example.com", "mallory@example.com"]),
        ("autoCreateDevice", True),
    ]:
        changed = {**signed, field: other}
        assert not matches(canonical_json(changed), KEY.secret, value), field


def test_another_secret_gives_another_signature():
    other = SigningKey("ck_example", "cks_other-secret")
    assert not matches(
        canonical_json(COMMAND), other.secret, sign(COMMAND, KEY)["signature"]["value"]
    )


def test_signing_again_replaces_the_old_signature():
    twice = sign(sign(COMMAND, SigningKey("ck_old", "old-secret")), KEY)
    assert twice == sign(COMMAND, KEY)


@pytest.mark.parametrize(
    "signature",
    [
        "abc",
        ["ck_example", "0" * 64],
        {"keyId": "ck_example"},
        {"keyId": "ck_example", "value": "0" * 64, "extra": 1},
        {"keyId": "", "value": "0" * 64},
        {"keyId": "k" * 65, "value": "0" * 64},
        {"keyId": 5, "value": "0" * 64},
        {"keyId": "ck\x00", "value": "0" * 64},
        {"keyId": "ck_example", "value": "0" * 63},
        {"keyId": "ck_example", "value": "A" * 64},
        {"keyId": "ck_example", "value": "g" * 64},
        {"keyId": "ck_example", "value": None},
    ],
)
def test_malformed_signatures_are_recognised(signature):
    assert parse_signature(signature) is None


def test_a_well_formed_signature_is_read():
    assert parse_signature({"keyId": "ck_example", "value": "a" * 64}) == ("ck_example", "a" * 64)


def test_stored_copies_show_no_signature_value():
    signed = sign(COMMAND, KEY)
    value = signed["signature"]["value"]
    assert redacted(signed)["signature"] == {"keyId": "ck_example", "value": REDACTED}
    assert signed["signature"]["value"] == value  # the original is left alone
    text = json.dumps([[signed], {}, {}], indent=1)
    assert value not in redact_text(text)
    assert redacted(["not", "a", "command"]) == ["not", "a", "command"]


def test_the_key_never_shows_its_secret_in_a_repr():
    assert KEY.secret not in repr(KEY)


def test_the_key_file_is_private_and_round_trips(tmp_path):
    path = tmp_path / "home" / "key.json"
    write_key_file(path, KEY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path) == KEY
    assert read_key_file(tmp_path / "absent.json") is None
    path.write_text("{half")
    assert read_key_file(path) is None


def test_a_private_file_written_without_replace_keeps_the_first_writer(tmp_path):
    path = tmp_path / "master.key"
    assert write_private_file(path, "first", replace=False) is True
    assert write_private_file(path, "second", replace=False) is False
    assert path.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]  # no temporary left
