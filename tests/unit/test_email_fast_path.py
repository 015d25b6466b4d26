"""The quick check of everyday e-mail addresses agrees with the full validator."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from models.domain import _is_plain_email, normalize_email

# Characters that make addresses interesting: the dot-atom set, separators, digits,
# a few that are never allowed, and some non-ASCII.
ALPHABET = "abcxyz0189.-_+@!#$%&'*/=?^`{|}~ \"(),:;<>[]\\éü"
LABELS = st.sampled_from(["com", "org", "io", "test", "local", "c0m", "x", "a-b", "xn--p1ai"])


def full_validator(email: str) -> str | None:
    email = email.strip().lower()
    if not email or len(email) > 320:
        return None
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return None
    return email


address_like = st.builds(
    lambda local, host, tld: f"{local}@{host}.{tld}",
    st.text(ALPHABET, min_size=0, max_size=70),
    st.text("abz09-.", min_size=0, max_size=70),
    LABELS,
)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(address_like, st.text(ALPHABET, max_size=40)))
def test_every_address_the_quick_check_accepts_the_full_validator_accepts(email):
    if _is_plain_email(email):
        validate_email(email, check_deliverability=False)  # raises if the quick check lied
    assert normalize_email(email) == full_validator(email)


def test_everyday_addresses_take_the_quick_path_and_odd_ones_the_full_one():
    assert _is_plain_email("jane.doe+home@mail.example.com")
    for odd in ["a@x.test", "a@host.local", "a--b@x.com", "a@xn--p1ai.com", "a@x.c0m", '"a"@x.com']:
        assert not _is_plain_email(odd)
    assert normalize_email("a@x.test") is None  # special-use domain, said by the full validator
    assert normalize_email(" A--B@Example.com") == "a--b@example.com"  # valid, the long way
