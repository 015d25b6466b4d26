"""The ceiling: a Celery worker whose one task does nothing, configured exactly like the
custody worker (same broker, queue, pool, concurrency, prefetch, acknowledgement and
logging settings), minus custody's consumer, which would dead-letter an unknown task.

Run as ``python -m bench.noop_worker CONCURRENCY POOL LOGLEVEL``. Each call appends one
byte to the file named by ``CUSTODY_BENCH_NOOP_TALLY`` (one write system call, a few
microseconds against milliseconds of Celery's own work): the bench counts finished calls
by the file's size, on any broker.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from celery import Celery

from models.settings import Settings
from worker.app import celery_config, quiet_per_task_logs

NOOP_TASK = "bench.noop"
TALLY_VARIABLE = "CUSTODY_BENCH_NOOP_TALLY"


def create_app(settings: Settings) -> Celery:
    config = celery_config(settings)
    del config["worker_consumer"]
    app = Celery("custody-bench-noop", set_as_current=False)
    app.conf.update(config)

    tally: list[int] = []  # the file descriptor, opened in each pool process on first use

    @app.task(name=NOOP_TASK, acks_late=True, ignore_result=True, typing=False)  # type: ignore[untyped-decorator]
    def noop(*_: Any, **__: Any) -> None:
        if not tally:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            tally.append(os.open(os.environ[TALLY_VARIABLE], flags, 0o644))
        os.write(tally[0], b".")

    return app


def main() -> None:
    concurrency, pool, level = sys.argv[1], sys.argv[2], sys.argv[3].upper()
    settings = Settings()
    settings.prepare_home()
    app = create_app(settings)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_per_task_logs(level)
    app.worker_main(
        [
            "worker",
            "-Q",
            settings.commands_queue,
            "-c",
            concurrency,
            "-P",
            pool,
            "-l",
            level,
            "-n",
            f"bench-noop.{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


if __name__ == "__main__":
    main()
