"""Celery's prefork pool, hardened for what the fault suite found on a broker restart.

When the broker connection is lost, Celery terminates the pool processes running commands
(SPEC section 5: cancel long-running tasks on connection loss); a process terminated while
writing its result leaves half a message in its result pipe. Stock Celery then fails to
unpickle it while cleaning up after the process and treats that as unrecoverable: the whole
worker exits. Here the torn result is discarded (its command was cancelled anyway and comes
back through the visibility timeout) and the worker goes on.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any

from celery.concurrency import asynpool, prefork

log = logging.getLogger("custody.worker")


class AsynPool(asynpool.AsynPool):  # type: ignore[misc]
    def process_flush_queues(self, proc: Any) -> None:
        try:
            super().process_flush_queues(proc)
        except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError):
            log.warning("discarded a torn result of terminated pool process %s", proc.pid)


class TaskPool(prefork.TaskPool):  # type: ignore[misc]
    Pool = AsynPool


def pool_for(name: str) -> str:
    """The pool implementation for a pool name (prefork is the hardened one)."""
    return f"{__name__}:TaskPool" if name == "prefork" else name
