"""The Redis channel layer of the project: channels_redis with a waiting pool, a receive that really stops and
a send to many groups at once.

Three changes to `channels_redis.core.RedisChannelLayer`; the first two are about bursts and shutdowns:
- Its pool refuses a caller once `max_connections` are busy (redis-py raises MaxConnectionsError), so a
  burst of handshakes joining their groups at once failed half of them. Here callers wait up to
  `pool_timeout` seconds for a free connection instead.
- A socket's consumer cancels its pending `receive()` when the socket closes. On Python 3.11 that cancellation
  can be lost: redis-py opens connections through `asyncio.wait_for`, which returns normally when the
  cancellation arrives just as the awaited write completes (CPython gh-86296, fixed in 3.12). The lost receive
  then goes on with blocking pops forever, the socket's ASGI task never ends and uvicorn waits for it at
  shutdown ("Waiting for background tasks to complete") until it is killed. Here a cancelled receive is
  cancelled again until it has stopped.
- `group_send_many` sends one message to each of many groups in two Redis round trips per server (read the
  groups' members, then add every message), where a group_send per group takes four. The MQTT handler pushes
  each batch of device messages to the owner of every device in it and to staff: with a thousand owners
  sending 2,000 messages/s (the benchmark's row (f)), the handler's CPU fell from about 290 to 250 ms per
  1,000 messages and delivery p50 from 25 to 19 ms. Its keys, messages and
  expiry are channels_redis's own (this module is tested against the pinned channels_redis).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from channels_redis.core import RedisChannelLayer
from redis import asyncio as aredis

logger = logging.getLogger(__name__)

# Adds message i to channel key i unless the key holds its capacity already; each message gets its own score
# (the send time plus a step per message), so messages to one key are popped in the order they were given.
_ADD_MESSAGES_LUA = """
local count = #KEYS
local over_capacity = 0
local expiry = ARGV[3 * count + 1]
for i = 1, count do
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[count + i]) then
        redis.call('ZADD', KEYS[i], ARGV[2 * count + i], ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over_capacity = over_capacity + 1
    end
end
return over_capacity
"""
# Score step between the messages of one call: far below the clock's resolution of separate calls.
_SCORE_STEP = 1e-6

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

    async def group_send_many(self, sends: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """group_send of each (group, message), in order: a channel gets the messages of its groups in the
        order given. Raises when Redis cannot be reached or a message cannot be serialized (nothing is sent
        then, or, if Redis fails half way, part of it)."""
        for group, _ in sends:
            assert self.require_valid_group_name(group), "Group name not valid"
        members = await self._group_members(dict.fromkeys(group for group, _ in sends))
        # Per Redis server of the channels: (channel key, serialized message, capacity) in send order.
        additions: dict[int, list[tuple[str, bytes, int]]] = defaultdict(list)
        for group, message in sends:
            by_connection, messages, capacities = self._map_channel_keys_to_connection(
                members[group], message
            )
            for index, keys in by_connection.items():
                additions[index] += [(key, messages[key], capacities[key]) for key in keys]
        for index, entries in additions.items():
            await self._add_messages(index, entries)

    async def _group_members(self, groups: dict[str, None]) -> dict[str, list[str]]:
        """Each group's channels, after dropping those past the group expiry: one pipeline per server."""
        by_connection: dict[int, list[str]] = defaultdict(list)
        for group in groups:
            by_connection[self.consistent_hash(group)].append(group)
        members: dict[str, list[str]] = {}
        oldest = int(time.time()) - self.group_expiry
        for index, names in by_connection.items():
            pipe = self.connection(index).pipeline(transaction=False)
            for group in names:
                key = self._group_key(group)
                pipe.zremrangebyscore(key, min=0, max=oldest)
                pipe.zrange(key, 0, -1)
            replies = await pipe.execute()
            for group, channels in zip(names, replies[1::2], strict=True):
                members[group] = [channel.decode("utf8") for channel in channels]
        return members

    async def _add_messages(self, index: int, entries: list[tuple[str, bytes, int]]) -> None:
        """Drop the keys' expired messages, then add each message unless its key is full: one pipeline."""
        now = time.time()
        pipe = self.connection(index).pipeline(transaction=False)
        for key in dict.fromkeys(key for key, _, _ in entries):
            pipe.zremrangebyscore(key, min=0, max=int(now) - int(self.expiry))
        keys = [key for key, _, _ in entries]
        scores = [now + position * _SCORE_STEP for position in range(len(entries))]
        pipe.eval(
            _ADD_MESSAGES_LUA,
            len(keys),
            *keys,
            *(message for _, message, _ in entries),
            *(capacity for _, _, capacity in entries),
            *scores,
            self.expiry,
        )
        over_capacity = (await pipe.execute())[-1]
        if over_capacity:
            logger.info("%s of %s channel messages dropped: channels over capacity", over_capacity, len(keys))

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
