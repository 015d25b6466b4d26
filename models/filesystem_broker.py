"""The embedded default's broker: kombu's filesystem transport, made safe for several
processes.

kombu's own transport creates a message file empty and writes it afterwards, while readers
take any file they see: a reader can take a message before it is written, and a worker that
reads half a message stops ("Unrecoverable error"). Here a message file appears whole
(written aside, then renamed into the queue folder); a reader claims a file by renaming it
and waits for the writer's lock, so messages from plain kombu writers are read whole too;
and a file that still does not parse is moved to ``broken/`` beside the queue, never lost,
while the worker goes on. A reader lists the folder once and takes the names it found in
order until none is left, instead of listing (and sorting) every file for each message it
takes, which made a queue of n messages cost n² to drain. And a consumer whose prefetch
limit is reached waits for an acknowledgement, not for the whole polling interval: a
worker holding a group of commands takes the next messages as soon as the group is done.
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
import threading
import time
import uuid
from collections import deque
from queue import Empty
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils import encoding, json

_dumps: Any = json.dumps  # kombu's JSON (it knows datetimes, UUIDs, …), untyped
_loads: Any = json.loads
_text: Any = encoding.bytes_to_str
_bytes: Any = encoding.str_to_bytes
_lock: Any = filesystem.lock
_unlock: Any = filesystem.unlock

log = logging.getLogger("custody.broker")

READ_ATTEMPTS = 5  # reads of a claimed file that does not parse yet (its writer is late)
READ_RETRY_S = 0.05


# Digits of the millisecond clock reading that starts a message file's name: zero-padded,
# so that names sort in the order they were written (readers take the first name), also
# across a digit-count boundary (9,999,999 -> 10,000,000 ms); 15 digits last 31,000 years.
NAME_CLOCK_DIGITS = 15
# Then this process's count of messages put, so that one writer's messages of the same
# millisecond also sort in the order they were put.
_PUT_COUNT = itertools.count()


def message_name(clock_ms: int, queue: str) -> str:
    """The file name of a message put at ``clock_ms`` (a monotonic clock reading)."""
    return f"{clock_ms:0{NAME_CLOCK_DIGITS}d}_{next(_PUT_COUNT):012d}_{uuid.uuid4()}.{queue}.msg"


class Channel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        name = message_name(round(time.monotonic() * 1000), queue)
        folder = self.data_folder_out
        try:
            fd, temporary = tempfile.mkstemp(dir=folder, prefix=".writing-")
        except OSError as exc:
            raise ChannelError(f"Cannot add a message to {folder!r}") from exc
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(_bytes(_dumps(payload)))
            os.replace(temporary, os.path.join(folder, name))
        except OSError as exc:
            raise ChannelError(f"Cannot add a message to {folder!r}") from exc
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._listed: dict[str, deque[str]] = {}  # queue -> names seen, not yet taken

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        folder = self.data_folder_in
        names = self._listed.setdefault(queue, deque())
        listed_now = False
        while True:
            if not names:
                if listed_now:
                    raise Empty()
                wanted = f"{queue}.msg"
                names.extend(sorted(n for n in os.listdir(folder) if n.partition(".")[2] == wanted))
                listed_now = True
                continue
            name = names.popleft()
            claimed = os.path.join(folder, f".reading-{uuid.uuid4()}-{name}")
            try:
                os.rename(os.path.join(folder, name), claimed)
            except OSError:
                continue  # another reader took it
            message = self._read(claimed)
            if message is not None:
                os.unlink(claimed)
                return message
            self._set_aside(claimed, name)

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)  # type: ignore[no-untyped-call]
        self.connection.settled.set()

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue)  # type: ignore[no-untyped-call]
        self.connection.settled.set()

    def _read(self, path: str) -> Any:
        for _ in range(READ_ATTEMPTS):
            with open(path, "rb") as f:
                _lock(f, filesystem.LOCK_SH)  # waits while a writer holds its lock
                try:
                    payload = f.read()
                finally:
                    _unlock(f)
            try:
                return _loads(_text(payload))
            except ValueError:
                time.sleep(READ_RETRY_S)
        return None

    def _set_aside(self, path: str, name: str) -> None:
        broken = os.path.join(os.path.dirname(os.path.abspath(self.data_folder_in)), "broken")
        os.makedirs(broken, exist_ok=True)
        os.replace(path, os.path.join(broken, name))
        log.error("message file %s is not a message; kept in %s", name, broken)


class Transport(filesystem.Transport):
    Channel = Channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.settled = threading.Event()  # a message was acknowledged or rejected

    def drain_events(self, connection: Any, timeout: Any = None) -> None:  # type: ignore[override]
        """kombu's loop, except that the pause after finding nothing to take (the queue
        empty, or the prefetch limit reached) ends early when a message is settled."""
        started = time.monotonic()
        cycle: Any = self.cycle
        interval = self.polling_interval
        if timeout and interval and interval > timeout:
            interval = timeout
        while True:
            self.settled.clear()
            try:
                cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                if timeout is not None and time.monotonic() - started >= timeout:
                    raise TimeoutError() from None
                if interval is not None:
                    self.settled.wait(interval)
