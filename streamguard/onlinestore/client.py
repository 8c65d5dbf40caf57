"""Synchronous redis-py clients of the online store: the materializer, the streaming job (driver and executors)
and the dead-letter replay. Serving talks to Redis through its own asynchronous client
(``streamguard.serving.redisio``).

The store's URL says what it is: ``redis://`` or ``rediss://`` (TLS) for one server, and the same with the query
``cluster=true`` for a node of a Redis Cluster, from which the clients learn the other nodes (:func:`store_url`),
and with ``sentinel=<master name>`` for a master that Redis Sentinels monitor and fail over, the URL's host one of
the sentinels (:class:`Sentinels`).
Over TLS, ``ssl_ca_certs=<PEM file>`` adds a private CA to the system's (:data:`CA_PARAMETER`).
Writers send their commands to each key's server with :func:`per_server`.
"""

import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.cluster import RedisCluster
from redis.connection import parse_url
from redis.exceptions import AskError, ClusterDownError, ClusterError, RedisClusterException, TryAgainError
from redis.sentinel import Sentinel

from streamguard.onlinestore.slots import key_slot

SCHEMES = ("redis", "rediss")
"""The URL schemes of the store: plain TCP or TLS."""
CLUSTER_PARAMETER = "cluster"
"""The URL query parameter (``true`` or ``false``) that says the URL names a node of a Redis Cluster."""
SENTINEL_PARAMETER = "sentinel"
"""The URL query parameter naming the master, as Redis Sentinel monitors it, of which the URL's host is a sentinel."""
SENTINELS_PARAMETER = "sentinels"
"""The URL query parameter listing more sentinels of that master: ``host[:port],host[:port]``."""
SENTINEL_AUTH_PARAMETER = "sentinel_auth"
"""The URL query parameter (``true`` or ``false``) that says the sentinels require the URL's password too (Redis
Sentinel's ``requirepass``, as the Bitnami chart's ``auth.sentinel`` sets it: the master's password). They are
asked with the password alone, as the default user: the URL's user, if any, is the master's."""
SENTINEL_PORT = 26379
"""A sentinel's port where its address names none."""
CA_PARAMETER = "ssl_ca_certs"
"""The URL query parameter (``rediss://`` only) naming a PEM file of CAs the clients trust besides the system's:
a private CA that signed the server's certificate (redis-py passes it to its TLS connections)."""
ATTEMPTS = 5
"""How many times :func:`per_server` sends a share a cluster redirected or could not take, the slot table read
afresh in between (about 3 s in all: a failover's promotion, a slot's migration)."""
ERRORS = (redis.RedisError, RedisClusterException)
"""Every failure of a store client, one server's or a cluster's (redis-py's cluster errors are not all
``RedisError``)."""
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, ClusterError, RedisClusterException, AskError,
               TryAgainError)
"""The store cannot be reached: the server, a cluster (no node answers, or a slot still moving or without a
master after the clients' retries), or a Sentinel-managed master (redis-py's ``MasterNotFoundError`` when no
sentinel names a master that answers, and a master turned replica, are ``ConnectionError`` s)."""
_REROUTED = (redis.ConnectionError, redis.TimeoutError, AskError, TryAgainError, ClusterDownError)
"""What a cluster node's failure or reply means "not here, or not now": the key's slot moved (``MOVED`` is an
``AskError``) or is moving, or its master is down or being replaced."""

Store = redis.Redis | RedisCluster
"""A client of the online store: one server or a cluster."""


def without_password(url: str) -> str:
    """``url`` with the password of its user info, if any, written ``***`` (for error messages)."""
    head, at, host = url.rpartition("@")
    if not at:
        return url
    scheme, slashes, userinfo = head.rpartition("//")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{slashes}{user}{':***' if colon else ''}@{host}"


Address = tuple[str, int]
"""A server's host and port."""


class Sentinels(NamedTuple):
    """The Redis Sentinels that monitor the store's master."""

    master: str
    """The master's name, as the sentinels monitor it (``sentinel monitor <name> ...``)."""
    addresses: tuple[Address, ...]
    """The sentinels: the URL's host first, then those of its :data:`SENTINELS_PARAMETER`."""
    auth: bool = False
    """The sentinels require the URL's password (:data:`SENTINEL_AUTH_PARAMETER`)."""


class StoreUrl(NamedTuple):
    """What a store URL names (:func:`store_url`)."""

    url: str
    """The URL without its :data:`CLUSTER_PARAMETER`, :data:`SENTINEL_PARAMETER`, :data:`SENTINELS_PARAMETER` and
    :data:`SENTINEL_AUTH_PARAMETER`."""
    cluster: bool
    """The URL names a node of a Redis Cluster."""
    sentinels: Sentinels | None
    """The URL names a sentinel of the store's master; its credentials, database and TLS are the master's."""


