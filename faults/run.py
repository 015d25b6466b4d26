"""One fault run: private servers, several real workers, a stream of commands, faults on a
schedule, then the invariants once everything is quiet, and a table of what happened."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import redis
from sqlalchemy.engine import Engine

from faults.forms import KILL, POSTGRES, REDIS, Fault, Form
from faults.invariants import (
    Snapshot,
    Verdict,
    check,
    snapshot,
    unaccounted,
)
from faults.load import Publisher, Sent, plan, probe
from faults.servers import PrivatePostgres, PrivateRedis
from faults.workers import REPO, Workers
from models.database import create_engine
from models.keystore import MasterKey
from models.migrations import upgrade
from models.settings import Settings
from models.signing import SigningKey
from models.store import SqlUnitOfWork
from tasks.keys import create_key

PROBE_ORG = "probe"
# Seconds the broker must hold nothing before messages still without an outcome count as
# lost in flight and are sent again.
QUIET_POLLS = 5

Say = Callable[[str], None]


@dataclass
class Struck:
    """A fault as it happened."""

    fault: Fault
    started: float = 0.0  # wall clock
    ended: float = 0.0
    probe: Sent | None = None
    service_back_s: float | None = None  # fault over → a command sent then is applied
    in_flight: set[str] = field(default_factory=set)  # messages the killed workers held
    in_flight_back_s: float | None = None  # kill → the last of them handed out again
    error: str | None = None  # the fault could not be struck or undone


@dataclass
class Result:
    form: Form
    settings: Settings
    verdict: Verdict
    struck: list[Struck]
    redeliveries: int
    retries: int
    replayed: int
    publish_retries: int
    resent: list[str]  # lost in flight by the broker, sent again by the producer
    quiet_after_s: float | None  # the last fault over → every message accounted for
    workers_alive: int
    worker_exits: int  # workers that exited on their own (restarted by the supervisor)
    exit_reasons: list[str]
    duration_s: float
    folder: Path | None = None

    @property
    def recovery_s(self) -> float | None:
        times = [
            x for s in self.struck for x in (s.service_back_s, s.in_flight_back_s) if x is not None
        ]
        return max(times) if times else None

    @property
    def ok(self) -> bool:
        return (
            self.verdict.ok
            and self.workers_alive == self.form.workers
            and self.worker_exits == 0
            and self.quiet_after_s is not None
            and all(s.error is None and s.service_back_s is not None for s in self.struck)
        )


def run(form: Form, *, keep: bool = False, log: bool = True) -> Result:
    """Start everything, send, strike, wait for quiet, check; always tear down."""
    say: Say = print if log else (lambda _: None)
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix=f"custody-faults-{form.name}-"))
    broker = PrivateRedis(folder / "redis")
    database = PrivatePostgres()
    workers: Workers | None = None
    publisher: Publisher | None = None
    try:
        broker.start()
        database.start()
        settings = Settings(
            home=folder / "home",
            database_url=database.url,
            broker_url=broker.url,
            master_key=MasterKey.generate_text(),
            require_signatures=True,  # as in production: every command is signed
            **form.settings,  # type: ignore[arg-type]
        )
        say(f"private Redis on {broker.port}, PostgreSQL on {database.port}, in {folder}")
        keys = _prepare_database(settings)
        organizations = [org for org in keys if org != PROBE_ORG]
        env = _worker_env(settings)
        workers = Workers(env, folder / "workers", form.workers, form.concurrency)
        workers.start_all()
        workers.wait_ready()
        workers.supervise()
        say(f"{form.workers} workers x {form.concurrency} processes ready")

        sent = plan(
            commands=form.commands,
            organizations=organizations,
            seed=form.seed,
            devices=form.devices,
            emails=form.emails,
        )
        publisher = Publisher(
            settings.resolved_broker_url,
            settings.commands_queue,
            settings.broker_transport_options(),
            keys=keys,
        )
        struck = _send_under_faults(form, sent, publisher, broker, database, workers, say)
        last_fault_over = max((s.ended for s in struck), default=time.time())
        all_sent = sent + [s.probe for s in struck if s.probe is not None]
        say(f"{len(all_sent)} messages published; waiting for quiet")
        engine = create_engine(settings.resolved_database_url)
        try:
            quiet_after, resent = _settle(
                all_sent, engine, broker, settings, form, publisher, last_fault_over
            )
            snap = snapshot(engine)
        finally:
            engine.dispose()
        verdict = check(all_sent, snap)
        _time_recoveries(struck, snap, workers)
        result = Result(
            form=form,
            settings=settings,
            verdict=verdict,
            struck=struck,
            redeliveries=len(workers.log_lines("redelivered (delivery")),
            retries=len(workers.log_lines("transient fault, retry")),
            replayed=len(workers.log_lines("(replayed)")),
            publish_retries=publisher.publish_retries,
            resent=[f"{x.kind} {x.message_id} requestId {x.request_id}" for x in resent],
            quiet_after_s=quiet_after,
            workers_alive=sum(w.running for w in workers.workers),
            worker_exits=len(workers.exits),
            exit_reasons=sorted(
                {
                    line.split("Unrecoverable error: ")[1][:120]
                    for _, line in workers.log_lines("Unrecoverable error: ")
                }
            ),
            duration_s=time.monotonic() - started,
            folder=folder if keep else None,
        )
        return result
    finally:
        if publisher is not None:
            publisher.close()
        if workers is not None:
            workers.stop_all()
        database.close()
        broker.close()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _prepare_database(settings: Settings) -> dict[str, SigningKey]:
    """The organizations of the run, each with a signing key."""
    assert settings.master_key is not None
    master_key = MasterKey.from_text(settings.master_key.get_secret_value())
    engine = create_engine(settings.resolved_database_url)
    keys: dict[str, SigningKey] = {}
    try:
        upgrade(engine)
        with SqlUnitOfWork(engine) as uow:
            for org in ["acme", "globex", PROBE_ORG]:
                uow.organizations.add(org, org)
                keys[org] = create_key(uow, master_key, org)
            uow.commit()
    finally:
        engine.dispose()
    return keys


def _worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env |= {
        "PYTHONPATH": str(REPO),
        "CUSTODY_DATABASE_URL": settings.resolved_database_url,
        "CUSTODY_BROKER_URL": settings.resolved_broker_url,
        "CUSTODY_TASK_TIME_LIMIT_S": str(settings.task_time_limit_s),
        "CUSTODY_RETRY_BACKOFF_BASE_S": str(settings.retry_backoff_base_s),
        "CUSTODY_RETRY_BACKOFF_MAX_S": str(settings.retry_backoff_max_s),
        "CUSTODY_MAX_RETRIES": str(settings.max_retries),
        "CUSTODY_VISIBILITY_TIMEOUT_MARGIN_S": str(settings.visibility_timeout_margin_s),
        "CUSTODY_MAX_DELIVERIES": str(settings.max_deliveries),
        "CUSTODY_REQUIRE_SIGNATURES": "1",
    }
    if settings.master_key is not None:
        env["CUSTODY_MASTER_KEY"] = settings.master_key.get_secret_value()
    return env


def _send_under_faults(
    form: Form,
    sent: list[Sent],
    publisher: Publisher,
    broker: PrivateRedis,
    database: PrivatePostgres,
    workers: Workers,
    say: Say,
) -> list[Struck]:
    struck = [Struck(f) for f in form.faults]
    begin = time.monotonic()
    threads = [
        threading.Timer(s.fault.at_s, _strike, (s, publisher, broker, database, workers, say))
        for s in struck
    ]
    for thread in threads:
        thread.daemon = True
        thread.start()
    interval = 1.0 / form.rate_per_s
    for n, item in enumerate(sent):
        wait = begin + n * interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        publisher.send(item)
    for thread in threads:
        thread.join()
    return struck


def _strike(
    struck: Struck,
    publisher: Publisher,
    broker: PrivateRedis,
    database: PrivatePostgres,
    workers: Workers,
    say: Say,
) -> None:
    try:
        _strike_and_end(struck, broker, database, workers)
    except Exception as exc:
        struck.error = repr(exc)
        say(f"  {struck.fault.describe()} at {struck.fault.at_s:g}s failed: {exc!r}")
        return
    down_s = struck.ended - struck.started
    say(f"  {struck.fault.describe()} at {struck.fault.at_s:g}s, down {down_s:.1f}s")
    struck.probe = probe(PROBE_ORG, int(struck.fault.at_s * 1000))
    publisher.send(struck.probe)


def _strike_and_end(
    struck: Struck, broker: PrivateRedis, database: PrivatePostgres, workers: Workers
) -> None:
    """Strike the fault, wait its time, end it."""
    fault = struck.fault
    struck.started = time.time()
    if fault.kind == KILL:
        for index in fault.workers:
            struck.in_flight |= workers.kill(index)
        time.sleep(fault.down_s)
        for index in fault.workers:
            workers.start(index)
    elif fault.kind == REDIS:
        broker.stop()
        time.sleep(fault.down_s)
        broker.start()
    elif fault.kind == POSTGRES:
        database.stop(mode="immediate")
        time.sleep(fault.down_s)
        database.start()
    struck.ended = time.time()


def _settle(
    sent: list[Sent],
    engine: Engine,
    broker: PrivateRedis,
    settings: Settings,
    form: Form,
    publisher: Publisher,
    since: float,
) -> tuple[float | None, list[Sent]]:
    """Wait until every message has an outcome and the broker holds nothing (queue empty,
    nothing unacknowledged: no retry waiting, no message of a killed worker unrestored).

    When the broker has held nothing for a while and some messages still have no outcome,
    the broker lost them in flight: they are sent again, as a producer waiting for its
    results does when they do not come (the requestId makes that safe)."""
    client = redis.Redis.from_url(broker.url)
    deadline = time.monotonic() + form.quiet_timeout_s
    resent: list[Sent] = []
    idle_polls = 0
    try:
        while time.monotonic() < deadline:
            missing = unaccounted(sent, snapshot(engine))
            waiting = client.llen(settings.commands_queue) + client.hlen("unacked")
            if not missing and waiting == 0:
                return time.time() - since, resent
            idle_polls = idle_polls + 1 if waiting == 0 else 0
            if missing and idle_polls >= QUIET_POLLS:
                for item in missing:
                    publisher.send(item, copies=1)
                resent += missing
                idle_polls = 0
            time.sleep(1.0)
    finally:
        client.close()
    return None, resent


def _time_recoveries(struck: list[Struck], snap: Snapshot, workers: Workers) -> None:
    processed = snap.processed
    for s in struck:
        if s.probe is not None:
            row = processed.get((PROBE_ORG, s.probe.request_id))
            if row is not None:
                s.service_back_s = max(0.0, row.created_at.timestamp() - s.ended)
        if s.in_flight:
            s.in_flight_back_s = _back_after(s, workers)


def _back_after(struck: Struck, workers: Workers) -> float | None:
    """Seconds from the kill until the last message the killed workers held was handed
    out again (redelivered, or its retry received), per the worker logs."""
    killed = datetime.fromtimestamp(struck.started)
    first_seen: dict[str, datetime] = {}
    for needle in ("redelivered (delivery", "] received"):
        for stamp, line in workers.log_lines(needle):
            if stamp is None or stamp <= killed:
                continue
            for message_id in struck.in_flight:
                if message_id in line and stamp < first_seen.get(message_id, datetime.max):
                    first_seen[message_id] = stamp
    if not first_seen:
        return None
    return max((x - killed).total_seconds() for x in first_seen.values())
