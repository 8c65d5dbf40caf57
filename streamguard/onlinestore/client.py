"""Synchronous redis-py clients of the online store: the materializer, the streaming job (driver and executors)
and the dead-letter replay. Serving talks to Redis through its own asynchronous client
(``streamguard.serving.redisio``)."""

import functools
from urllib.parse import urlsplit

import redis

SCHEMES = ("redis", "rediss")
"""The URL schemes of the store: plain TCP or TLS."""


def without_password(url: str) -> str:
    """``url`` with the password of its user info, if any, written ``***`` (for error messages)."""
    head, at, host = url.rpartition("@")
    if not at:
        return url
    scheme, slashes, userinfo = head.rpartition("//")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{slashes}{user}{':***' if colon else ''}@{host}"


def connect(url: str) -> redis.Redis:
    """A new client (its own connection pool, connecting on first use) of the store at ``url``; a ``ValueError``
    unless ``url`` is ``redis://`` or ``rediss://``."""
    if urlsplit(url).scheme not in SCHEMES:
        raise ValueError(f"online store URL {without_password(url)!r} is not redis:// or rediss://")
    return redis.Redis.from_url(url)


@functools.cache
def shared(url: str) -> redis.Redis:
    """The one client of ``url`` in this process (:func:`connect`), for code called again and again in the same
    process, such as a Spark executor's Python worker writing batch after batch."""
    return connect(url)
