"""Pure domain rules: e-mail cleaning and naming, retry delays, event ids."""

from __future__ import annotations

import random

from models.domain import name_from_email, select_emails
from models.events import event_id
from tasks.retry import RetryPolicy


def test_emails_are_trimmed_lowercased_deduplicated_and_invalid_ones_kept_as_given():
    selection = select_emails([" Bob@Example.com", "bob@example.com", "bad", "", "c@d.org"])
    assert selection.valid == ["bob@example.com", "c@d.org"]
    assert selection.skipped == ["bad", ""]


def test_an_address_over_320_characters_is_skipped():
    long = "a" * 64 + "@" + ("b" * 60 + ".") * 5 + "com"
    assert len(long) > 320
    assert select_emails([long]).skipped == [long]


def test_a_new_customer_is_named_after_the_local_part():
    assert name_from_email("jane.doe+home@example.com") == "jane.doe+home"


def test_retry_delays_grow_exponentially_with_jitter_and_are_capped():
    policy = RetryPolicy(max_retries=5, base_s=1.0, max_s=10.0)
    rng = random.Random(7)
    for attempt, ceiling in [(0, 1), (1, 2), (2, 4), (3, 8), (4, 10), (9, 10)]:
        delays = [policy.delay_s(attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not fixed
    assert not policy.exhausted(4) and policy.exhausted(5)


def test_event_ids_are_stable_for_a_command_and_distinct_across_commands():
    assert event_id("o", "r1", 0) == event_id("o", "r1", 0)
    assert (
        len(
            {
                event_id("o", "r1", 0),
                event_id("o", "r1", 1),
                event_id("o", "r2", 0),
                event_id("p", "r1", 0),
            }
        )
        == 4
    )
