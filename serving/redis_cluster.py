"""Serving's client of a Redis Cluster: a :class:`~streamguard.serving.redisio.RedisPool` per master, a request's
reads grouped by node and sent as one pipelined round trip per node, all nodes at once.

- **Routing.** A key goes to the master of its slot (:func:`streamguard.onlinestore.slots.key_slot`). The slot
  table comes from ``CLUSTER SLOTS``, asked of the URL's node first, then of any master known.
- **Redirections.** ``MOVED`` sends the read to the named node and refreshes the table in the background;
  ``ASK`` (a slot being migrated) sends ``ASKING`` and the read to the named node, once. At most
  :data:`MAX_REDIRECTIONS` rounds, then the request fails.
- **Failures.** The reads of a node that does not answer come back :class:`Unreachable` (serving answers those
  rows' values ``stale``, null, never a guess), the other nodes' replies stand; when no read was answered the
  request fails (:class:`RedisUnavailableError`: 503). Either way the slot table is refreshed, so requests
  reach the promoted replica as soon as the cluster has failed over. The health tick refreshes it too.
- **Identity.** Each master's pool reads its server's identity on every new connection and on each health tick;
  the cluster's is :func:`~streamguard.onlinestore.generation.combine_identities` of the masters that serve the
  slots now, ``None`` while one of them is unknown. A failover brings a master with another ``run_id``, so the
  generation the writers recorded ends (:mod:`streamguard.onlinestore.generation`): values read ``stale`` until
  the writers re-seed, never an absent key read as empty.
"""

import asyncio
from collections.abc import Sequence
from typing import cast

import hiredis

from streamguard.onlinestore.generation import StoreIdentity, combine_identities
from streamguard.onlinestore.slots import SLOTS, key_slot
from streamguard.serving.redisio import (
    DEFAULT_POOL_OPTIONS,
    IDENTITY,
    HMGet,
    OneAtATime,
    PoolOptions,
    RedisPool,
    RedisUnavailableError,
    Sent,
    Unreachable,
    one_deadline,
    pack,
    pack_hmgets,
)

MAX_REDIRECTIONS = 3
_DOWN = ("CLUSTERDOWN", "TRYAGAIN")
"""Error replies meaning the key's slot is not served now: no master (failing over; with Redis' default
``cluster-require-full-coverage yes`` every node says so while any slot has none), or a slot mid-migration."""
_ASKING = pack(b"ASKING")
_CLUSTER_SLOTS = pack(b"CLUSTER", b"SLOTS")

Address = tuple[str, int]


def _redirection(reply: hiredis.ReplyError, fallback_host: str) -> tuple[str, Address] | None:
    """``("MOVED" | "ASK", address)`` of a redirection reply, else ``None`` (a node that does not know its own
    address names none: it is ``fallback_host``, the host it was reached at)."""
    kind, _, rest = str(reply).partition(" ")
    if kind not in ("MOVED", "ASK"):
        return None
    host, _, port = rest.partition(" ")[2].rpartition(":")
    return kind, (host or fallback_host, int(port))


def _payload(reads: Sequence[HMGet], asking: Sequence[bool]) -> tuple[bytes, int]:
    """The round trip of ``reads`` to one node and how many replies it has: ``ASKING`` before the reads marked so
    (``asking`` empty: none)."""
    if not any(asking):
        return pack_hmgets(reads), len(reads)
    payload = b"".join((_ASKING if ask else b"") + pack_hmgets([read]) for read, ask in zip(reads, asking, strict=True))
    return payload, len(reads) + sum(asking)


def _without_asking(answer: list[object], asking: Sequence[bool]) -> list[object]:
    """The replies to the reads of a :func:`_payload`, without those to its ``ASKING``s."""
    if not any(asking):
        return answer
    replies, position = [], 0
    for ask in asking:
        position += ask
        replies.append(answer[position])
        position += 1
    return replies


