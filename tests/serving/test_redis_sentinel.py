"""Serving and the writers over a master that Redis Sentinels monitor: both find the master through the sentinels
and follow a failover, and serving never reads as `present` values the promoted replica lacks.

A private master, its replica and three sentinels on loopback
(:func:`streamguard.devstack.private_redis.private_redis_sentinel`), the real serving app, and the writers' own
client (:func:`streamguard.onlinestore.client.connect`, redis-py's ``Sentinel``) seeding as the materializer and
the streaming job would.
"""

import asyncio
import os
import secrets
import time
from pathlib import Path

import pytest
import redis
import yaml
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig

from streamguard.devstack.private_redis import private_redis_sentinel
from streamguard.devstack.supervisor import free_port
from streamguard.feastrepo.config import REDIS_PASSWORD_ENV, render_online_store
from streamguard.onlinestore.client import UNREACHABLE, Sentinels, Store, connect, store_url
from streamguard.onlinestore.feast_layout import redis_key
from streamguard.onlinestore.writers import current_marker, store_identity
from streamguard.serving.redis_sentinel import SentinelPool
from streamguard.serving.redisio import RedisUnavailableError, pack_tail
from tests.polling import wait_for
from tests.serving.support import (
    ENTITIES,
    EXPECTED,
    REFS,
    cover,
    entity_id,
    finserve_manifests,
    keys_of,
    served_exactly,
    serving_of,
    statuses_and_values,
    unique_project,
    write_batch_freshness,
    write_config,
    write_finserve_rows,
    write_progress,
)

LOST = range(5)
"""The customers whose rows the replica loses before it is promoted (the promoted master lacks them)."""


def _seed(client: Store, project: str) -> bool:
    """The writers after (re-)seeding (as in ``test_redis_cluster``); False while the store is unreachable."""
    try:
        cover(client, project)
        write_finserve_rows(client, project, ENTITIES, time.time() - 60)
        write_batch_freshness(client, project, time.time() - 30)
        write_progress(client, project, time.time())
    except UNREACHABLE:
        return False
    return True


def _customer_key(project: str, index: int) -> bytes:
    return redis_key(keys_of(project), {"customer_id": entity_id("customer_id", index)})


def test_a_failover_is_followed_never_reading_present_what_the_new_master_lacks_and_heals(tmp_path: Path) -> None:
    project = unique_project()
    config = write_config(tmp_path / "features.yaml", finserve_manifests(project))
    with private_redis_sentinel(tmp_path / "redis") as store:
        writer = connect(store.url)
        assert _seed(writer, project)
        old = store.master_port()
        with store.client() as master:
            assert master.execute_command("WAIT", 1, 5000) == 1  # every write on the replica
        with store.client() as master:
            assert store_identity(writer) == store_identity(master)
        (replica,) = set(store.servers) - {old}
        with redis.Redis(port=replica) as lagging:  # the replica loses rows the master keeps
            lagging.config_set("replica-read-only", "no")
            assert lagging.delete(*(_customer_key(project, i) for i in LOST)) == len(LOST)
        with serving_of(store.url, config) as app:
            assert served_exactly(app)
            assert app.get("/readyz").status_code == 200
            store.kill(old)
            refused = 0
            readiness: list[int] = []

            def failed_over() -> bool:
                """Until serving reads the promoted replica: meanwhile a request is refused or its rows `stale`;
                a `present` row is exact, none is `not_found`, the lost rows are null."""
                nonlocal refused
                readiness.append(app.get("/readyz").status_code)
                read = statuses_and_values(app)
                if read is None:
                    refused += 1
                    return False
                statuses, values = read
                for i, row in enumerate(statuses):
                    assert set(row) <= {"present", "stale"}, read
                    assert values[i] == EXPECTED[i] or (set(row) == {"stale"} and values[i] == [None] * len(REFS))
                    if i in LOST:
                        assert set(row) == {"stale"} and values[i] == [None] * len(REFS), read
                return store.master_port() != old and all(set(row) == {"stale"} for row in statuses)

            wait_for("the promoted replica, every row stale", failed_over, 60, interval=0.1)
            assert refused, "the dead master's requests were refused while the sentinels still named it"
            unready_from = readiness.index(503)  # within a health tick of the kill, and from then on
            assert set(readiness[unready_from:]) == {503} and unready_from <= 3, readiness
            new = store.wait_until_failed_over(old)
            not_ready = app.get("/readyz")
            assert not_ready.status_code == 503 and "StoreGenerationMissing" in not_ready.text
            # the writers' client finds the new master through the sentinels, sees its identity, re-seeds
            wait_for("the writers to see the generation ended", lambda: _generation_ended(writer, project), 30,
                     interval=0.1)
            with redis.Redis(port=new) as promoted:
                assert store_identity(writer) == store_identity(promoted)
            wait_for("the writers to re-seed the promoted replica", lambda: _seed(writer, project), 30, interval=0.1)
            wait_for("every row exact after the re-seed", lambda: served_exactly(app), 10, interval=0.1)
            assert app.get("/readyz").status_code == 200
        writer.close()


def _generation_ended(client: Store, project: str) -> bool:
    """The writers' view: no current generation (False while the store is unreachable)."""
    try:
        return current_marker(client, keys_of(project)) is None
    except UNREACHABLE:
        return False