def store_url(url: str) -> StoreUrl:
    """What ``url`` names; a ``ValueError`` naming the URL (without its password) unless it is ``redis://`` or
    ``rediss://``, its ``cluster`` is ``true`` or ``false``, a cluster's database is 0 (a Redis Cluster has no
    other), a CA file (:data:`CA_PARAMETER`) comes with ``rediss://``, and ``sentinel`` (a master's name) and
    ``sentinels`` are given once each, not empty, ``sentinels`` and ``sentinel_auth`` (with a password) only with
    ``sentinel``, neither for a cluster."""
    parts = urlsplit(url)
    shown = without_password(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"online store URL {shown!r} is not redis:// or rediss://")
    query = parse_qsl(parts.query, keep_blank_values=True)
    _check_ca_file(parts.scheme, query, shown)
    cluster = _flag(query, CLUSTER_PARAMETER, shown)
    if cluster and parts.path.strip("/") not in ("", "0"):
        raise ValueError(f"online store URL {shown!r}: a Redis Cluster has only database 0")
    sentinels = _sentinels(query, parts.netloc.rpartition("@")[2], shown)
    if sentinels and sentinels.auth and not parts.password:
        raise ValueError(f"online store URL {shown!r}: {SENTINEL_AUTH_PARAMETER} needs the URL's password")
    if cluster and sentinels:
        raise ValueError(f"online store URL {shown!r}: a Redis Cluster has no Redis Sentinel")
    topology = (CLUSTER_PARAMETER, SENTINEL_PARAMETER, SENTINELS_PARAMETER, SENTINEL_AUTH_PARAMETER)
    if not any(name in topology for name, _ in query):
        return StoreUrl(url, cluster, sentinels)
    rest = urlencode([(name, value) for name, value in query if name not in topology])
    return StoreUrl(urlunsplit(parts._replace(query=rest)), cluster, sentinels)


def _flag(query: list[tuple[str, str]], name: str, shown: str) -> bool:
    """The query parameter ``name``: absent, ``true`` or ``false``."""
    flags = [value for key, value in query if key == name]
    if len(flags) > 1 or flags[0:1] not in ([], ["true"], ["false"]):
        raise ValueError(f"online store URL {shown!r}: {name} must be given once, true or false")
    return flags == ["true"]


def _given_once(query: list[tuple[str, str]], name: str, shown: str) -> str | None:
    """The value of the query parameter ``name``, if given: once, not empty."""
    values = [value for key, value in query if key == name]
    if len(values) > 1 or values[0:1] == [""]:
        raise ValueError(f"online store URL {shown!r}: {name} must be given once, not empty")
    return values[0] if values else None


def _sentinels(query: list[tuple[str, str]], host: str, shown: str) -> Sentinels | None:
    """The sentinels the URL names, if any: its ``host[:port]`` and those of :data:`SENTINELS_PARAMETER`."""
    master = _given_once(query, SENTINEL_PARAMETER, shown)
    more = _given_once(query, SENTINELS_PARAMETER, shown)
    auth = _flag(query, SENTINEL_AUTH_PARAMETER, shown)
    if master is None:
        for name, given in ((SENTINELS_PARAMETER, more is not None), (SENTINEL_AUTH_PARAMETER, auth)):
            if given:
                raise ValueError(f"online store URL {shown!r}: {name} without {SENTINEL_PARAMETER}")
        return None
    addresses = [_address(item, shown) for item in [host, *(more.split(",") if more else [])]]
    return Sentinels(master, tuple(dict.fromkeys(addresses)), auth)


def _address(text: str, shown: str) -> Address:
    """``host[:port]`` (an IPv6 host in brackets), the port :data:`SENTINEL_PORT` where none is given."""
    try:
        parsed = urlsplit(f"//{text.strip()}")
        host, port = parsed.hostname, parsed.port
    except ValueError:  # a port that is not a number, or out of range
        host = port = None
    if not host or parsed.username is not None or parsed.path:
        raise ValueError(f"online store URL {shown!r}: {text!r} is not a sentinel's host[:port]")
    return host, port or SENTINEL_PORT


def _check_ca_file(scheme: str, query: list[tuple[str, str]], shown: str) -> None:
    """A ``ValueError`` unless :data:`CA_PARAMETER` is absent, or given once, not empty, with ``rediss://``."""
    if _given_once(query, CA_PARAMETER, shown) is not None and scheme != "rediss":
        raise ValueError(f"online store URL {shown!r}: {CA_PARAMETER} (a CA file) needs rediss:// (TLS)")


