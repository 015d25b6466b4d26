"""Per-process wiring: settings → engine → units of work. Connects on first use only."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from models import constants as c
from models.database import create_engine
from models.migrations import upgrade
from models.settings import Settings
from models.store import SqlUnitOfWork
from tasks.retry import RetryPolicy


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.retry_policy = RetryPolicy(
            max_retries=settings.max_retries,
            base_s=settings.retry_backoff_base_s,
            max_s=settings.retry_backoff_max_s,
        )
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.settings.resolved_database_url)
        return self._engine

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)

    def after_fork(self) -> None:
        """A forked child must not share its parent's connections."""
        if self._engine is not None:
            self._engine.dispose(close=False)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def prepare_embedded(self) -> None:
        """The embedded default works from nothing: folders, schema, the local organization."""
        self.settings.prepare_home()
        if self.engine.dialect.name == "sqlite":
            upgrade(self.engine)
            with self.uow() as uow:
                uow.organizations.add(c.LOCAL_ORGANIZATION, "Local organization")
                uow.commit()
