"""The embedded default's broker: kombu's filesystem transport, made safe for several
processes.

kombu's own transport creates a message file empty and writes it afterwards, while readers
take any file they see: a reader can take a message before it is written, and a worker that
reads half a message stops ("Unrecoverable error"). Here a message file appears whole
(written aside, then renamed into the queue folder); a reader claims a file by renaming it
and waits for the writer's lock, so messages from plain kombu writers are read whole too;
and a file that still does not parse is moved to ``broken/`` beside the queue, never lost,
while the worker goes on.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
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


def message_name(clock_ms: int, queue: str) -> str:
    """The file name of a message put at ``clock_ms`` (a monotonic clock reading)."""
    return f"{clock_ms:0{NAME_CLOCK_DIGITS}d}_{uuid.uuid4()}.{queue}.msg"


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

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        wanted = f"{queue}.msg"
        folder = self.data_folder_in
        for name in sorted(os.listdir(folder)):
            if name.partition(".")[2] != wanted:
                continue
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
        raise Empty()

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
