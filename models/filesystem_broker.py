"""The embedded default's broker: kombu's filesystem transport with atomic writes.

kombu writes a message by creating its file and then filling it, so a consumer in another
process can pick the file up while it is still empty and fail to decode it (the message is
lost and a Celery worker stops). Here a message is written under a temporary name and
renamed into place, so it appears in the queue folder only once it is complete.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Put a message on ``queue``: same file name and content as kombu's, atomically."""
        folder = self.data_folder_out
        # The name kombu's reader selects on: ``<milliseconds>_<uuid>.<queue>.msg``.
        final = os.path.join(folder, f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg")
        # A name no reader selects (it holds no ``.<queue>.msg`` part).
        temporary = os.path.join(folder, f".tmp-{uuid.uuid4().hex}")
        try:
            with open(temporary, "wb") as file:
                file.write(dumps(payload).encode("utf-8"))  # type: ignore[no-untyped-call]
            os.replace(temporary, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
