"""The forms of a fault run: how many commands, how fast, which faults strike when, and the
worker settings that make recovery observable in seconds."""

from __future__ import annotations

from dataclasses import dataclass

# Kinds of fault.
KILL = "kill -9 workers"
REDIS = "restart Redis"
POSTGRES = "stop PostgreSQL"


@dataclass(frozen=True)
class Fault:
    at_s: float  # after the first command is published
    kind: str
    down_s: float
    workers: tuple[int, ...] = ()

    def describe(self) -> str:
        which = f" {', '.join(str(w) for w in self.workers)}" if self.workers else ""
        return f"{self.kind}{which}"


@dataclass(frozen=True)
class Form:
    """How big a run is, how fast commands come, which faults strike when."""

    name: str
    commands: int
    rate_per_s: float
    workers: int
    concurrency: int
    devices: int
    emails: int
    faults: tuple[Fault, ...]
    settings: dict[str, float | int]  # worker settings (CUSTODY_…)
    quiet_timeout_s: float
    seed: int = 5


# Short timings so that recovery from kill -9 (the Redis visibility timeout) takes seconds.
SHORT = Form(
    name="short",
    commands=300,
    rate_per_s=25,
    workers=3,
    concurrency=2,
    devices=12,
    emails=30,
    faults=(
        Fault(2, KILL, 1.0, (0,)),
        Fault(4, REDIS, 1.0),
        Fault(6.5, POSTGRES, 4.0),
        Fault(8, REDIS, 1.0),  # while PostgreSQL is down: retries cannot be published
        Fault(12, KILL, 0.5, (1,)),
    ),
    settings={
        "task_time_limit_s": 5,
        "retry_backoff_base_s": 0.2,
        "retry_backoff_max_s": 2,
        "max_retries": 12,
        "visibility_timeout_margin_s": 3,
    },
    quiet_timeout_s=120,
)

LONG = Form(
    name="long",
    commands=5_000,
    rate_per_s=35,
    workers=3,
    concurrency=2,
    devices=150,
    emails=400,
    faults=(
        Fault(10, KILL, 3, (0,)),
        Fault(25, REDIS, 3),
        Fault(40, POSTGRES, 20),
        Fault(48, REDIS, 3),  # while PostgreSQL is down: retries cannot be published
        Fault(75, KILL, 3, (1, 2)),
        Fault(95, REDIS, 3),
        Fault(110, KILL, 3, (0,)),
        Fault(125, POSTGRES, 8),
        Fault(135, KILL, 2, (2,)),
    ),
    settings={
        "task_time_limit_s": 10,
        "retry_backoff_base_s": 0.5,
        "retry_backoff_max_s": 5,
        "max_retries": 15,
        "visibility_timeout_margin_s": 10,
    },
    quiet_timeout_s=600,
)
