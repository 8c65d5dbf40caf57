"""Synchronous redis-py clients of the online store: the materializer, the streaming job (driver and executors)
and the dead-letter replay. Serving talks to Redis through its own asynchronous client
(``streamguard.serving.redisio``).

The store's URL says what it is: ``redis://`` or ``rediss://`` (TLS) for one server, and the same with the query
``cluster=true`` for a node of a Redis Cluster, from which the clients learn the other nodes (:func:`store_url`).
Writers send their commands to each key's server with :func:`per_server`.
"""

import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.cluster import RedisCluster
from redis.exceptions import AskError, ClusterDownError, ClusterError, RedisClusterException, TryAgainError

from streamguard.onlinestore.slots import key_slot

SCHEMES = ("redis", "rediss")
"""The URL schemes of the store: plain TCP or TLS."""
CLUSTER_PARAMETER = "cluster"
"""The URL query parameter (``true`` or ``false``) that says the URL names a node of a Redis Cluster."""
ATTEMPTS = 5
"""How many times :func:`per_server` sends a share a cluster redirected or could not take, the slot table read
afresh in between (about 3 s in all: a failover's promotion, a slot's migration)."""
ERRORS = (redis.RedisError, RedisClusterException)
"""Every failure of a store client, one server's or a cluster's (redis-py's cluster errors are not all
``RedisError``)."""
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, ClusterError, RedisClusterException, AskError,
               TryAgainError)
"""The store cannot be reached: the server, or a cluster (no node answers, or a slot still moving or without a
master after the clients' retries)."""
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


def store_url(url: str) -> tuple[str, bool]:
    """``(url without the cluster parameter, names a cluster)``; a ``ValueError`` naming the URL (without its
    password) unless it is ``redis://`` or ``rediss://``, its ``cluster`` is ``true`` or ``false``, and a cluster's
    database is 0 (a Redis Cluster has no other)."""
    parts = urlsplit(url)
    shown = without_password(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"online store URL {shown!r} is not redis:// or rediss://")
    query = parse_qsl(parts.query, keep_blank_values=True)
    flags = [value for name, value in query if name == CLUSTER_PARAMETER]
    if not flags:
        return url, False
    if len(flags) > 1 or flags[0] not in ("true", "false"):
        raise ValueError(f"online store URL {shown!r}: {CLUSTER_PARAMETER} must be given once, true or false")
    cluster = flags[0] == "true"
    if cluster and parts.path.strip("/") not in ("", "0"):
        raise ValueError(f"online store URL {shown!r}: a Redis Cluster has only database 0")
    rest = urlencode([(name, value) for name, value in query if name != CLUSTER_PARAMETER])
    return urlunsplit(parts._replace(query=rest)), cluster


def connect(url: str) -> Store:
    """A new client of the store at ``url`` (:func:`store_url`): one server's connects on first use, a
    cluster's reads the slot table from the node now."""
    plain, cluster = store_url(url)
    if cluster:
        return RedisCluster.from_url(plain)
    return redis.Redis.from_url(plain)


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