async def _round_trips(trips: Sequence[tuple[RedisPool, bytes, int]]) -> list[list[object] | RedisUnavailableError]:
    """Each ``(node, payload, count)`` round trip's replies, or the node's failure. Every payload is sent before
    any reply is read, under one deadline for all of them: the nodes answer in parallel without a task or a
    timer per node (which would cost more CPU than the round trip itself)."""
    sent: list[tuple[RedisPool, Sent | RedisUnavailableError]] = []
    try:
        for pool, payload, count in trips:
            try:
                sent.append((pool, pool.send_idle(payload, count, timed=False)
                             or await pool.send(payload, count, timed=False)))
            except RedisUnavailableError as error:
                sent.append((pool, error))
    except BaseException:
        _abandon(sent)
        raise
    timer = one_deadline([trip for _, trip in sent if isinstance(trip, Sent)],
                         trips[0][0].options.socket_timeout if trips else 0.0)
    answers: list[list[object] | RedisUnavailableError] = []
    try:
        for position, (pool, trip) in enumerate(sent):
            if isinstance(trip, RedisUnavailableError):
                answers.append(trip)
                continue
            replies = pool.received(trip)  # no coroutine when the node answered while another was awaited
            if replies is None:
                try:
                    replies = await pool.receive(trip)
                except RedisUnavailableError as error:
                    answers.append(error)
                    continue
                except BaseException:
                    _abandon(sent[position + 1 :])
                    raise
            answers.append(replies)
    finally:
        timer.cancel()
    return answers


def _abandon(sent: Sequence[tuple[RedisPool, Sent | RedisUnavailableError]]) -> None:
    for pool, trip in sent:
        if not isinstance(trip, RedisUnavailableError):
            pool.abandon(trip)