def test_the_pool_asks_the_next_sentinel_and_refuses_a_master_none_names(tmp_path: Path) -> None:
    with private_redis_sentinel(tmp_path, replicas=0, sentinels=1) as store:
        (sentinel,) = store.sentinels
        with store.client() as master:
            master.hset(b"k", b"f", b"v")
        read = [(b"k", pack_tail(b"f"), 1)]

        async def run() -> None:
            url, _, sentinels = store_url(f"redis://127.0.0.1:{free_port()}/0?sentinel=store"
                                          f"&sentinels=127.0.0.1:{sentinel}")
            assert sentinels is not None
            pool = SentinelPool(url, sentinels)
            assert await pool.hmget_many(read) == [[b"v"]]  # the first sentinel does not answer, the second does
            assert pool.master == ("127.0.0.1", store.master_port()) and pool.identity is not None
            await pool.close()
            unknown = SentinelPool(url, sentinels._replace(master="other"))
            with pytest.raises(RedisUnavailableError, match="no sentinel named the master 'other'") as raised:
                await unknown.hmget_many(read)
            assert "cannot connect to the sentinel" in str(raised.value) and "answered None" in str(raised.value)
            await unknown.close()

        asyncio.run(run())


def test_the_health_tick_follows_a_master_the_sentinels_replaced_while_the_old_one_still_answers(
        tmp_path: Path) -> None:
    """A manual failover (``SENTINEL FAILOVER``) turns the old master into a replica that still answers reads: the
    next health tick asks the sentinels and moves to the new master, with its identity."""
    with private_redis_sentinel(tmp_path, sentinels=1) as store:
        (sentinel,) = store.sentinels
        old = store.master_port()
        read = [(b"k", pack_tail(b"f"), 1)]

        async def run() -> None:
            url, _, sentinels = store_url(store.url)
            assert sentinels is not None
            pool = SentinelPool(url, sentinels)
            assert await pool.hmget_many(read) == [[None]] and pool.master == ("127.0.0.1", old)
            with store.sentinel(sentinel) as asked:
                asked.execute_command("SENTINEL", "FAILOVER", store.master)
            new = await asyncio.to_thread(store.wait_until_failed_over, old)
            with redis.Redis(port=new) as promoted:
                promoted.hset(b"k", b"f", b"v")
                expected = store_identity(promoted)
            identity, replies = await pool.observe_and_hmget(read)
            assert pool.master == ("127.0.0.1", new) and identity == expected and replies == [[b"v"]]
            await pool.close()

        asyncio.run(run())


def test_the_pool_uses_the_master_most_sentinels_name(tmp_path: Path) -> None:
    """A sentinel that names another master (here told to monitor the replica under the same name, as a sentinel
    cut off from the others may still name a replaced master) is outvoted, even when asked first."""
    with private_redis_sentinel(tmp_path) as store:
        master = store.master_port()
        (replica,) = set(store.servers) - {master}
        first, *_ = sorted(store.sentinels)
        with store.sentinel(first) as wrong:
            wrong.execute_command("SENTINEL", "REMOVE", store.master)
            wrong.execute_command("SENTINEL", "MONITOR", store.master, "127.0.0.1", replica, 2)
            assert wrong.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", store.master) \
                == ["127.0.0.1", str(replica)]

        async def run() -> None:
            url, _, sentinels = store_url(store.url)
            assert sentinels is not None and sentinels.addresses[0] == ("127.0.0.1", first)
            pool = SentinelPool(url, sentinels)
            await pool.resolve()
            assert pool.master == ("127.0.0.1", master)
            await pool.close()

        asyncio.run(run())


def test_sentinels_that_require_the_password_are_asked_with_it_by_the_writers_serving_and_feast(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every server and sentinel requires the password, as the Bitnami chart's ``auth.sentinel`` (its default) sets
    them up: with ``sentinel_auth=true`` the writers, serving and Feast's generated settings find the master and read
    what the writers wrote; without it each is refused, and says so."""
    password = secrets.token_hex(8)
    with private_redis_sentinel(tmp_path, sentinels=2, password=password) as store:
        url = store.url
        with connect(url) as writer:
            writer.hset(b"k", b"f", b"v")
        plain, _, sentinels = store_url(url)
        assert sentinels is not None and sentinels.auth

        async def read(asking: Sentinels, with_url: str = plain) -> list[object]:
            pool = SentinelPool(with_url, asking)
            try:
                return await pool.hmget_many([(b"k", pack_tail(b"f"), 1)])
            finally:
                await pool.close()

        assert asyncio.run(read(sentinels)) == [[b"v"]]
        monkeypatch.setenv(REDIS_PASSWORD_ENV, password)
        settings = yaml.safe_load(os.path.expandvars(yaml.safe_dump(render_online_store(url))))  # as Feast reads it
        with RedisOnlineStore()._get_client(RedisOnlineStoreConfig(**settings)) as feast:
            assert feast.hget(b"k", b"f") == b"v"

        without = url.replace("&sentinel_auth=true", "")
        with pytest.raises(UNREACHABLE, match="AuthenticationError"), connect(without) as refused:
            refused.hget(b"k", b"f")
        with pytest.raises(RedisUnavailableError, match="NOAUTH"):
            asyncio.run(read(sentinels._replace(auth=False)))
        with pytest.raises(RedisUnavailableError, match="refused the connection setup: WRONGPASS") as wrong:
            asyncio.run(read(sentinels, plain.replace(password, "wrong")))
        assert password not in str(wrong.value)
