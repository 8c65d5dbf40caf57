"""The online store's redis-py client factory (no server: a client connects on first use)."""

import re

import pytest
import redis

from streamguard.onlinestore.client import connect, shared, store_url, without_password


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
    assert store_url(url) == (plain, cluster)


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
