"""The online store's redis-py client factory (no server: a client connects on first use)."""

import re
from pathlib import Path

import pytest
import redis
from redis.sentinel import MasterNotFoundError, SentinelConnectionPool, SentinelManagedSSLConnection

from streamguard.onlinestore.client import (
    UNREACHABLE,
    Sentinels,
    ca_file,
    connect,
    shared,
    store_url,
    without_password,
)


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("rediss://app:s3cr@t@redis.example:6380/2", "rediss://app:***@redis.example:6380/2"),
    ("redis://:s3cret@127.0.0.1:6379", "redis://:***@127.0.0.1:6379"),
    ("redis://app@127.0.0.1:6379", "redis://app@127.0.0.1:6379"),
    ("app:s3cret@127.0.0.1:6379", "app:***@127.0.0.1:6379"),
])
def test_without_password_keeps_everything_but_the_password(url: str, shown: str) -> None:
    assert without_password(url) == shown


def test_connect_takes_redis_and_rediss_urls_and_names_any_other_without_its_password() -> None:
    client = connect("redis://app:pw@127.0.0.1:1/3")
    assert isinstance(client, redis.Redis) and client.connection_pool.connection_kwargs["db"] == 3
    client = connect("rediss://127.0.0.1:1/0?cluster=false")
    assert isinstance(client, redis.Redis) and client.connection_pool.connection_class is redis.SSLConnection
    with pytest.raises(ValueError, match=re.escape("'http://app:***@127.0.0.1:6379/0' is not redis://")):
        connect("http://app:s3cret@127.0.0.1:6379/0")
    for url in ("unix:///run/redis.sock", "127.0.0.1:6379", "app:s3cret@127.0.0.1:6379"):
        with pytest.raises(ValueError, match="is not redis:// or rediss://") as raised:
            connect(url)
        assert "s3cret" not in str(raised.value)


def test_shared_is_one_client_per_url_in_a_process() -> None:
    assert shared("redis://127.0.0.1:1/0") is shared("redis://127.0.0.1:1/0")
    assert shared("redis://127.0.0.1:1/0") is not shared("redis://127.0.0.1:1/1")
    assert shared("redis://127.0.0.1:1/0") is not connect("redis://127.0.0.1:1/0")


@pytest.mark.parametrize(("url", "plain", "cluster"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", False),
    ("redis://127.0.0.1:6379/0?cluster=true", "redis://127.0.0.1:6379/0", True),
    ("rediss://app:pw@redis.example:6380?cluster=true&socket_timeout=2", "rediss://app:pw@redis.example:6380?socket_timeout=2",
     True),
    ("redis://127.0.0.1:6379/2?cluster=false", "redis://127.0.0.1:6379/2", False),
])
def test_store_url_says_whether_it_names_a_cluster_and_takes_its_parameter_out(url: str, plain: str,
                                                                                cluster: bool) -> None:
    assert store_url(url) == (plain, cluster, None)


@pytest.mark.parametrize(("url", "message"), [
    ("redis://:s3cret@127.0.0.1:6379/2?cluster=true", "'redis://:***@127.0.0.1:6379/2?cluster=true': a Redis Cluster "
                                                       "has only database 0"),
    ("redis://127.0.0.1:6379?cluster=yes", "cluster must be given once, true or false"),
    ("redis://127.0.0.1:6379?cluster=true&cluster=true", "cluster must be given once, true or false"),
    ("http://127.0.0.1:6379?cluster=true", "is not redis:// or rediss://"),
])
def test_store_url_refuses_what_it_cannot_mean_naming_the_url_without_its_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        store_url(url)
    assert "s3cret" not in str(raised.value)


