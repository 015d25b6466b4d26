"""A relay that dies right after publishing its first batch, before marking it sent.

Run as ``python -m tests.e2e.crashing_relay`` with the ``CUSTODY_`` settings of the stack
under test; it exits with ``CRASH_EXIT`` at that exact point, every time.
"""

from __future__ import annotations

import os
import time

from models.ports import PendingEvent
from models.settings import Settings
from worker.relay import relay_from_settings

CRASH_EXIT = 75


def die(events: list[PendingEvent]) -> None:
    os._exit(CRASH_EXIT)


def main() -> None:
    relay = relay_from_settings(Settings(), after_publish=die)
    deadline = time.monotonic() + 60
    while relay.run_once() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    raise SystemExit("found nothing to publish within 60s")


if __name__ == "__main__":
    main()
