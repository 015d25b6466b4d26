"""The retry policy, in one place.

What is retried: ``Transient`` faults (the store translates database faults into it: the
database unreachable, a deadlock, a serialization failure, a lock timeout) and broker faults
while a worker publishes (a retry or a reply). Nothing else: a validation or domain
rejection is a final answer and is never retried.

How: exponential backoff with jitter, up to a bound. A command whose transient fault
outlives its retries is dead-lettered; a publish that keeps failing leaves the message on
the broker.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger("custody.retry")

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 8
    base_s: float = 1.0
    max_s: float = 60.0

    def delay_s(self, retries_so_far: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``retries_so_far + 1``: uniform in [d/2, d],
        d = min(max_s, base_s * 2**retries_so_far). Never more than ``max_s``."""
        ceiling = min(self.max_s, self.base_s * 2.0 ** min(retries_so_far, 64))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def exhausted(self, retries_so_far: int) -> bool:
        return retries_so_far >= self.max_retries

    def longest_total_s(self) -> float:
        """The most time all retries together can wait."""
        return sum(
            (min(self.max_s, self.base_s * 2.0 ** min(n, 64)) for n in range(self.max_retries)),
            0.0,
        )

    def shortest_total_s(self) -> float:
        """The least time all retries together wait: the longest outage always survived."""
        return self.longest_total_s() / 2


def publish_policy(time_limit_s: float) -> RetryPolicy:
    """How a worker retries a publish (a retry message, a reply) that the broker refused.

    Four retries, all of them together well inside the time limit of the task publishing."""
    return RetryPolicy(max_retries=4, base_s=0.25, max_s=min(4.0, time_limit_s / 10))


def call_with_retries(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    retry_on: tuple[type[BaseException], ...],
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """``fn()``, called again after a backoff while it raises one of ``retry_on``;
    the last error propagates once the policy is exhausted. Anything else propagates at once.
    """
    retries = 0
    while True:
        try:
            return fn()
        except retry_on as exc:
            if policy.exhausted(retries):
                raise
            delay = policy.delay_s(retries, rng)
            log.warning("%s failed (%s); retry %d in %.2fs", what, exc, retries + 1, delay)
            sleep(delay)
            retries += 1