def ca_file(url: str) -> str | None:
    """The CA file a ``rediss://`` URL names (:data:`CA_PARAMETER`, checked by :func:`store_url`), if any."""
    return dict(parse_qsl(urlsplit(url).query)).get(CA_PARAMETER)


def connect(url: str) -> Store:
    """A new client of the store at ``url`` (:func:`store_url`; a ``ConnectionError`` while the CA file it names
    is missing, as until the Secret's key is mounted): one server's connects on first use, a
    cluster's reads the slot table from the node now, a Sentinel-managed master's asks the sentinels for the
    master on each new connection (so its writes follow a failover)."""
    plain, cluster, sentinels = store_url(url)
    cafile = ca_file(plain)
    if cafile and not Path(cafile).is_file():  # redis-py would say only "No such file or directory"
        raise redis.ConnectionError(f"online store URL {without_password(url)!r}: its CA file {cafile!r} is missing")
    if cluster:
        return RedisCluster.from_url(plain)
    if sentinels:
        return _master_of(plain, sentinels)
    return redis.Redis.from_url(plain)


def _master_of(url: str, sentinels: Sentinels) -> redis.Redis:
    """A client of the master ``sentinels`` name (redis-py's ``Sentinel.master_for``) with the credentials,
    database, TLS and options of ``url``. The sentinels are asked over plain TCP with the URL's socket timeouts, and
    its password when they require it (:attr:`Sentinels.auth`)."""
    options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    del options["host"]
    options.pop("port", None)
    if options.pop("connection_class", None) is redis.SSLConnection:
        options["ssl"] = True
    asking = {name: value for name, value in options.items() if name.startswith("socket_")}
    if sentinels.auth:
        asking["password"] = options["password"]
    sentinel = Sentinel(list(sentinels.addresses), sentinel_kwargs=asking)  # type: ignore[no-untyped-call]
    return cast(redis.Redis, sentinel.master_for(sentinels.master, **options))  # type: ignore[no-untyped-call]


@functools.cache
def shared(url: str) -> Store:
    """The one client of ``url`` in this process (:func:`connect`), for code called again and again in the same
    process, such as a Spark executor's Python worker writing batch after batch."""
    return connect(url)


def by_server(client: RedisCluster, keys: Sequence[bytes]) -> list[tuple[redis.Redis, list[int]]]:
    """The indexes of ``keys`` grouped by the master that holds them (in the slot table the client holds), each
    with a client of that master."""
    shares: dict[str, tuple[redis.Redis, list[int]]] = {}
    nodes = client.nodes_manager
    for index, key in enumerate(keys):
        node = nodes.get_node_from_slot(key_slot(key))
        share = shares.get(node.name)
        if share is None:
            share = shares[node.name] = (client.get_redis_connection(node), [])
        share[1].append(index)
    return list(shares.values())


Send = Callable[[redis.Redis, list[int]], Sequence[object]]
"""Sends the items at the indexes to the server; their replies in order, an error reply as the exception."""


def per_server(client: Store, keys: Sequence[bytes], send: Send) -> list[object]:
    """The replies of items routed by ``keys`` (an item's key decides its server, :func:`by_server`), sent as one
    ``send`` per server, in item order. An error reply raises, except on a cluster: items a node redirected or
    could not take are sent again after the slot table is read afresh, up to :data:`ATTEMPTS` times."""
    if not isinstance(client, RedisCluster):
        replies = list(send(client, list(range(len(keys)))))
        error = next((reply for reply in replies if isinstance(reply, Exception)), None)
        if error is not None:
            raise error
        return replies
    replies = [None] * len(keys)
    pending = list(range(len(keys)))
    attempt = 0
    while True:
        retry: list[int] = []
        failure: Exception | None = None
        for server, share in by_server(client, [keys[i] for i in pending]):
            items = [pending[i] for i in share]
            try:
                answers: Sequence[object] = send(server, items)
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as error:
                if not isinstance(error, _REROUTED):
                    raise
                retry += items
                failure = error
                continue
            for item, answer in zip(items, answers, strict=True):
                if isinstance(answer, Exception):
                    if not isinstance(answer, _REROUTED):
                        raise answer
                    retry.append(item)
                    failure = answer
                else:
                    replies[item] = answer
        if not retry:
            return replies
        assert failure is not None
        attempt += 1
        if attempt == ATTEMPTS:
            raise failure
        time.sleep(0.2 * 2 ** (attempt - 1))
        with contextlib.suppress(*ERRORS):  # no node answered yet: the next attempt fails as this one did
            client.nodes_manager.initialize()
        pending = sorted(retry)


