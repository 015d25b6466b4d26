"""Real ``custody worker`` processes, each in a process group of its own so that one kill -9
takes the whole worker (main process and pool) down, as a crashed machine would."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_RECEIVED = re.compile(r"Task [\w.]+\[([0-9a-f-]+)\] received")
_FINISHED = re.compile(r"Task [\w.]+\[([0-9a-f-]+)\] (?:succeeded|retry:|raised|requeued)")


_CONNECTED = "celery.worker.consumer.connection: Connected to "


def unfinished(log: str) -> set[str]:
    """Message ids a worker's log shows received and not finished since its latest
    connection to the broker: what it held before a reconnection the broker hands out
    again by itself (the visibility timeout), whether or not the worker is killed."""
    since = log[log.rfind(_CONNECTED) :] if _CONNECTED in log else log
    return set(_RECEIVED.findall(since)) - set(_FINISHED.findall(since))


@dataclass
class Worker:
    index: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    log_offset: int = 0  # where the log of the latest start begins

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Workers:
    """``count`` workers of ``concurrency`` pool processes each, sharing ``env``."""

    env: dict[str, str]
    folder: Path
    count: int
    concurrency: int
    workers: list[Worker] = field(default_factory=list)
    exits: list[tuple[int, int | None, float]] = field(default_factory=list)  # on their own
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _supervising: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.workers = [Worker(i, self.folder / f"worker-{i}.log") for i in range(self.count)]

    def supervise(self) -> None:
        """Restart a worker that exits on its own, as a process supervisor (the compose
        file's restart policy, systemd) does; each such exit is recorded."""
        self._supervising.set()

        def watch() -> None:
            while self._supervising.is_set():
                with self._lock:
                    for worker in self.workers:
                        if worker.process is not None and worker.process.poll() is not None:
                            self.exits.append(
                                (worker.index, worker.process.returncode, time.time())
                            )
                            self.start(worker.index)
                time.sleep(0.5)

        threading.Thread(target=watch, daemon=True).start()

    def start(self, index: int) -> None:
        with self._lock:
            self._start(index)

    def _start(self, index: int) -> None:
        worker = self.workers[index]
        env = {**self.env, "CUSTODY_HOME": str(self.folder / f"home-{index}")}
        worker.log_offset = worker.log.stat().st_size if worker.log.exists() else 0
        with worker.log.open("ab") as out:
            # DEBUG: the per-message "received" and "succeeded" lines tell which messages a
            # killed worker held.
            worker.process = subprocess.Popen(
                [sys.executable, "-m", "cli", "worker", "-c", str(self.concurrency), "-l", "DEBUG"],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker.starts += 1

    def start_all(self) -> None:
        for worker in self.workers:
            self.start(worker.index)

    def kill(self, index: int) -> set[str]:
        """kill -9 the worker and its pool processes at once; returns the ids of the
        messages it had received and not finished (what the broker must hand out again)."""
        with self._lock:
            worker = self.workers[index]
            if worker.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait()
                worker.process = None
            return unfinished(worker.log.read_bytes()[worker.log_offset :].decode(errors="replace"))

    def stop_all(self) -> None:
        self._supervising.clear()
        with self._lock:
            self._stop_all()

    def _stop_all(self) -> None:
        for worker in self.workers:
            if worker.process is not None:
                try:
                    os.killpg(worker.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 30
        for worker in self.workers:
            if worker.process is None:
                continue
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(worker.index)
            worker.process = None

    def wait_ready(self, *, timeout_s: float = 90) -> None:
        """Until every running worker logged that it is ready to consume."""
        deadline = time.monotonic() + timeout_s
        for worker in self.workers:
            if worker.process is None:
                continue
            while b" ready." not in worker.log.read_bytes()[worker.log_offset :]:
                if not worker.running:
                    raise RuntimeError(f"worker {worker.index} exited:\n{self.tail(worker)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker {worker.index} not ready:\n{self.tail(worker)}")
                time.sleep(0.2)

    def tail(self, worker: Worker, chars: int = 3000) -> str:
        return worker.log.read_text(errors="replace")[-chars:]

    def log_lines(self, needle: str) -> list[tuple[datetime | None, str]]:
        """Every log line of every worker containing ``needle``, with its timestamp."""
        found = []
        for worker in self.workers:
            for line in worker.log.read_text(errors="replace").splitlines():
                if needle in line:
                    match = _STAMP.match(line)
                    stamp = (
                        datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f") if match else None
                    )
                    found.append((stamp, line))
        return found
