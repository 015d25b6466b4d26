"""The measurements. Each fills the queue first, then starts a fresh worker and times the
drain from the first message taken to the last one done, so that publishing and worker
start-up are not counted; onboarding is timed end to end, from the command's start to its
final report, with the worker already running."""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cpu import CpuUse, since, snapshot
from bench.noop_worker import NOOP_TASK, TALLY_VARIABLE
from bench.stack import REPO, Stack, Worker, start_worker, wait_drained
from models import tables as t
from models.bulk import AssignDevices
from models.commands import AssignDevice
from producers.client import Client, build


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 2
    pool: str = "prefork"
    log_level: str = "INFO"

    def custody_args(self) -> list[str]:
        return [
            "cli",
            "worker",
            "-c",
            str(self.concurrency),
            "--pool",
            self.pool,
            "-l",
            self.log_level,
        ]

    def noop_args(self) -> list[str]:
        return ["bench.noop_worker", str(self.concurrency), self.pool, self.log_level]


@dataclass
class Measure:
    backend: str
    scenario: str
    count: int
    unit: str  # what is counted: tasks, commands, items, rows
    seconds: float
    rss_main_mib: float
    rss_child_mib: float
    cpu: CpuUse | None = None
    batch_size: int | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else math.inf

    def to_json(self) -> dict[str, Any]:
        cpu = self.cpu.__dict__ if self.cpu else None
        return {**self.__dict__, "cpu": cpu, "rate": round(self.rate, 1)}


def _item(prefix: str, n: int) -> dict[str, Any]:
    """One assignment as onboarding pipelines send them: a new device, its own customer and
    a customer shared with other devices."""
    return {
        "deviceIdentifier": f"{prefix}-{n:08d}",
        "customerEmails": [f"user{n}.{prefix}@example.com", f"family{n % 997}@example.org"],
        "autoCreateDevice": True,
        "deviceType": "Lock",
    }


def _client(stack: Stack, org: str) -> Client:
    return Client.from_settings(stack.settings, organization=org, signing_key=stack.keys.get(org))


def _drain(
    stack: Stack,
    args: list[str],
    name: str,
    total: int,
    done: Any,
    env: dict[str, str] | None = None,
) -> tuple[float, Worker, CpuUse]:
    """Start a worker on the filled queue, time the drain, measure the CPU it took."""
    worker = start_worker(stack, args, name=name, env=env)
    before = []
    try:
        started, ended = wait_drained(
            stack,
            worker,
            total,
            done=done,
            on_start=lambda: before.append(snapshot(worker.pids(), stack.database)),
        )
        cpu = since(before[0], worker.pids(), stack.database)
    except BaseException:
        worker.stop()
        raise
    return ended - started, worker, cpu


def noop(stack: Stack, options: WorkerOptions, count: int) -> Measure:
    """(a) The ceiling: a task that does nothing, same broker and worker settings."""
    stack.clear_queue()
    tally = stack.home / "noop.tally"
    tally.unlink(missing_ok=True)
    with _client(stack, "bench") as client:
        for n in range(count):
            client.publish_raw(NOOP_TASK, {"n": n})
    stack.env[TALLY_VARIABLE] = str(tally)
    seconds, worker, cpu = _drain(
        stack,
        options.noop_args(),
        "noop-worker",
        count,
        lambda: tally.exists() and tally.stat().st_size >= count,
    )
    rss = worker.peak_rss_mib()
    worker.stop()
    return Measure(stack.name, "Celery no-op task (ceiling)", count, "tasks", seconds, *rss, cpu)


def singles(stack: Stack, options: WorkerOptions, count: int, *, coalesce: bool = True) -> Measure:
    """(b) One assign_device per message; without ``coalesce``, each in a transaction of
    its own, handed to a pool process on its own (``CUSTODY_COALESCE_MAX=1``)."""
    stack.clear_queue()
    org = stack.new_org("single")
    with _client(stack, org) as client:
        for n in range(count):
            fields = _item("S", n)
            command = build(
                AssignDevice,
                request_id=f"single-{n}",
                organization_id=org,
                device_identifier=fields["deviceIdentifier"],
                customer_emails=fields["customerEmails"],
                auto_create_device=True,
                device_type="Lock",
            )
            client.publish(command)
    seconds, worker, cpu = _drain(
        stack,
        options.custody_args(),
        "single-worker",
        count,
        lambda: stack.processed(org) >= count,
        env=None if coalesce else {"CUSTODY_COALESCE_MAX": "1"},
    )
    rss = worker.peak_rss_mib()
    worker.stop()
    owners = stack.rows(t.ownerships, org)
    assert owners == 2 * count, f"expected {2 * count} owner rows, found {owners}"
    scenario = "assign_device, one per message" + ("" if coalesce else ", coalescing off")
    return Measure(stack.name, scenario, count, "commands", seconds, *rss, cpu)


