"""The retry policy and the timing relations SPEC section 5 asks for: a message in progress or
waiting for its retry is never handed to a second worker, and a lock wait ends as a retryable
fault before the time limit."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from models.settings import Settings
from tasks.retry import RetryPolicy, call_with_retries, publish_policy
from worker.app import celery_config

REDIS = "redis://127.0.0.1:1/0"  # never connected to: only the configuration is read


class Flaky(Exception):
    pass


def test_a_call_that_keeps_failing_is_retried_with_growing_delays_then_gives_up():
    # Given a call that always fails with a retryable error
    calls, sleeps = [], []

    def fail():
        calls.append(1)
        raise Flaky("broker gone")

    policy = RetryPolicy(max_retries=3, base_s=0.5, max_s=1.5)
    # When it is called under the policy
    with pytest.raises(Flaky):
        call_with_retries(
            fail,
            policy=policy,
            retry_on=(Flaky,),
            what="t",
            sleep=sleeps.append,
            rng=random.Random(1),
        )
    # Then it ran 1 + max_retries times, waiting within the capped exponential ceilings
    assert len(calls) == 4
    assert [0.25 <= sleeps[0] <= 0.5, 0.5 <= sleeps[1] <= 1.0, 0.75 <= sleeps[2] <= 1.5] == [
        True
    ] * 3


def test_a_call_that_recovers_returns_its_value_after_the_retries_it_needed():
    attempts = iter([Flaky("a"), Flaky("b"), "done"])

    def flaky():
        value = next(attempts)
        if isinstance(value, Exception):
            raise value
        return value

    sleeps: list[float] = []
    result = call_with_retries(
        flaky, policy=RetryPolicy(5, 0.1, 1), retry_on=(Flaky,), what="t", sleep=sleeps.append
    )
    assert result == "done" and len(sleeps) == 2


def test_an_error_that_is_not_retryable_propagates_at_once():
    sleeps: list[float] = []

    def broken():
        raise ValueError("permanent")

    with pytest.raises(ValueError):
        call_with_retries(
            broken, policy=RetryPolicy(5), retry_on=(Flaky,), what="t", sleep=sleeps.append
        )
    assert sleeps == []


def test_the_totals_bound_what_all_retries_wait():
    policy = RetryPolicy(max_retries=4, base_s=1.0, max_s=3.0)
    assert policy.longest_total_s() == 1 + 2 + 3 + 3
    assert policy.shortest_total_s() == pytest.approx(4.5)
    assert RetryPolicy(max_retries=0).longest_total_s() == 0
    assert RetryPolicy(max_retries=200, base_s=1, max_s=2).delay_s(199) <= 2


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"task_time_limit_s": 5, "retry_backoff_base_s": 0.2, "retry_backoff_max_s": 2},
        {"task_time_limit_s": 600, "retry_backoff_max_s": 300, "visibility_timeout_margin_s": 1},
        {"task_time_limit_s": 10, "lock_timeout_s": 0},
    ],
)
def test_visibility_timeout_time_limits_and_retry_delays_are_consistent(overrides):
    settings = Settings(broker_url=REDIS, **overrides)
    policy = RetryPolicy(
        settings.max_retries, settings.retry_backoff_base_s, settings.retry_backoff_max_s
    )
    longest_delay = max(policy.delay_s(n) for n in range(50) for _ in range(20))
    # A retry waits unacknowledged in its worker; a command runs at most the hard limit:
    # Redis must not hand either to a second worker meanwhile.
    assert settings.visibility_timeout_s > settings.task_time_limit_s + longest_delay
    assert settings.visibility_timeout_s > settings.task_time_limit_s + policy.max_s
    # The soft limit (dead letter) comes before the hard limit (the process is killed),
    # and a lock wait ends (retryable) before the soft limit.
    assert settings.effective_lock_timeout_s < settings.soft_time_limit_s
    assert settings.soft_time_limit_s < settings.task_time_limit_s
    # A publish the broker refuses is retried well inside the time limit.
    assert publish_policy(settings.task_time_limit_s).longest_total_s() < (
        settings.soft_time_limit_s / 2
    )
    # And the worker is configured with exactly these values.
    config = celery_config(settings)
    options = config["broker_transport_options"]
    assert options["visibility_timeout"] == settings.visibility_timeout_s
    assert options["unacked_restore_throttle"] == 1
    assert options["unacked_restore_interval"] <= max(1, settings.visibility_timeout_s / 10)
    assert config["task_time_limit"] == settings.task_time_limit_s
    assert config["task_soft_time_limit"] == settings.soft_time_limit_s


def test_workers_keep_every_message_they_cannot_finish_on_the_broker():
    config = celery_config(Settings(broker_url=REDIS))
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["task_acks_on_timeout"] is False  # a hard time limit requeues, never drops
    assert config["worker_cancel_long_running_tasks_on_connection_loss"] is True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"task_time_limit_s": 10, "lock_timeout_s": 9.5}, "lock_timeout_s (9.5) must be below"),
        ({"retry_backoff_base_s": 10, "retry_backoff_max_s": 1}, "must not exceed"),
        ({"max_deliveries": 0}, "max_deliveries"),
        ({"visibility_timeout_margin_s": -1}, "visibility_timeout_margin_s"),
        ({"max_retries": "many"}, "max_retries"),
        ({"coalesce_max": 0}, "coalesce_max"),
        ({"coalesce_max": "lots"}, "coalesce_max"),
        ({"coalesce_wait_ms": -1}, "coalesce_wait_ms"),
        ({"prefetch_multiplier": 0}, "prefetch_multiplier"),
    ],
)
def test_inconsistent_reliability_settings_are_refused_with_a_clear_reason(overrides, message):
    with pytest.raises(ValidationError) as caught:
        Settings(broker_url=REDIS, **overrides)
    assert message in str(caught.value)
