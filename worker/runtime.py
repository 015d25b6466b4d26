"""Per-process wiring: settings → engine → units of work. Connects on first use only."""

from __future__ import annotations

import gc
from typing import Any

from sqlalchemy.engine import Engine

from models import constants as c
from models.database import create_engine
from models.errors import Misconfigured
from models.keystore import MasterKey, load_master_key
from models.migrations import upgrade
from models.settings import Settings
from models.store import KnownOrganizations, SqlUnitOfWork
from tasks.authenticate import Authenticator
from tasks.keys import ensure_local_key
from tasks.retry import RetryPolicy, publish_policy

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
        self.publish_policy = publish_policy(settings.task_time_limit_s)
        self._engine: Engine | None = None
        self._master_key: MasterKey | None = None
        self._authenticator: Authenticator | None = None
        self._known_organizations = KnownOrganizations()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            url = self.settings.resolved_database_url
            self._engine = create_engine(url, **_session_options(url, self.settings))
        return self._engine

    @property
    def master_key(self) -> MasterKey:
        """The master key that seals signing secrets; ``Misconfigured`` if there is none."""
        master_key = self._load_master_key()
        if master_key is None:
            raise Misconfigured(
                "no master key: set CUSTODY_MASTER_KEY (make one with `custody keys master-key`)"
            )
        return master_key

    @property
    def authenticator(self) -> Authenticator:
        """Checks signatures. Where they are required, there is no authenticator (and no
        worker) without the master key that opens them."""
        if self._authenticator is None:
            required = self.settings.signatures_required
            master_key = self.master_key if required else self._load_master_key()
            self._authenticator = Authenticator(master_key, required=required)
        return self._authenticator

    def _load_master_key(self) -> MasterKey | None:
        if self._master_key is None:
            self._master_key = load_master_key(self.settings)
        return self._master_key

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, known_organizations=self._known_organizations)

    # Metrics: recorded only where this process serves them (CUSTODY_METRICS_PORT).

    def observe(self, task: str, outcome: str, duration_s: float) -> None:
        if self.settings.metrics_port is not None:
            from worker.metrics import metrics

            metrics().command(task, outcome, duration_s)

    def observe_retry(self, task: str) -> None:
        if self.settings.metrics_port is not None:
            from worker.metrics import metrics

            metrics().retries.labels(task).inc()

    def observe_dead_letter(self, source: str) -> None:
        if self.settings.metrics_port is not None:
            from worker.metrics import metrics

            metrics().dead_letters.labels(source).inc()

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
        """The embedded default works from nothing: folders, schema, the local organization
        and its signing key (kept under CUSTODY_HOME for the CLI on this machine)."""
        self.settings.prepare_home()
        if self.engine.dialect.name == "sqlite":
            upgrade(self.engine)
            with self.uow() as uow:
                uow.organizations.add(c.LOCAL_ORGANIZATION, "Local organization")
                uow.commit()
            with self.uow() as uow:
                ensure_local_key(uow, self.master_key, self.settings.home)


def _session_options(url: str, settings: Settings) -> dict[str, Any]:
    """PostgreSQL sessions wait for a row lock at most ``lock_timeout``: a lock held too long
    ends the attempt as a retryable fault instead of running into the time limit."""
    if not url.startswith("postgresql"):
        return {}
    lock_timeout_ms = int(settings.effective_lock_timeout_s * 1000)
    return {"connect_args": {"options": f"-c lock_timeout={lock_timeout_ms}"}}
