"""Serving's client of a master that Redis Sentinels monitor: a :class:`~streamguard.serving.redisio.RedisPool` of the
master the sentinels name, found again when it fails.

- **Finding the master.** ``SENTINEL GET-MASTER-ADDR-BY-NAME`` asked of every sentinel of the URL at once, over
  plain TCP (after ``AUTH`` with the URL's password when the sentinels require it: ``sentinel_auth=true``, as the
  writers and Feast ask them), on a short-lived connection each; the master most
  of those that answer name wins (the first named on a tie). Asked on first use, after any failure of the master
  (no connection, no answer in time, an error reply such as ``READONLY`` from a master turned replica) and on every
  health tick.
- **Failover.** A request that fails on the master asks the sentinels again; when they name another master the
  request is sent to it, once, else it fails (:class:`RedisUnavailableError`: 503). While the sentinels still name
  the dead master (their ``down-after-milliseconds``), requests fail.
- **Identity.** The master's pool reads its server's identity on every new connection and on each health tick. The
  promoted replica has another ``run_id``, so the generation the writers recorded on the old master ends
  (:mod:`streamguard.onlinestore.generation`): values read ``stale`` and readiness reports
  ``StoreGenerationMissing`` until the writers, whose redis-py clients follow the sentinels too, re-seed it.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import hiredis

from streamguard.onlinestore.client import Address, Sentinels
from streamguard.onlinestore.generation import StoreIdentity
from streamguard.serving.redisio import (
    DEFAULT_POOL_OPTIONS,
    HMGet,
    OneAtATime,
    PoolOptions,
    RedisPool,
    RedisUnavailableError,
    ask_once,
    auth_command,
    pack,
)

T = TypeVar("T")


class SentinelPool:
    """Reads of the master ``sentinels`` monitor; ``url`` (without its sentinel parameters, from
    ``streamguard.onlinestore.client.store_url``) gives the master's credentials, TLS and database."""

    def __init__(self, url: str, sentinels: Sentinels, options: PoolOptions = DEFAULT_POOL_OPTIONS) -> None:
        self._url = url
        self._sentinels = sentinels
        self._options = options
        auth = auth_command(url, with_user=False) if sentinels.auth else None
        self._question = [*([auth] if auth else []),
                          pack(b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", sentinels.master.encode())]
        """With :attr:`Sentinels.auth`, ``AUTH`` with the URL's password first (the default user's)."""
        self._masters: dict[Address, RedisPool] = {}
        self._master: RedisPool | None = None
        self._resolving = OneAtATime(self._resolve)

    @property
    def identity(self) -> StoreIdentity | None:
        return self._master.identity if self._master else None

    @property
    def master(self) -> Address | None:
        """The master's address as the sentinels last named it."""
        return (self._master.host, self._master.port) if self._master else None

    async def resolve(self) -> None:
        """Ask the sentinels for the master (one question at a time; callers meanwhile wait for its answer)."""
        await self._resolving.run()

    async def _resolve(self) -> None:
        """Use the master most sentinels name, the first named on a tie (a sentinel cut off from the others may still
        name a master they replaced)."""
        replies = await asyncio.gather(*(ask_once(host, port, self._question, self._options.connect_timeout,
                                                  self._options.socket_timeout, "the sentinel")
                                         for host, port in self._sentinels.addresses),
                                       return_exceptions=True)
        named: list[Address] = []
        errors = []
        for (host, port), reply in zip(self._sentinels.addresses, replies, strict=True):
            if isinstance(reply, list) and len(reply) == 2:
                named.append((reply[0].decode(), int(reply[1])))
            elif isinstance(reply, RedisUnavailableError):
                errors.append(str(reply))
            elif isinstance(reply, hiredis.ReplyError):  # an error reply (NOAUTH: sentinel_auth is missing)
                errors.append(f"the sentinel at {host}:{port} answered {reply}")
            elif isinstance(reply, BaseException):
                raise reply
            else:
                errors.append(f"the sentinel at {host}:{port} answered {reply!r}")
        if not named:
            raise RedisUnavailableError(f"no sentinel named the master {self._sentinels.master!r} "
                                        f"({'; '.join(errors)})")
        self._use(max(named, key=named.count))

    def _use(self, address: Address) -> None:
        pool = self._masters.get(address)
        if pool is None:
            pool = self._masters[address] = RedisPool(self._url, self._options, address=address)
        self._master = pool

    async def _on_master(self, call: Callable[[RedisPool], Awaitable[T]]) -> T:
        """``call`` on the master; when it fails, on the master the sentinels name then, if another."""
        if self._master is None:
            await self.resolve()
        assert self._master is not None
        failed = self._master
        try:
            return await call(failed)
        except RedisUnavailableError:
            await self.resolve()
            if self._master is failed:
                raise
        return await call(self._master)

    async def hmget_many(self, reads: Sequence[HMGet]) -> list[object]:
        return await self._on_master(lambda pool: pool.hmget_many(reads))

    async def observe_and_hmget(self, reads: Sequence[HMGet]) -> tuple[StoreIdentity, list[object]]:
        """The master as the sentinels name it now (the one known before, while no sentinel answers), its
        identity afresh and ``reads``."""
        try:
            await self.resolve()
        except RedisUnavailableError:
            if self._master is None:
                raise
        return await self._on_master(lambda pool: pool.observe_and_hmget(reads))

    async def close(self) -> None:
        self._resolving.cancel()
        for pool in self._masters.values():
            await pool.close()
