"""Prometheus metrics of workers and relays.

Pool children record into files under a shared folder (prometheus_client's multiprocess
mode); the worker's main process serves the sum over HTTP. ``prepare`` must run before
anything imports ``prometheus_client``, which is why this module imports it lazily.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OUTCOMES = ("applied", "replayed", "rejected", "failed")


def prepare(folder: Path) -> None:
    """Point every process of this worker at one fresh metrics folder."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


class Metrics:
    """The figures an operator graphs and alerts on."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.commands = Counter(
            "custody_commands_total", "Commands answered, by task and outcome.", ["task", "outcome"]
        )
        self.duration = Histogram(
            "custody_command_duration_seconds",
            "Time from receiving a command to its committed answer.",
            ["task"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.retries = Counter(
            "custody_command_retries_total", "Transient faults retried, by task.", ["task"]
        )
        self.dead_letters = Counter(
            "custody_dead_letters_total", "Messages stored as dead letters, by source.", ["source"]
        )
        self.events_published = Counter(
            "custody_events_published_total", "Events published by the relay, by type.", ["type"]
        )
        self.outbox_lag = Gauge(
            "custody_outbox_lag_seconds",
            "Age of the oldest unsent outbox row seen by a relay.",
            multiprocess_mode="max",
        )

    def command(self, task: str, outcome: str, duration_s: float) -> None:
        self.commands.labels(task, outcome).inc()
        self.duration.labels(task).observe(duration_s)


def serve(port: int, *, address: str = "0.0.0.0") -> Any:
    """Serve /metrics for every process of this worker (call in the main process)."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    return start_http_server(port, addr=address, registry=registry)


def process_exited(pid: int) -> None:
    """Drop a dead pool child's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


_metrics: Metrics | None = None


def metrics() -> Metrics:
    """This process's metrics, made on first use (after ``prepare``, after the fork)."""
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics


def observe_published(events: Sequence[Any]) -> None:
    """A relay batch went out: count it by type, and how old its oldest event was."""
    if not events:
        return
    m = metrics()
    for event in events:
        m.events_published.labels(event.type).inc()
    time = events[0].payload.get("time")
    if isinstance(time, str):
        sent = datetime.fromisoformat(time.replace("Z", "+00:00"))
        m.outbox_lag.set(max(0.0, (datetime.now(UTC) - sent).total_seconds()))
