"""The embedded default's broker: kombu's filesystem transport, with messages written
atomically.

kombu writes a message file in place while a consumer may already list, move and read it:
a consumer that comes between the two reads a partial file, deletes it, and fails to
decode it, and the message is lost. Large messages (bulk commands and their results) make
this likely. Here a message is written under a name no consumer picks, then renamed into
place, which is atomic.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps

# What to give kombu (``Connection(transport=…)``) and Celery (``broker_transport``).
TRANSPORT = "models.filesystem_broker:Transport"


class Channel(filesystem.Channel):
    # kombu's own bases disagree on the second parameter's name (message, payload).
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")  # never matches a queue
        try:
            text: str = dumps(payload)  # type: ignore[no-untyped-call]
            with open(partial, "wb") as out:
                out.write(text.encode("utf-8"))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
