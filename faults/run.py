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
from datetime import UTC, datetime
from pathlib import Path

import redis
from sqlalchemy.engine import Engine

from faults.invariants import (
    DEAD,
    OK,
    REJECTED,
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
from models.migrations import upgrade
from models.settings import Settings
from models.store import SqlUnitOfWork

KILL = "kill -9 workers"
REDIS = "restart Redis"
POSTGRES = "stop PostgreSQL"
PROBE_ORG = "probe"
# Seconds the broker must hold nothing before messages still without an outcome count as
# lost in flight and are sent again.
QUIET_POLLS = 5

Say = Callable[[str], None]


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
            **form.settings,  # type: ignore[arg-type]
        )
        say(f"private Redis on {broker.port}, PostgreSQL on {database.port}, in {folder}")
        organizations = _prepare_database(settings)
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


def _prepare_database(settings: Settings) -> list[str]:
    engine = create_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
        organizations = ["acme", "globex"]
        with SqlUnitOfWork(engine) as uow:
            for org in [*organizations, PROBE_ORG]:
                uow.organizations.add(org, org)
            uow.commit()
    finally:
        engine.dispose()
    return organizations


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
    }
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


def render(result: Result) -> str:
    """The run as Markdown: the summary table, then one row per fault."""
    v = result.verdict
    s = result.settings
    dupes = sum(v.duplicate_effects.values())
    recovery = result.recovery_s
    lines = [
        f"Fault run `{result.form.name}`: {v.sent} commands at {result.form.rate_per_s:g}/s, "
        f"{result.form.workers} workers x {result.form.concurrency} processes, "
        f"private Redis (append-only) and PostgreSQL; time limit {s.task_time_limit_s:g}s, "
        f"retries {s.max_retries} x {s.retry_backoff_base_s:g}-{s.retry_backoff_max_s:g}s, "
        f"visibility timeout {s.visibility_timeout_s:g}s; "
        f"{datetime.now(UTC):%Y-%m-%d}, {result.duration_s:.0f}s in all.",
        "",
        "| sent | applied | rejected | dead-lettered | lost | duplicate effects "
        "| redeliveries | recovery time |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {v.sent} | {v.classes[OK]} | {v.classes[REJECTED]} | {v.classes[DEAD]} "
        f"| {len(v.lost)} | {dupes} | {result.redeliveries} "
        f"| {_seconds(recovery)} |",
        "",
        f"Sent: {_kinds(v)}; {v.copies - v.sent} exact duplicates published on top. "
        f"Transient retries {result.retries}, answers replayed from the idempotency record "
        f"{result.replayed}, publishes retried by the producer {result.publish_retries}; "
        f"messages the broker lost in flight, sent again by the producer {len(result.resent)}. "
        f"Unexpected outcomes {len(v.unexpected)}; invariant violations "
        f"{sum(v.violations.values())}; workers alive at the end "
        f"{result.workers_alive}/{result.form.workers}, workers that exited on their own "
        f"(restarted by the supervisor) {result.worker_exits}; every message accounted for "
        f"{_seconds(result.quiet_after_s)} after the last fault ended.",
        "",
        "| fault | at | down for | commands flow again after | messages the killed workers "
        "held | handed out again after |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for st in result.struck:
        lines.append(
            f"| {st.fault.describe()} | {st.fault.at_s:g}s | {st.ended - st.started:.1f}s "
            f"| {_seconds(st.service_back_s)} | {len(st.in_flight) if st.in_flight else '-'} "
            f"| {_seconds(st.in_flight_back_s)} |"
        )
    problems = [
        *(
            f"{st.fault.describe()} at {st.fault.at_s:g}s: {st.error}"
            for st in result.struck
            if st.error
        ),
        *(f"lost: {x}" for x in v.lost[:10]),
        *(f"unexpected: {x}" for x in v.unexpected[:10]),
        *(f"{k}: {n}" for k, n in v.duplicate_effects.items() if n),
        *(f"{k}: {n}" for k, n in v.violations.items() if n),
    ]
    if problems:
        lines += ["", "Problems:", *(f"- {p}" for p in problems)]
    if result.resent:
        lines += ["", "Sent again by the producer:", *(f"- {r}" for r in result.resent[:20])]
    if result.exit_reasons:
        lines += ["", "Why workers exited:", *(f"- {r}" for r in result.exit_reasons)]
    if result.folder:
        lines += ["", f"Logs kept in {result.folder}"]
    return "\n".join(lines)


def _kinds(v: Verdict) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(v.kinds.items()))


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"
