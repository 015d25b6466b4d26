"""Event latency at a steady command rate on Redis + PostgreSQL with a relay.

    .venv/bin/python bench/event_latency.py                 # 100 commands/s for 25 s
    .venv/bin/python bench/event_latency.py --in-process    # the same without the worker

Starts its own Redis (a private redis-server on a free port), creates a PostgreSQL database
of its own on the local server (dropped afterwards), a `custody relay` and, unless
``--in-process``, a `custody worker` (no relay inside). A producer publishes
assign_device commands at a steady rate, each creating one device and so one
`device.assigned` event; a `Subscriber` in a process of its own receives them. Printed,
for the events of the measured period (the first seconds are warm-up):

- command -> subscriber: from publishing the command to the subscriber's handler call
  (includes the time the command waits on the queue if the worker falls behind)
- commit -> subscriber: from the event's `time` (the transaction's clock, read as it
  began) to the handler call: commit, relay wake-up, publication, broker, subscriber

With ``--backlog N`` it measures the relay's own rate instead: N committed events wait in
the outbox before the relay starts, and the time until the subscriber has them all is
printed.

With ``--in-process`` the commands are applied by a process of the benchmark (the same
pipeline the worker runs, four threads) instead of a Celery worker, so the database sees
the steady rate even on a machine too busy to run the worker that fast; it also prints
committed -> subscriber, from the moment the transaction returned to the handler call.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from models.commands import AssignDevice  # noqa: E402
from models.database import create_engine  # noqa: E402
from models.migrations import upgrade  # noqa: E402
from models.settings import Settings  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get(
    "CUSTODY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ORG = "bench"
APPLY_THREADS = 4


def command(request_id: str) -> AssignDevice:
    return AssignDevice(
        request_id=request_id,
        organization_id=ORG,
        device_identifier=f"SN-{request_id}",
        customer_emails=["owner@example.com"],
        auto_create_device=True,
        device_type="Bench",
    )


# -- the roles run in processes of their own ----------------------------------------------


def run_subscriber(out: Path, expected: int) -> None:
    """Receive events; write one JSON line per event: requestId, event time, received."""
    from subscribers import Subscriber

    settings = Settings()
    lines = out.open("w", buffering=1)
    count = 0

    def handle(event) -> None:
        nonlocal count
        received = time.time()
        lines.write(json.dumps([event.correlationid, event.time.timestamp(), received]) + "\n")
        count += 1

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    subscriber = Subscriber.from_settings(settings, "bench", ["#"], handle)
    subscriber.declare()
    (out.parent / "subscriber.ready").touch()
    subscriber.consume(stop=stop, until=lambda: count >= expected)
    subscriber.delete()
    subscriber.close()


def run_producer(out: Path, rate: float, duration_s: float, in_process: bool) -> None:
    """Publish (or apply) commands at ``rate``; one JSON line each: requestId, sent[, done]."""
    total = int(rate * duration_s)
    lines = out.open("w", buffering=1)
    lock = threading.Lock()
    started = time.monotonic() + 0.5
    if not in_process:
        from producers.client import Client

        with Client.from_settings(Settings(), organization=ORG) as client:
            for n in range(total):
                pause = started + n / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                request_id = f"bench-{n:06d}"
                sent = time.time()
                client.publish(command(request_id))
                lines.write(json.dumps([request_id, sent]) + "\n")
        return

    from models.store import make_uow_factory
    from tasks.pipeline import Delivery, process

    engine = create_engine(Settings().resolved_database_url, pool_size=APPLY_THREADS)
    uow = make_uow_factory(engine)

    def apply(first: int) -> None:
        for n in range(first, total, APPLY_THREADS):
            pause = started + n / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            request_id = f"bench-{n:06d}"
            sent = time.time()
            process(
                Delivery(AssignDevice.task_name, request_id, command(request_id).to_wire()), uow
            )
            done = time.time()
            with lock:
                lines.write(json.dumps([request_id, sent, done]) + "\n")

    threads = [threading.Thread(target=apply, args=(k,)) for k in range(APPLY_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()


def drain_backlog(count: int, url: str, folder: Path, spawn, me: str, received_file: Path) -> None:
    """N events committed first, then one relay: how fast it moves them to a subscriber."""
    from models.domain import DeviceAssigned, OwnerRef
    from models.events import to_cloud_event
    from models.ports import OutboxRecord
    from models.store import SqlUnitOfWork

    engine = create_engine(url)
    owner = OwnerRef(1, "owner@example.com")
    with SqlUnitOfWork(engine) as uow:
        records = []
        for n in range(count):
            fact = DeviceAssigned(f"SN-{n % 100}", n % 100, False, [owner], [owner])
            event = to_cloud_event(
                fact, organization_id=ORG, request_id=f"b-{n}", sequence=0, time=uow.now
            )
            records.append(OutboxRecord(event.id, ORG, event.type, event.subject, event.to_wire()))
        uow.outbox.add(records)
        uow.commit()
    engine.dispose()
    subscriber = spawn(
        me,
        "--role",
        "subscriber",
        "--out",
        str(received_file),
        "--backlog",
        str(count),
        log="subscriber.log",
    )
    wait_for(folder / "subscriber.ready", 60, "subscriber")
    started = time.time()
    spawn("-m", "cli", "relay", log="relay.log")
    subscriber.wait(timeout=600)
    received = read_lines(received_file)
    last = max(row[2] for row in received)
    print(
        f"backlog of {count} events: the subscriber had {len(received)} after "
        f"{last - started:.1f}s from the relay's start ({len(received) / (last - started):.0f}"
        "/s, relay start-up included; batches of 100)"
    )
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (shared)")


# -- the orchestration ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("redis-server did not start")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def describe(name: str, values_s: list[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return (
        f"{name:<24} median {statistics.median(ms):8.1f} ms   p99 {percentile(ms, 0.99):8.1f} ms"
        f"   max {max(ms):8.1f} ms"
    )


def wait_for(path: Path, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not ready within {timeout_s:g}s")
        time.sleep(0.05)


def read_lines(path: Path) -> list[list]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="commands per second")
    parser.add_argument("--duration", type=float, default=25.0, help="seconds of publishing")
    parser.add_argument("--warmup", type=float, default=3.0, help="first seconds not measured")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--in-process", action="store_true", help="no worker: apply here")
    parser.add_argument("--backlog", type=int, default=0, help="measure draining N events")
    parser.add_argument("--role", choices=["subscriber", "producer"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    total = args.backlog or int(args.rate * args.duration)
    if args.role == "subscriber":
        return run_subscriber(args.out, total)
    if args.role == "producer":
        return run_producer(args.out, args.rate, args.duration, args.in_process)

    folder = Path(tempfile.mkdtemp(prefix="custody-bench-"))
    database = f"custody_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=database).render_as_string(hide_password=False)
    redis_server, redis_url = start_redis(folder)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        engine = create_engine(url)
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO organizations (id, name, created_at) VALUES (:o, :o, now())"),
                {"o": ORG},
            )
        engine.dispose()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
        env.update(
            CUSTODY_HOME=str(folder),
            CUSTODY_DATABASE_URL=url,
            CUSTODY_BROKER_URL=redis_url,
            CUSTODY_LOG_LEVEL="WARNING",
            PYTHONPATH=str(REPO),
        )

        def spawn(*argv: str, log: str) -> subprocess.Popen[bytes]:
            out = (folder / log).open("ab")
            process = subprocess.Popen(
                [sys.executable, *argv], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
            processes.append(process)
            return process

        me = str(Path(__file__).resolve())
        received_file, sent_file = folder / "received.jsonl", folder / "sent.jsonl"
        options = ["--rate", str(args.rate), "--duration", str(args.duration)]
        if args.backlog:
            return drain_backlog(args.backlog, url, folder, spawn, me, received_file)
        subscriber = spawn(
            me, "--role", "subscriber", "--out", str(received_file), *options, log="subscriber.log"
        )
        wait_for(folder / "subscriber.ready", 60, "subscriber")
        spawn("-m", "cli", "relay", log="relay.log")
        if not args.in_process:
            spawn(
                "-m", "cli", "worker", "-c", str(args.concurrency), "--no-relay", log="worker.log"
            )
            time.sleep(3)  # the worker's pool forks and connects
        producer = spawn(
            me,
            "--role",
            "producer",
            "--out",
            str(sent_file),
            *options,
            *(["--in-process"] if args.in_process else []),
            log="producer.log",
        )
        producer.wait()
        try:
            subscriber.wait(timeout=120)
        except subprocess.TimeoutExpired:
            subscriber.terminate()
            subscriber.wait(30)

        sent = {row[0]: row[1:] for row in read_lines(sent_file)}
        received = {row[0]: row[1:] for row in read_lines(received_file)}
        order = sorted(sent)
        measured = [r for r in order[int(args.warmup * args.rate) :] if r in received]
        missing = [r for r in order if r not in received]
        first_sent = min(v[0] for v in sent.values())
        last_sent = max(v[0] for v in sent.values())
        print(
            f"{len(sent)} commands at {(len(sent) - 1) / (last_sent - first_sent):.1f}/s for "
            f"{last_sent - first_sent:.1f}s, "
            + ("applied in process" if args.in_process else f"{args.concurrency} worker processes")
            + f", 1 relay, Redis + PostgreSQL; {len(missing)} event(s) missing; "
            f"first {args.warmup:g}s not measured (n={len(measured)})"
        )
        arrivals = sorted(received[r][1] for r in measured)
        if len(arrivals) > 1:
            per_s = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
            print(f"events handled per second: {per_s:.1f}")
        print(describe("command -> subscriber", [received[r][1] - sent[r][0] for r in measured]))
        print(describe("commit -> subscriber", [received[r][1] - received[r][0] for r in measured]))
        if args.in_process:
            print(
                describe("committed -> subscriber", [received[r][1] - sent[r][1] for r in measured])
            )
        print(
            f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} "
            "(shared with other work)"
        )
        if missing:
            raise SystemExit(f"{len(missing)} event(s) missing; logs in {folder}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        redis_server.terminate()
        redis_server.wait(10)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
