"""Per-process wiring: settings → engine → units of work. Connects on first use only."""

from __future__ import annotations

import gc

from sqlalchemy.engine import Engine

from models import constants as c
from models.database import create_engine
from models.migrations import upgrade
from models.settings import Settings
from models.store import KnownOrganizations, SqlUnitOfWork
from tasks.retry import RetryPolicy

# Collector thresholds for a process that applies commands: objects live for one command,
# and a batch allocates hundreds of thousands of them. With Python's default (700, 10, 10)
# the collector runs thousands of times per batch, a fifth of the worker's time.
GC_THRESHOLDS = (50_000, 20, 20)


def settle_memory() -> None:
    """Once start-up is over: move every object made so far (modules, the app, the engine)
    out of the collector's sight, so collections only walk what commands allocate and pages
    shared with the parent after fork stay shared; then collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.retry_policy = RetryPolicy(
            max_retries=settings.max_retries,
            base_s=settings.retry_backoff_base_s,
            max_s=settings.retry_backoff_max_s,
        )
        self._engine: Engine | None = None
        self._known_organizations = KnownOrganizations()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.settings.resolved_database_url)
        return self._engine

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, known_organizations=self._known_organizations)

    def after_fork(self) -> None:
        """A forked child must not share its parent's connections."""
        if self._engine is not None:
            self._engine.dispose(close=False)
        settle_memory()

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
