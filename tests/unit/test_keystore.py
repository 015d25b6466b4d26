"""Secrets at rest: sealed under a master key from outside the database, bound to their key."""

from __future__ import annotations

import base64
import stat

import pytest

from models.errors import Misconfigured
from models.keystore import MasterKey, SealedSecretError, load_master_key
from models.settings import Settings

BOUND = {"key_id": "ck_1", "organization_id": "acme"}


def test_a_sealed_secret_opens_to_itself_and_does_not_show_it():
    master = MasterKey.from_text(MasterKey.generate_text())
    sealed = master.seal("cks_secret", **BOUND)
    assert "cks_secret" not in sealed
    assert master.open(sealed, **BOUND) == "cks_secret"
    assert master.seal("cks_secret", **BOUND) != sealed  # a fresh nonce every time


@pytest.mark.parametrize(
    "bound",
    [{"key_id": "ck_2", "organization_id": "acme"}, {"key_id": "ck_1", "organization_id": "evil"}],
)
def test_a_sealed_secret_moved_to_another_key_or_organization_does_not_open(bound):
    master = MasterKey.from_text(MasterKey.generate_text())
    sealed = master.seal("cks_secret", **BOUND)
    with pytest.raises(SealedSecretError, match="does not open"):
        master.open(sealed, **bound)


def test_an_altered_sealed_secret_does_not_open():
    master = MasterKey.from_text(MasterKey.generate_text())
    sealed = master.seal("cks_secret", **BOUND)
    # One bit of the ciphertext changed (a changed base64 character may only touch the
    # padding bits, which decode to the same bytes)
    head, blob = sealed.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(blob))
    raw[len(raw) // 2] ^= 1
    flipped = f"{head}:{base64.urlsafe_b64encode(bytes(raw)).decode('ascii')}"
    with pytest.raises(SealedSecretError):
        master.open(flipped, **BOUND)
    with pytest.raises(SealedSecretError, match="not a sealed secret"):
        master.open("plain text", **BOUND)


def test_the_database_alone_is_not_enough_another_master_key_cannot_open():
    sealed = MasterKey.from_text(MasterKey.generate_text()).seal("cks_secret", **BOUND)
    stranger = MasterKey.from_text(MasterKey.generate_text())
    with pytest.raises(SealedSecretError, match="not configured"):
        stranger.open(sealed, **BOUND)


def test_a_rotated_master_key_opens_old_secrets_and_seals_new_ones():
    old, new = MasterKey.generate_text(), MasterKey.generate_text()
    sealed_before = MasterKey.from_text(old).seal("cks_secret", **BOUND)
    rotated = MasterKey.from_text(f"{new}, {old}")
    assert rotated.open(sealed_before, **BOUND) == "cks_secret"
    assert not rotated.is_current(sealed_before)
    assert rotated.is_current(rotated.seal("cks_secret", **BOUND))


@pytest.mark.parametrize("text", ["", "not base64!", "c2hvcnQ=", MasterKey.generate_text() + ",x"])
def test_a_malformed_master_key_is_a_clear_configuration_error(text):
    with pytest.raises(Misconfigured, match=r"master key|MASTER_KEY"):
        MasterKey.from_text(text)


def test_the_master_key_never_shows_in_a_repr():
    text = MasterKey.generate_text()
    assert text not in repr(MasterKey.from_text(text))


def test_the_embedded_default_keeps_its_master_key_in_a_private_file(tmp_path):
    settings = Settings(home=tmp_path, database_url=None, broker_url=None, master_key=None)
    first = load_master_key(settings)
    path = tmp_path / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = first.seal("cks_secret", **BOUND)
    assert load_master_key(settings).open(sealed, **BOUND) == "cks_secret"  # the same key


def test_production_has_no_master_key_unless_one_is_given(tmp_path):
    production = Settings(
        home=tmp_path,
        database_url="postgresql+psycopg://db/x",
        broker_url="redis://r",
        master_key=None,
    )
    assert load_master_key(production) is None
    assert not (tmp_path / "master.key").exists()
    text = MasterKey.generate_text()
    given = Settings(
        home=tmp_path,
        database_url="postgresql+psycopg://db/x",
        broker_url="redis://r",
        master_key=text,
    )
    assert isinstance(load_master_key(given), MasterKey)


def test_signatures_are_required_outside_the_embedded_default_unless_turned_off():
    assert Settings(broker_url="redis://r", require_signatures=None).signatures_required
    assert not Settings(broker_url=None, require_signatures=None).signatures_required
    assert not Settings(broker_url="redis://r", require_signatures=False).signatures_required
    assert Settings(broker_url=None, require_signatures=True).signatures_required
