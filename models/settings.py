"""custody's one settings object (environment prefix ``CUSTODY_``), built at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
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
    prefetch_multiplier: int = Field(default=4, ge=1)
    task_time_limit_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=8, ge=0)
    retry_backoff_base_s: float = Field(default=1.0, gt=0)
    retry_backoff_max_s: float = Field(default=60.0, gt=0)
    polling_interval_s: float = Field(default=0.05, gt=0, description="filesystem broker poll")
    log_level: str = "INFO"

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
        """The kombu transport class to use instead of the URL's scheme, if any: the
        embedded default writes message files atomically (``models.filesystem_broker``)."""
        return "models.filesystem_broker:Transport" if self.embedded else None

    @property
    def broker_folder(self) -> Path:
        return (self.home / "broker").resolve()

    @property
    def visibility_timeout_s(self) -> float:
        """Above the hard time limit plus the longest retry delay, with a margin."""
        return self.task_time_limit_s + self.retry_backoff_max_s + 300.0

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
        return {"visibility_timeout": self.visibility_timeout_s}

    def prepare_home(self) -> None:
        """Create the embedded default's folders (a no-op for server-backed settings)."""
        if self.embedded:
            for sub in ("queue", "control"):
                (self.broker_folder / sub).mkdir(parents=True, exist_ok=True)
        if self.resolved_database_url.startswith("sqlite"):
            self.home.mkdir(parents=True, exist_ok=True)
