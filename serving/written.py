"""The streaming jobs' batch counters (:data:`~streamguard.onlinestore.window_layout.WRITTEN_BATCHES`), read by
one task per worker every :data:`WATCH_INTERVAL_S`. A view's cached window reads and progress record are cached
under its counter, so they are read from Redis again as soon as its job has written a batch, not only once they
are as old as the cache allows: with the cache on, a new window value is served at most about one interval after
it is written. A failed read keeps the counters it had (the cache's own staleness bound still holds)."""

from collections.abc import Callable, Sequence

from streamguard.onlinestore.window_layout import WRITTEN_BATCHES
from streamguard.serving.periodic import forever
from streamguard.serving.redisio import RedisUnavailableError, StorePool, pack_tail

WATCH_INTERVAL_S = 0.1
"""Seconds between two reads of the counters: one pipelined ``HMGET`` per view with windows."""
_FIELD = pack_tail(WRITTEN_BATCHES)


class WrittenBatches:
    """The last counter read per progress record key (``None``: never read, or never written)."""

    __slots__ = ("_counters",)

    def __init__(self) -> None:
        self._counters: dict[bytes, object] = {}

    def of(self, heartbeat_key: bytes) -> object:
        return self._counters.get(heartbeat_key)

    async def read(self, pool: StorePool, heartbeat_keys: Sequence[bytes]) -> None:
        """Read the counters of ``heartbeat_keys`` (the others are forgotten); a node that does not answer
        leaves its views' counters as they were."""
        replies = await pool.hmget_many([(key, _FIELD, 1) for key in heartbeat_keys]) if heartbeat_keys else []
        counters = {}
        for key, reply in zip(heartbeat_keys, replies, strict=True):
            counters[key] = reply[0] if isinstance(reply, list) else self._counters.get(key)
        self._counters = counters

    async def watch_forever(self, pool: StorePool, heartbeat_keys: Callable[[], Sequence[bytes]]) -> None:
        await forever(lambda: self.read(pool, heartbeat_keys()), WATCH_INTERVAL_S, "reading the batch counters",
                      expected=(RedisUnavailableError,))
