"""kombu's Redis transport, hardened for what the fault suite found on a broker restart.

After a connection loss, Celery closes the broken connection and may still requeue messages
received on it (a hard time limit, a lost pool process). Stock kombu then

- asks the released transport for connection parameters and raises ``AttributeError``,
  which Celery treats as unrecoverable: the worker exits;
- requeues through the closed channel, whose exchange table is gone: it logs "Could not
  restore message" after removing the message from the unacknowledged set: it is lost.

Both now fail as connection errors, which Celery handles: the worker reconnects, and the
message stays unacknowledged until the visibility timeout hands it out again.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection was released")
        return super()._connparams(asynchronous=asynchronous)

    def _do_restore_message(
        self, payload: Any, exchange: Any, routing_key: Any, pipe: Any, leftmost: bool = False
    ) -> Any:
        if self.exchange_types is None:  # set by close(), after its own restore
            raise RedisConnectionError(
                "channel closed: the message stays unacknowledged until the visibility timeout"
            )
        return super()._do_restore_message(payload, exchange, routing_key, pipe, leftmost)


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel


def transport_for(broker_url: str) -> str | None:
    """The transport class to use for ``broker_url``, when it is not kombu's default."""
    return f"{__name__}:Transport" if broker_url.startswith("redis://") else None