def test_a_rediss_url_names_a_private_ca_file_the_clients_trust(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    url = f"rediss://app:s3cret@redis.example:6380/0?ssl_ca_certs={ca}"
    assert ca_file(url) == str(ca) and ca_file("rediss://redis.example:6380/0") is None
    with pytest.raises(redis.ConnectionError, match=re.escape(f"its CA file '{ca}' is missing")) as raised:
        connect(url)  # as in a pod whose Redis Secret has no CA key (yet)
    assert "s3cret" not in str(raised.value)
    ca.write_text("PEM")
    client = connect(url)
    assert isinstance(client, redis.Redis) and client.connection_pool.connection_kwargs["ssl_ca_certs"] == str(ca)


@pytest.mark.parametrize(("url", "message"), [
    ("redis://:s3cret@h:6379/0?ssl_ca_certs=/ca.crt", "'redis://:***@h:6379/0?ssl_ca_certs=/ca.crt': ssl_ca_certs "
                                                      "(a CA file) needs rediss:// (TLS)"),
    ("rediss://:s3cret@h:6379/0?ssl_ca_certs=", "ssl_ca_certs must be given once, not empty"),
    ("rediss://:s3cret@h:6379/0?ssl_ca_certs=/a&ssl_ca_certs=/b", "ssl_ca_certs must be given once, not empty"),
])
def test_store_url_refuses_a_ca_file_without_tls_or_not_given_once(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        store_url(url)
    assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize(("url", "plain", "sentinels"), [
    ("redis://sentinel-a:26380/0?sentinel=store", "redis://sentinel-a:26380/0",
     Sentinels("store", (("sentinel-a", 26380),))),
    ("rediss://app:pw@sentinel-a/2?sentinel=store&sentinels=sentinel-b:1,[::1]:2,sentinel-c,sentinel-a&socket_timeout=2",
     "rediss://app:pw@sentinel-a/2?socket_timeout=2",
     Sentinels("store", (("sentinel-a", 26379), ("sentinel-b", 1), ("::1", 2), ("sentinel-c", 26379)))),
    ("redis://:pw@sentinel-a/0?sentinel=store&sentinel_auth=true", "redis://:pw@sentinel-a/0",
     Sentinels("store", (("sentinel-a", 26379),), auth=True)),
    ("redis://sentinel-a/0?sentinel_auth=false&sentinel=store", "redis://sentinel-a/0",
     Sentinels("store", (("sentinel-a", 26379),))),
])
def test_store_url_names_the_sentinels_of_a_master_and_takes_their_parameters_out(url: str, plain: str,
                                                                                  sentinels: Sentinels) -> None:
    assert store_url(url) == (plain, False, sentinels)


@pytest.mark.parametrize(("url", "message"), [
    ("redis://:s3cret@h?sentinels=a:1", "'redis://:***@h?sentinels=a:1': sentinels without sentinel"),
    ("redis://:s3cret@h?sentinel=", "sentinel must be given once, not empty"),
    ("redis://:s3cret@h?sentinel=a&sentinel=b", "sentinel must be given once, not empty"),
    ("redis://:s3cret@h?sentinel=m&sentinels=", "sentinels must be given once, not empty"),
    ("redis://:s3cret@h?sentinel=m&cluster=true", "a Redis Cluster has no Redis Sentinel"),
    ("redis://:s3cret@h?sentinel=m&sentinels=a:x", "'a:x' is not a sentinel's host[:port]"),
    ("redis://:s3cret@h?sentinel=m&sentinels=a,,b", "'' is not a sentinel's host[:port]"),
    ("redis://:s3cret@h?sentinel=m&sentinels=a:70000", "'a:70000' is not a sentinel's host[:port]"),
    ("redis://:s3cret@h?sentinel=m&sentinels=u@a:1", "'u@a:1' is not a sentinel's host[:port]"),
    ("redis://:s3cret@h?sentinel=m&sentinels=a/0", "'a/0' is not a sentinel's host[:port]"),
    ("redis://:s3cret@:1/0?sentinel=m", "':1' is not a sentinel's host[:port]"),
    ("redis://:s3cret@h?sentinel_auth=true", "sentinel_auth without sentinel"),
    ("redis://:s3cret@h?sentinel=m&sentinel_auth=yes", "sentinel_auth must be given once, true or false"),
    ("redis://app@h?sentinel=m&sentinel_auth=true", "sentinel_auth needs the URL's password"),
])
def test_store_url_refuses_sentinels_it_cannot_mean_naming_the_url_without_its_password(url: str,
                                                                                       message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        store_url(url)
    assert "s3cret" not in str(raised.value)


def test_connect_to_sentinels_makes_a_client_of_the_master_they_name_with_the_urls_credentials_and_tls() -> None:
    client = connect("rediss://app:pw@127.0.0.1:1/3?sentinel=store&sentinels=127.0.0.1:2&socket_timeout=2")
    assert isinstance(client, redis.Redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "store"
    assert pool.connection_class is SentinelManagedSSLConnection
    assert {key: pool.connection_kwargs[key] for key in ("username", "password", "db", "socket_timeout")} \
        == {"username": "app", "password": "pw", "db": 3, "socket_timeout": 2.0}
    sentinels = pool.sentinel_manager.sentinels
    asked = [sentinel.connection_pool.connection_kwargs for sentinel in sentinels]  # plain TCP, no credentials
    assert [(kwargs["host"], kwargs["port"], kwargs["password"], kwargs["socket_timeout"]) for kwargs in asked] \
        == [("127.0.0.1", 1, None, 2.0), ("127.0.0.1", 2, None, 2.0)]
    assert all(sentinel.connection_pool.connection_class is redis.Connection for sentinel in sentinels)
    assert issubclass(MasterNotFoundError, UNREACHABLE)  # what the client raises while no sentinel names a master


def test_sentinels_that_require_the_password_are_asked_with_it_alone() -> None:
    """``sentinel_auth=true``: the sentinels get the URL's password (their ``requirepass``), not its user, which is
    the master's."""
    client = connect("redis://app:pw@127.0.0.1:1/0?sentinel=store&sentinel_auth=true&socket_timeout=2")
    assert isinstance(client, redis.Redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert {key: pool.connection_kwargs[key] for key in ("username", "password")} == {"username": "app",
                                                                                       "password": "pw"}
    (sentinel,) = pool.sentinel_manager.sentinels
    asked = sentinel.connection_pool.connection_kwargs
    assert (asked["password"], asked.get("username"), asked["socket_timeout"]) == ("pw", None, 2.0)
