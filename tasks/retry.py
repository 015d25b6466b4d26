"""The retry policy, in one place: only ``Transient`` faults are retried, with exponential
backoff and full jitter, up to a bound; then the command is dead-lettered."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 8
    base_s: float = 1.0
    max_s: float = 60.0

    def delay_s(self, retries_so_far: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``retries_so_far + 1``: uniform in [d/2, d],
        d = min(max_s, base_s * 2**retries_so_far)."""
        ceiling = min(self.max_s, self.base_s * (2**retries_so_far))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def exhausted(self, retries_so_far: int) -> bool:
        return retries_so_far >= self.max_retries
