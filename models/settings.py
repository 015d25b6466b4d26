"""custody's one settings object (environment prefix ``CUSTODY_``), built at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models import constants as c


class Settings(BaseSettings):
    """Everything configurable. With no variables set, the embedded default: SQLite and
    kombu's filesystem transport under ``./var``, no servers needed."""

    model_config = SettingsConfigDict(env_prefix="CUSTODY_", extra="ignore", frozen=True)

    home: Path = Field(default=Path("var"), description="folder of the embedded default's files")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///HOME/custody.db"
    )
    broker_url: str | None = Field(
        default=None, description="kombu URL (redis://, amqp://); default filesystem under HOME"
    )
    organization: str = Field(
        default=c.LOCAL_ORGANIZATION, description="organization the CLI publishes as"
    )
    commands_queue: str = c.COMMANDS_QUEUE
    events_exchange: str = c.EVENTS_EXCHANGE

    # Worker reliability (SPEC section 5).
    worker_concurrency: int = Field(default=2, ge=1)
    worker_pool: str = "prefork"
    prefetch_multiplier: int = Field(default=16, ge=1)
    coalesce_max: int = Field(
        default=100, ge=1, description="single assign_device commands per transaction; 1: off"
    )
    coalesce_wait_ms: float = Field(
        default=5.0, ge=0, description="how long a group waits for more while a process is free"
    )
    task_time_limit_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=8, ge=0)
    retry_backoff_base_s: float = Field(default=1.0, gt=0)
    retry_backoff_max_s: float = Field(default=60.0, gt=0)
    max_deliveries: int = Field(
        default=5, ge=1, description="deliveries without an outcome before dead-lettering"
    )
    lock_timeout_s: float | None = Field(
        default=None, ge=0, description="PostgreSQL lock_timeout; default a quarter of the limit"
    )
    visibility_timeout_margin_s: float = Field(
        default=300.0, gt=0, description="Redis visibility timeout above the limit + longest delay"
    )
    polling_interval_s: float = Field(default=0.05, gt=0, description="filesystem broker poll")
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per line, with requestId, event id"
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="serve Prometheus /metrics on this port"
    )

    # Signed commands (SPEC section 8).
    require_signatures: bool | None = Field(
        default=None,
        description="refuse unsigned commands; default on, off in the embedded default",
    )
    master_key: SecretStr | None = Field(
        default=None,
        description="seals signing secrets at rest; default for SQLite: HOME/master.key",
    )
    key_id: str | None = Field(default=None, description="signing key producers sign with")
    key_secret: SecretStr | None = Field(default=None, description="its secret")

    @property
    def signatures_required(self) -> bool:
        if self.require_signatures is not None:
            return self.require_signatures
        return not self.embedded

    # Events (SPEC section 4): the outbox relay and subscribers.
    worker_relay: bool | None = Field(
        default=None, description="run the relay inside `custody worker`; default: if embedded"
    )
    relay_batch_size: int = Field(default=100, ge=1, le=10_000)
    relay_poll_interval_s: float = Field(
        default=1.0, gt=0, description="longest wait for a commit signal before polling"
    )
    outbox_retention_s: float = Field(
        default=7 * 86_400.0, ge=0, description="sent outbox rows kept this long; 0 = forever"
    )
    subscriber_max_attempts: int = Field(default=5, ge=1, description="handler calls per event")
    subscriber_retry_backoff_s: float = Field(default=0.2, ge=0)
    subscriber_prefetch: int = Field(default=10, ge=1)
    subscriber_seen_ttl_s: float = Field(
        default=7 * 86_400.0, gt=0, description="how long event ids are kept for deduplication"
    )

    @property
    def relay_in_worker(self) -> bool:
        return self.embedded if self.worker_relay is None else self.worker_relay

    @property
    def embedded(self) -> bool:
        """True when the broker is the filesystem transport of the embedded default."""
        return self.resolved_broker_url.startswith("filesystem")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'custody.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://localhost/"

    @property
    def broker_transport(self) -> str | None:
        """kombu transport class to use for the broker URL (None: the URL's own). The
        embedded default's is safe for several processes (models/filesystem_broker.py)."""
        return "models.filesystem_broker:Transport" if self.embedded else None

    @property
    def broker_folder(self) -> Path:
        return (self.home / "broker").resolve()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.retry_backoff_base_s > self.retry_backoff_max_s:
            raise ValueError("retry_backoff_base_s must not exceed retry_backoff_max_s")
        if self.effective_lock_timeout_s >= self.soft_time_limit_s:
            raise ValueError(
                f"lock_timeout_s ({self.effective_lock_timeout_s:g}) must be below the soft "
                f"time limit ({self.soft_time_limit_s:g}s): a lock wait must end as a "
                "retryable fault, not as a time-limit dead letter"
            )
        return self

    @property
    def soft_time_limit_s(self) -> float:
        """When a command is interrupted and dead-lettered; the hard limit is the backstop."""
        return self.task_time_limit_s * 0.9

    @property
    def effective_lock_timeout_s(self) -> float:
        """How long one statement waits for a row lock before the attempt is retried."""
        if self.lock_timeout_s is not None:
            return self.lock_timeout_s
        return self.task_time_limit_s / 4

    @property
    def visibility_timeout_s(self) -> float:
        """How long Redis waits for an acknowledgement before handing a message out again.

        Above the hard time limit plus the longest retry delay (a retry waits in the worker
        that received it, unacknowledged, for up to ``retry_backoff_max_s``), with a margin:
        a message in progress or waiting for its retry is never handed to a second worker."""
        return self.task_time_limit_s + self.retry_backoff_max_s + self.visibility_timeout_margin_s

    @property
    def restore_interval_s(self) -> int:
        """How often workers look for messages whose visibility timeout passed."""
        return max(1, min(10, int(self.visibility_timeout_s / 10)))

    def broker_transport_options(self) -> dict[str, Any]:
        if self.embedded:
            folder = self.broker_folder
            return {
                "data_folder_in": str(folder / "queue"),
                "data_folder_out": str(folder / "queue"),
                "control_folder": str(folder / "control"),
                "store_processed": False,
                "polling_interval": self.polling_interval_s,
            }
        if self.resolved_broker_url.split(":", 1)[0] in {"amqp", "amqps", "pyamqp"}:
            # The broker acknowledges each publish: a command or reply is on the broker,
            # or the publisher hears that it is not.
            return {"confirm_publish": True}
        return {
            "visibility_timeout": self.visibility_timeout_s,
            # kombu sweeps every interval x throttle seconds: make it interval alone.
            "unacked_restore_interval": self.restore_interval_s,
            "unacked_restore_throttle": 1,
            # A sweep interrupted by a killed worker must not block the others for long.
            "unacked_mutex_expire": int(min(300.0, self.visibility_timeout_s)),
        }

    def prepare_home(self) -> None:
        """Create the embedded default's folders (a no-op for server-backed settings)."""
        if self.embedded:
            for sub in ("queue", "control"):
                (self.broker_folder / sub).mkdir(parents=True, exist_ok=True)
        if self.resolved_database_url.startswith("sqlite"):
            self.home.mkdir(parents=True, exist_ok=True)