class ClusterPool:
    """Reads of a Redis Cluster reached through ``url`` (any node, without the cluster parameter of
    ``streamguard.onlinestore.client.store_url``; its credentials and TLS apply to every node)."""

    def __init__(self, url: str, options: PoolOptions = DEFAULT_POOL_OPTIONS) -> None:
        self._url = url
        self._options = options
        self._seed = RedisPool(url, options)
        self._nodes: dict[Address, RedisPool] = {(self._seed.host, self._seed.port): self._seed}
        self._slots: list[Address] | None = None
        self._masters: tuple[Address, ...] = ()
        self._refreshing = OneAtATime(self._refresh)
        self._identity_of: tuple[StoreIdentity | None, ...] = ()
        self._identity: StoreIdentity | None = None

    def _node(self, address: Address) -> RedisPool:
        pool = self._nodes.get(address)
        if pool is None:
            pool = self._nodes[address] = RedisPool(self._url, self._options, address=address)
        return pool

    @property
    def identity(self) -> StoreIdentity | None:
        seen = tuple(self._nodes[address].identity for address in self._masters)
        if seen != self._identity_of:
            self._identity_of = seen
            known = [identity for identity in seen if identity is not None]
            self._identity = combine_identities(known) if known and len(known) == len(seen) else None
        return self._identity

    async def refresh(self) -> None:
        """Learn the slot table again (one refresh at a time; callers meanwhile wait for it)."""
        await self._refreshing.run()

    async def _refresh(self) -> None:
        candidates = [self._seed, *(self._nodes[address] for address in self._masters)]
        errors = []
        for pool in dict.fromkeys(candidates):
            try:
                (reply,) = await pool.execute(_CLUSTER_SLOTS, 1)
            except RedisUnavailableError as error:
                errors.append(f"{pool.host}:{pool.port}: {error}")
                continue
            self._apply(reply, pool.host)
            return
        raise RedisUnavailableError(f"no node of the Redis Cluster answered CLUSTER SLOTS ({'; '.join(errors)})")

    def _apply(self, reply: object, asked: str) -> None:
        if not isinstance(reply, list):
            raise RedisUnavailableError(f"unexpected CLUSTER SLOTS reply {reply!r}")
        table: list[Address | None] = [None] * SLOTS
        for start, end, master, *_ in reply:
            host = master[0].decode() if master[0] and master[0] != b"?" else asked
            address = (host, int(master[1]))
            table[int(start) : int(end) + 1] = [address] * (int(end) - int(start) + 1)
        if any(address is None for address in table):
            raise RedisUnavailableError("the Redis Cluster does not serve every slot")
        self._slots = cast(list[Address], table)
        self._masters = tuple(sorted(set(self._slots)))
        for address in self._masters:
            self._node(address)

    async def hmget_many(self, reads: Sequence[HMGet]) -> list[object]:
        if self._slots is None:
            await self.refresh()
        assert self._slots is not None
        slots = self._slots
        groups: dict[Address, list[int]] = {}
        for index, read in enumerate(reads):
            groups.setdefault(slots[key_slot(read[0])], []).append(index)
        asking: set[int] = set()
        replies: list[object] = [None] * len(reads)
        unreachable = 0
        for _ in range(MAX_REDIRECTIONS + 1):
            asks = [[i in asking for i in indices] if asking else () for indices in groups.values()]
            answers = await _round_trips([(self._node(address), *_payload([reads[i] for i in indices], ask))
                                          for (address, indices), ask in zip(groups.items(), asks, strict=True)])
            redirected: dict[Address, list[int]] = {}
            asking = set()
            for indices, ask, answer in zip(groups.values(), asks, answers, strict=True):
                if isinstance(answer, RedisUnavailableError):
                    self._refreshing.start()
                    unreachable += len(indices)
                    for index in indices:
                        replies[index] = Unreachable(str(answer))
                    continue
                for index, reply in zip(indices, _without_asking(answer, ask), strict=True):
                    if not isinstance(reply, hiredis.ReplyError):
                        replies[index] = reply
                        continue
                    redirection = _redirection(reply, self._seed.host)
                    if redirection is None:
                        if not str(reply).startswith(_DOWN):
                            raise RedisUnavailableError(f"Redis answered with an error: {reply}")
                        unreachable += 1
                        replies[index] = Unreachable(str(reply))
                        continue
                    kind, address = redirection
                    redirected.setdefault(address, []).append(index)
                    if kind == "ASK":
                        asking.add(index)
                    else:
                        self._refreshing.start()
            if not redirected:
                if unreachable == len(reads):
                    raise RedisUnavailableError(f"no node of the Redis Cluster holding the reads answered: "
                                                f"{cast(Unreachable, replies[0]).reason}")
                return replies
            groups = redirected
        raise RedisUnavailableError(f"Redis Cluster still redirecting after {MAX_REDIRECTIONS} redirections")

    async def observe_and_hmget(self, reads: Sequence[HMGet]) -> tuple[StoreIdentity, list[object]]:
        """The topology and every master's identity afresh, then ``reads``."""
        await self.refresh()
        masters = [self._nodes[address] for address in self._masters]
        infos = await asyncio.gather(*(pool.execute(IDENTITY, 1) for pool in masters))
        try:
            for pool, (info,) in zip(masters, infos, strict=True):
                pool.observe(info)
        except ValueError as error:
            raise RedisUnavailableError(f"a Redis Cluster master did not say who it is: {error}") from error
        identity = self.identity
        if identity is None:
            raise RedisUnavailableError("the Redis Cluster's masters changed while they were asked who they are")
        replies = await self.hmget_many(reads)
        lost = next((reply for reply in replies if isinstance(reply, Unreachable)), None)
        if lost is not None:
            raise RedisUnavailableError(f"a Redis Cluster master did not answer: {lost.reason}")
        return identity, replies

    async def close(self) -> None:
        self._refreshing.cancel()
        for pool in self._nodes.values():
            await pool.close()
