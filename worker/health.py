"""Health checks for probes: database, schema version, broker, outbox lag, dead letters."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kombu import Connection

from models.migrations import current_revision, head_revision
from models.settings import Settings
from models.store import health_figures
from worker.runtime import Runtime


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)


def check_all(
    settings: Settings, runtime: Runtime, *, max_outbox_lag_s: float = 60.0, timeout_s: float = 5.0
) -> list[Check]:
    checks = [_database(runtime, max_outbox_lag_s), _broker(settings, timeout_s)]
    return checks


def _database(runtime: Runtime, max_outbox_lag_s: float) -> Check:
    started = time.monotonic()
    try:
        current, head = current_revision(runtime.engine), head_revision()
        figures = health_figures(runtime.engine)
    except Exception as exc:
        return Check("database", False, f"unreachable: {_first_line(exc)}")
    figures.update(schema=current, schema_head=head, latency_ms=_ms(started))
    problems = []
    if current != head:
        problems.append(f"schema at {current}, code expects {head} (run custody db upgrade)")
    if figures["outbox_lag_s"] > max_outbox_lag_s:
        problems.append(f"outbox lag {figures['outbox_lag_s']:.0f}s > {max_outbox_lag_s:.0f}s")
    detail = "; ".join(problems) or (
        f"schema {current}, outbox unsent {figures['outbox_unsent']} "
        f"(lag {figures['outbox_lag_s']:.1f}s), dead letters {figures['dead_letters']}"
    )
    return Check("database", not problems, detail, figures)


def _broker(settings: Settings, timeout_s: float) -> Check:
    started = time.monotonic()
    try:
        with Connection(
            settings.resolved_broker_url,
            transport_options=settings.broker_transport_options(),
            connect_timeout=timeout_s,
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
            queue = conn.default_channel.queue_declare(settings.commands_queue, passive=False)
    except Exception as exc:
        return Check("broker", False, f"unreachable: {_first_line(exc)}")
    figures = {"commands_waiting": queue.message_count, "latency_ms": _ms(started)}
    return Check("broker", True, f"{queue.message_count} command(s) waiting", figures)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