def batches(stack: Stack, options: WorkerOptions, batch_size: int, items: int) -> Measure:
    """(c) assign_devices carrying ``batch_size`` items per message."""
    stack.clear_queue()
    org = stack.new_org(f"bulk{batch_size}")
    messages = math.ceil(items / batch_size)
    with _client(stack, org) as client:
        for m in range(messages):
            chunk = [
                _item(f"B{batch_size}", n)
                for n in range(m * batch_size, min(items, (m + 1) * batch_size))
            ]
            command = build(AssignDevices, request_id=f"bulk-{m}", organization_id=org, items=chunk)
            client.publish(command)
    seconds, worker, cpu = _drain(
        stack,
        options.custody_args(),
        f"bulk{batch_size}-worker",
        messages,
        lambda: stack.processed(org) >= messages,
    )
    rss = worker.peak_rss_mib()
    worker.stop()
    owners = stack.rows(t.ownerships, org)
    assert owners == 2 * items, f"expected {2 * items} owner rows, found {owners}"
    return Measure(
        stack.name,
        f"assign_devices, {batch_size} item(s) per message",
        items,
        "items",
        seconds,
        *rss,
        cpu,
        batch_size=batch_size,
    )


def write_fleet(path: Path, rows: int) -> Path:
    with path.open("w", buffering=1 << 20) as out:
        out.write("deviceIdentifier,customerEmails,deviceType\n")
        for n in range(rows):
            out.write(f"F-{n:09d},user{n}@example.com;family{n % 997}@example.org,Lock\n")
    return path


def onboarding(stack: Stack, options: WorkerOptions, rows: int) -> Measure:
    """(d) ``custody onboard FILE --wait``, end to end, against a running worker."""
    stack.clear_queue()
    org = stack.new_org("onboard")
    path = write_fleet(stack.home / f"fleet-{rows}.csv", rows)
    worker = start_worker(stack, options.custody_args(), name="onboard-worker")
    try:
        _wait_serving(stack)
        env = {**stack.env, "CUSTODY_ORGANIZATION": org}
        if org in stack.keys:  # the onboarding command signs as the organization
            env["CUSTODY_KEY_ID"] = stack.keys[org].key_id
            env["CUSTODY_KEY_SECRET"] = stack.keys[org].secret
        before = snapshot(worker.pids(), stack.database)
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli",
                "onboard",
                str(path),
                "--wait",
                "--json",
                "--no-progress",
                "--timeout",
                "600",
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = process.communicate()
        seconds = time.monotonic() - started
        cpu = since(before, worker.pids(), stack.database)
        producer = resource.getrusage(resource.RUSAGE_CHILDREN)
        producer_s = producer.ru_utime + producer.ru_stime - reaped.ru_utime - reaped.ru_stime
        rss = worker.peak_rss_mib()
    finally:
        worker.stop()
        path.unlink(missing_ok=True)
    if process.returncode != 0:
        raise RuntimeError(f"onboard exited with {process.returncode}: {err.decode()[-2000:]}")
    report = json.loads(out)
    assert report["assigned"] == rows, report
    return Measure(
        stack.name,
        "custody onboard FILE --wait (end to end)",
        rows,
        "rows",
        seconds,
        *rss,
        cpu,
        note=f"the onboard command itself used {producer_s:.0f} s of CPU",
    )


def _wait_serving(stack: Stack) -> None:
    """The worker serves once it answers a command (a 401 for an unknown organization)."""
    deadline = time.monotonic() + 120
    with _client(stack, "no-such-org") as client:
        while time.monotonic() < deadline:
            try:
                client.assign_device("probe", ["probe@example.com"], wait=True, timeout_s=2)
                return
            except TimeoutError:
                continue
    raise TimeoutError("the worker did not serve within 120s")


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
