"""The Redis channel layer of the project: channels_redis with a waiting pool and a receive that really stops.

Two changes to `channels_redis.core.RedisChannelLayer`, both about bursts and shutdowns:
- Its pool refuses a caller once `max_connections` are busy (redis-py raises MaxConnectionsError), so a
  burst of handshakes joining their groups at once failed half of them. Here callers wait up to
  `pool_timeout` seconds for a free connection instead.
- A socket's consumer cancels its pending `receive()` when the socket closes. On Python 3.11 that cancellation
  can be lost: redis-py opens connections through `asyncio.wait_for`, which returns normally when the
  cancellation arrives just as the awaited write completes (CPython gh-86296, fixed in 3.12). The lost receive
  then goes on with blocking pops forever, the socket's ASGI task never ends and uvicorn waits for it at
  shutdown ("Waiting for background tasks to complete") until it is killed. Here a cancelled receive is
  cancelled again until it has stopped.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels_redis.core import RedisChannelLayer
from redis import asyncio as aredis

# How long one re-cancellation waits for the receive task before cancelling it again.
_RECANCEL_INTERVAL = 0.1
_RECANCEL_ATTEMPTS = 50


class WaitingPoolChannelLayer(RedisChannelLayer):
    """channels_redis's layer whose callers wait for a Redis connection and whose receive stops on cancel.

    Extra options (CHANNEL_LAYERS[...]["CONFIG"]): `max_connections` per host and event loop, and
    `pool_timeout`, the seconds a caller waits for a free connection before redis-py raises ConnectionError.
    """

    def __init__(self, *args: Any, max_connections: int = 100, pool_timeout: float = 10.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout

    def create_pool(self, index: int) -> aredis.ConnectionPool:
        host = dict(self.hosts[index])
        if "address" not in host:  # sentinel or host/port forms: channels_redis's own pool
            return super().create_pool(index)
        address = host.pop("address")
        return aredis.BlockingConnectionPool.from_url(
            address, max_connections=self.max_connections, timeout=self.pool_timeout, **host
        )

    async def receive(self, channel: str) -> dict[str, Any]:
        receiving = asyncio.ensure_future(super().receive(channel))
        try:
            # Shielded: a plain await would wait for the inner task to end, which is what may never happen.
            return await asyncio.shield(receiving)
        except asyncio.CancelledError:
            await _cancel_until_stopped(receiving)
            raise


async def _cancel_until_stopped(task: asyncio.Future[Any]) -> None:
    for _ in range(_RECANCEL_ATTEMPTS):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=_RECANCEL_INTERVAL)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved
