"""A small pipelined Redis client for the read path: a bounded pool of keep-alive connections, RESP
replies parsed by hiredis, one deadline per round trip.

Why not redis-py's asyncio pipeline: per command it packs arguments in Python and wraps every reply
read in its own timeout, which costs more CPU than the whole rest of a lookup. Here a request's
commands arrive pre-packed (the field lists are fixed per view), go out in one write, and the replies
of the round trip are read under a single timer.

Failure behaviour: connecting, writing and reading are bounded by short timeouts; any failure closes
the connection (a half-read pipeline cannot be reused) and raises :class:`RedisUnavailableError`. A
request that fails on a reused connection is retried once on a fresh one, so a Redis restart costs no
request more than a reconnect.

One server is :class:`RedisPool`; a Redis Cluster is :class:`streamguard.serving.redis_cluster.ClusterPool`, a
:class:`RedisPool` per master. Lookups and the health tick use either through :class:`StorePool`.

Server identity: every new connection asks ``INFO server stats memory commandstats`` in its setup round trip and keeps
the answer in :attr:`RedisPool.identity` (``run_id``, ``evicted_keys``, eviction policy, flushes; see
:mod:`streamguard.onlinestore.generation`). A restart or a failover drops every connection, so the first
request after it already sees the new server; the health tick refreshes it too (:meth:`RedisPool.observe`).
"""

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote, urlparse

import hiredis

from streamguard.onlinestore.client import ca_file, without_password
from streamguard.onlinestore.generation import StoreIdentity, parse_identity


class RedisUnavailableError(Exception):
    """Redis could not be reached, did not answer in time, or answered with an error."""


def pack(*parts: bytes) -> bytes:
    """One command in RESP."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def pack_tail(*parts: bytes) -> bytes:
    """Bulk strings without the array header (constant trailing arguments, packed once)."""
    return b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


IDENTITY = pack(b"INFO", b"server", b"stats", b"memory", b"commandstats")
"""The command whose reply :func:`~streamguard.onlinestore.generation.parse_identity` reads."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiter: asyncio.Future[list[object]] | None = None
        self.expected = 0
        self.replies: list[object] = []
        self.timer: asyncio.TimerHandle | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while len(self.replies) < self.expected:
            reply = self.reader.gets()
            if reply is False:
                return
            self.replies.append(reply)
        waiter = self.waiter
        if waiter is not None and not waiter.done() and len(self.replies) >= self.expected:
            waiter.set_result(self.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(RedisUnavailableError(f"connection to Redis lost ({exc or 'closed by server'})"))

    def close(self) -> None:
        """Close the connection; a round trip sent on it and not received is given up (its waiter cancelled, so
        no reply or error is left unread)."""
        self.lost = True
        if self.timer is not None:
            self.timer.cancel()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.cancel()
        if self.transport is not None:
            self.transport.close()

    def send(self, payload: bytes, count: int, deadline_s: float | None) -> None:
        """Send ``payload`` (``count`` packed commands), their replies due within ``deadline_s`` seconds (one
        timer for the whole round trip, cheaper than ``asyncio.timeout``; ``None``: the caller's timer calls
        :meth:`expire`); :meth:`receive` reads them."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.waiter = waiter = loop.create_future()
        self.expected = count
        self.replies = []
        self.transport.write(payload)
        if deadline_s is not None:
            self.timer = loop.call_later(deadline_s, self.expire, waiter, deadline_s)

    async def receive(self) -> list[object]:
        """The replies to what :meth:`send` sent, in order; raises when the deadline passed first."""
        assert self.waiter is not None
        try:
            replies: list[object] = await self.waiter
            return replies
        finally:
            self._over()

    def received(self) -> list[object] | None:
        """:meth:`receive` without waiting: the replies when all are in; ``None`` while they are not, or when the
        round trip failed (then :meth:`receive` raises why)."""
        waiter = self.waiter
        if waiter is None or not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
            return None
        self._over()
        replies: list[object] = waiter.result()
        return replies

    def _over(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.waiter = self.timer = None

    async def round_trip(self, payload: bytes, count: int, deadline_s: float) -> list[object]:
        self.send(payload, count, deadline_s)
        return await self.receive()

    def expire(self, waiter: "asyncio.Future[list[object]]", timeout: float) -> None:
        """The deadline of the round trip awaited by ``waiter`` has passed: unless its replies are in, it fails and
        the connection closes."""
        if not waiter.done():
            waiter.set_exception(RedisUnavailableError(f"Redis did not answer within {timeout:g}s"))
            self.close()


def tls_context(url: str) -> ssl.SSLContext:
    """TLS trusting the system's CAs and the CA file ``url`` names, if any
    (:data:`~streamguard.onlinestore.client.CA_PARAMETER`); a ``ValueError`` when that file cannot be read."""
    context = ssl.create_default_context()
    cafile = ca_file(url)
    if cafile:
        try:
            context.load_verify_locations(cafile=cafile)
        except OSError as error:  # ssl.SSLError too: not PEM
            raise ValueError(f"Redis URL {without_password(url)!r}: CA file {cafile!r} unreadable: {error}") from error
    return context


async def _open(host: str, port: int, connect_timeout: float, context: ssl.SSLContext | None = None,
                what: str = "Redis") -> _Connection:
    try:
        async with asyncio.timeout(connect_timeout):
            _, connection = await asyncio.get_running_loop().create_connection(_Connection, host, port, ssl=context)
    except (OSError, TimeoutError) as error:
        raise RedisUnavailableError(f"cannot connect to {what} at {host}:{port}: {error or 'timed out'}") from error
    return connection


async def ask_once(host: str, port: int, commands: Sequence[bytes], connect_timeout: float, socket_timeout: float,
                   what: str) -> object:
    """The reply to the last of the packed ``commands``, sent in one round trip on a plain connection of its own,
    closed afterwards (a question to a server that is not a store, such as a sentinel, which :class:`RedisPool`'s
    setup does not fit); an error reply to one before it (an ``AUTH``) is :class:`RedisUnavailableError`."""
    connection = await _open(host, port, connect_timeout, what=what)
    try:
        *before, reply = await connection.round_trip(b"".join(commands), len(commands), socket_timeout)
    finally:
        connection.close()
    for refused in before:
        if isinstance(refused, hiredis.ReplyError):
            raise RedisUnavailableError(f"{what} at {host}:{port} refused the connection setup: {refused}")
    return reply


class OneAtATime:
    """One run of ``job`` at a time: :meth:`start` gives the run in flight or a new one, :meth:`run` waits for it
    (a caller that gives up does not cancel it for the others). A failure no one awaits is read, not logged as
    never retrieved."""

    def __init__(self, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._job = job
        self._task: asyncio.Task[None] | None = None

    def start(self) -> "asyncio.Task[None]":
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._job())
            self._task.add_done_callback(lambda task: task.cancelled() or task.exception())
        return self._task

    async def run(self) -> None:
        await asyncio.shield(self.start())

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


HMGet = tuple[bytes, bytes, int]
"""One ``HMGET``: the key, its fields packed (:func:`pack_tail`) and how many."""


def pack_hmgets(reads: Sequence[HMGet]) -> bytes:
    return b"".join(
        b"*%d\r\n$5\r\nHMGET\r\n$%d\r\n%s\r\n%s" % (count + 2, len(key), key, fields) for key, fields, count in reads
    )


class Sent(NamedTuple):
    """A round trip sent on a pool's connection whose replies are not read yet (:meth:`RedisPool.send`)."""

    connection: _Connection
    reused: bool
    payload: bytes
    commands: int


def one_deadline(sent: Sequence[Sent], timeout: float) -> asyncio.TimerHandle:
    """One timer for several round trips sent untimed (:meth:`RedisPool.send` with ``timed`` false): when it fires,
    each whose replies are not all in fails and its connection closes. Cancel it once they are read."""
    waiting = [(trip.connection, trip.connection.waiter) for trip in sent]
    return asyncio.get_running_loop().call_later(timeout, _expire_all, waiting, timeout)


def _expire_all(waiting: Sequence[tuple[_Connection, "asyncio.Future[list[object]] | None"]], timeout: float) -> None:
    for connection, waiter in waiting:
        if waiter is not None:
            connection.expire(waiter, timeout)


class Unreachable:
    """In place of a reply: the node holding the key did not answer (a master of a Redis Cluster failing over);
    the other nodes' replies of the same request stand."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class StorePool(Protocol):
    """What lookups and the health tick need of the online store, one server or a cluster."""

    @property
    def identity(self) -> StoreIdentity | None:
        """The store's identity as last seen; ``None`` before it is known (or while a master's is not)."""

    async def hmget_many(self, reads: Sequence[HMGet]) -> list[object]:
        """The replies of ``reads``, in order, an :class:`Unreachable` for a read whose node did not answer while
        others did; raises :class:`RedisUnavailableError` when no read was answered."""

    async def observe_and_hmget(self, reads: Sequence[HMGet]) -> tuple[StoreIdentity, list[object]]:
        """Read the store's identity afresh (and a cluster's topology) and ``reads``."""

    async def close(self) -> None: ...


def auth_command(url: str, with_user: bool = True) -> bytes | None:
    """``AUTH`` with the URL's password (and its user, unless ``with_user`` is false: a sentinel's ``requirepass``
    is the default user's), packed; ``None`` when the URL has no password."""
    parsed = urlparse(url)
    if not parsed.password:
        return None
    password = unquote(parsed.password).encode()
    if with_user and parsed.username:
        return pack(b"AUTH", unquote(parsed.username).encode(), password)
    return pack(b"AUTH", password)


@dataclass(frozen=True)
class PoolOptions:
    """The bounds of every :class:`RedisPool` (one per server; a cluster's or a Sentinel master's pools share them)."""

    max_connections: int = 50
    connect_timeout: float = 0.25
    socket_timeout: float = 0.25
    pool_timeout: float = 0.5
    """How long a caller waits for a free connection when all ``max_connections`` are busy."""


DEFAULT_POOL_OPTIONS = PoolOptions()


class RedisPool:
    """At most ``options.max_connections`` connections to one server. ``address`` (host, port) overrides the
    URL's, which then gives only credentials, TLS and database."""

    def __init__(
        self, url: str, options: PoolOptions = DEFAULT_POOL_OPTIONS, address: tuple[str, int] | None = None
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
            raise ValueError(f"Redis URL {url!r} is not redis://[user:password@]host:port/db")
        self.host, self.port = address or (parsed.hostname, parsed.port or 6379)
        self.ssl = tls_context(url) if parsed.scheme == "rediss" else None
        db = unquote(parsed.path.lstrip("/")) or "0"
        if not db.isdigit():
            raise ValueError(f"Redis URL {url!r}: database {db!r} is not a number")
        auth = auth_command(url)
        setup = [auth] if auth else []
        if db != "0":
            setup.append(pack(b"SELECT", db.encode()))
        setup.append(IDENTITY)
        self._setup = setup
        self.identity: StoreIdentity | None = None
        """The server's identity as last seen (on a new connection or a health tick); ``None`` before."""
        self.options = options
        self._idle: list[_Connection] = []
        self._count = 0
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()

    async def _connect(self) -> _Connection:
        connection = await _open(self.host, self.port, self.options.connect_timeout, self.ssl)
        try:
            replies = await connection.round_trip(b"".join(self._setup), len(self._setup), self.options.socket_timeout)
        except BaseException:
            connection.close()
            raise
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                connection.close()
                raise RedisUnavailableError(f"Redis refused the connection setup: {reply}")
        try:
            self.observe(replies[-1])
        except ValueError as error:
            connection.close()
            raise RedisUnavailableError(f"Redis did not say who it is: {error}") from error
        return connection

    def observe(self, info: object) -> StoreIdentity:
        """Record the server's identity from a reply to :data:`IDENTITY`."""
        if not isinstance(info, bytes | str):
            raise ValueError(f"unexpected INFO reply {info!r}")
        self.identity = parse_identity(info)
        return self.identity

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.lost:
                return connection
            self._count -= 1
        return None

    async def _acquire(self) -> tuple[_Connection, bool]:
        """A connection and whether it was reused from the pool."""
        idle = self._take_idle()
        if idle is not None:
            return idle, True
        if self._count >= self.options.max_connections:
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(self.options.pool_timeout):
                    handed = await waiter
            except BaseException as error:
                self._remove_waiter(waiter)
                if waiter.done() and not waiter.cancelled():
                    self._pass_on(waiter.result())
                if isinstance(error, TimeoutError):
                    raise RedisUnavailableError(
                        f"all {self.options.max_connections} Redis connections busy for {self.options.pool_timeout:g}s"
                    ) from error
                raise
            if handed is not None:
                return handed, True
        self._count += 1
        try:
            return await self._connect(), False
        except BaseException:
            self._count -= 1
            self._wake(None)
            raise

    def _remove_waiter(self, waiter: "asyncio.Future[_Connection | None]") -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)

    def _wake(self, connection: _Connection | None) -> bool:
        """Hand ``connection`` (or a free slot, ``None``) to the first waiter; False when none waits."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    def _pass_on(self, handed: _Connection | None) -> None:
        """Give back what was handed to a waiter that gave up."""
        if handed is not None:
            self._release(handed)
        else:
            self._wake(None)

    def _release(self, connection: _Connection) -> None:
        if connection.lost:
            self._count -= 1
            self._wake(None)
        elif not self._wake(connection):
            self._idle.append(connection)

    async def execute(self, payload: bytes, count: int, errors: bool = True) -> list[object]:
        """One round trip of ``count`` pre-packed commands; an error reply raises (with ``errors=False`` it is
        returned in its place, a ``hiredis.ReplyError``)."""
        replies = await self.receive(await self.send(payload, count))
        for reply in replies if errors else ():
            if isinstance(reply, hiredis.ReplyError):
                raise RedisUnavailableError(f"Redis answered with an error: {reply}")
        return replies

    async def send(self, payload: bytes, count: int, timed: bool = True) -> Sent:
        """Send a round trip of ``count`` pre-packed commands on a connection of the pool (waiting only for the
        connection); :meth:`receive` reads the replies, :meth:`abandon` gives up on them. Untimed (``timed``
        false), the caller bounds the wait for the replies (:meth:`_Connection.expire`)."""
        connection, reused = await self._acquire()
        return self._send_on(connection, reused, payload, count, timed)

    def send_idle(self, payload: bytes, count: int, timed: bool = True) -> Sent | None:
        """:meth:`send` on an idle connection, without waiting; ``None`` when none is idle."""
        connection = self._take_idle()
        return None if connection is None else self._send_on(connection, True, payload, count, timed)

    def _send_on(self, connection: _Connection, reused: bool, payload: bytes, count: int, timed: bool) -> Sent:
        try:
            connection.send(payload, count, self.options.socket_timeout if timed else None)
        except BaseException:
            self.abandon(Sent(connection, reused, payload, count))
            raise
        return Sent(connection, reused, payload, count)

    def received(self, sent: Sent) -> list[object] | None:
        """The replies of ``sent`` when all are in (its connection back in the pool), without waiting; ``None`` while
        they are not, or when the round trip failed: :meth:`receive` then waits, or retries."""
        replies = sent.connection.received()
        if replies is not None:
            self._release(sent.connection)
        return replies

    async def receive(self, sent: Sent) -> list[object]:
        """The replies of ``sent`` (error replies in place). A round trip that failed on a reused connection
        is sent again, once, on another."""
        try:
            replies = await sent.connection.receive()
        except RedisUnavailableError:
            self.abandon(sent)
            if not sent.reused:
                raise
            return await self.receive((await self.send(sent.payload, sent.commands))._replace(reused=False))
        except BaseException:
            self.abandon(sent)
            raise
        self._release(sent.connection)
        return replies

    def abandon(self, sent: Sent) -> None:
        """Give up on the replies of ``sent``: its connection is closed (a half-read pipeline cannot be reused)."""
        sent.connection.close()
        self._release(sent.connection)

    async def hmget_many(self, reads: Sequence[HMGet]) -> list[object]:
        """``HMGET key <fields>`` for each read, in one round trip."""
        return await self.execute(pack_hmgets(reads), len(reads))

    async def observe_and_hmget(self, reads: Sequence[HMGet]) -> tuple[StoreIdentity, list[object]]:
        """The server's identity (kept in :attr:`identity`) and ``reads``, in one round trip."""
        replies = await self.execute(IDENTITY + pack_hmgets(reads), len(reads) + 1)
        try:
            return self.observe(replies[0]), replies[1:]
        except ValueError as error:
            raise RedisUnavailableError(f"Redis did not say who it is: {error}") from error

    async def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
        self._count = 0
