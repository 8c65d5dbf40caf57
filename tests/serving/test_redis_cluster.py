"""Serving over a Redis Cluster (issue 21): every key routed to the master of its slot, MOVED and ASK followed, and a
failover never read as `present` values the store may have lost.

Private clusters of redis-servers on loopback (:func:`streamguard.devstack.private_redis.private_redis_cluster`), the
real serving app, and the writers' own functions (:mod:`streamguard.onlinestore.writers`) seeding through redis-py's
``RedisCluster``, as the materializer and the streaming job would.
"""

import asyncio
import gc
import random
import time
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from redis.cluster import RedisCluster

from streamguard.devstack.private_redis import private_redis_cluster
from streamguard.onlinestore.client import store_url
from streamguard.onlinestore.feast_layout import redis_key, redis_key_of
from streamguard.onlinestore.generation import combine_identities, generation_key
from streamguard.onlinestore.pane_layout import pane_key, pane_prefix
from streamguard.onlinestore.slots import key_slot
from streamguard.onlinestore.writers import current_marker, store_identity
from streamguard.serving.redis_cluster import ClusterPool
from streamguard.serving.redisio import PoolOptions, Unreachable, pack_tail
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


def _customer_key(project: str, index: int) -> str:
    """The Redis key of customer ``index``'s batch row (as ``CLUSTER KEYSLOT`` takes it)."""
    return redis_key(keys_of(project), {"customer_id": entity_id("customer_id", index)}).decode("latin-1")


def _seed(client: RedisCluster, project: str) -> None:
    """The writers after (re-)seeding: a generation of the whole cluster, coverage, FinServe's batch rows and the
    records of a running materializer and streaming job."""
    cover(client, project)
    write_finserve_rows(client, project, ENTITIES, time.time() - 60)
    write_batch_freshness(client, project, time.time() - 30)
    write_progress(client, project, time.time())


def test_key_slots_are_redis_own(tmp_path: Path) -> None:
    rng = random.Random(21)
    keys = [b"", b"{}", b"{}x", b"a{}b{c}", b"{a}{b}", b"x{", b"x}{y", b"{{a}}", b"sg-gen:{p_default}",
            generation_key("fraud_teamDa"), redis_key("p_default", {"account_id": "A000042"})]
    keys += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) for _ in range(300)]
    keys += [b"pre{" + bytes(rng.choice(b"ab}{") for _ in range(6)) + b"}post" for _ in range(300)]
    with private_redis_cluster(tmp_path, masters=3, replicas=0) as cluster, cluster.node(cluster.ports[0]) as node:
        assert [key_slot(key) for key in keys] == [int(cast(int, node.cluster("KEYSLOT", key))) for key in keys]
        prefix = pane_prefix("p_default", "account-realtime", "0123456789ab")
        panes = [pane_key(prefix, key) for key in keys]
        feast = [redis_key_of(key, b"p_default") for key in keys]
        assert ([node.cluster("KEYSLOT", key) for key in panes]  # the pane hash joins the entity's Feast hash
                == [node.cluster("KEYSLOT", key) for key in feast])


def test_serving_reads_every_master_and_a_generation_of_the_whole_cluster(tmp_path: Path) -> None:
    project = unique_project()
    config = write_config(tmp_path / "features.yaml", finserve_manifests(project))
    with private_redis_cluster(tmp_path / "redis", masters=3, replicas=0) as cluster:
        client = cluster.client()
        _seed(client, project)
        masters = {cluster.master_of(_customer_key(project, i)) for i in range(ENTITIES)}
        assert len(masters) == 3  # the rows of one request come from every master
        marker = current_marker(client, keys_of(project))
        assert marker is not None and len(marker.run_id.split(",")) == 3
        with serving_of(cluster.url, config) as app:
            assert served_exactly(app)
            ready = app.get("/readyz")
            assert ready.status_code == 200, ready.text
        identities = [store_identity(cluster.node(port)) for port in cluster.ports]
        assert store_identity(client) == combine_identities(identities)
        client.close()


def _node_id(node: redis.Redis) -> str:
    return cast(bytes, node.cluster("MYID")).decode()


def test_the_pool_follows_ask_during_a_slot_migration_and_moved_after_it(tmp_path: Path) -> None:
    with private_redis_cluster(tmp_path, masters=3, replicas=0) as cluster:
        old, migrated = b"{acct}:old", b"{acct}:new"
        slot = key_slot(old)
        source_port = cluster.master_of(old.decode())
        target_port = next(port for port in cluster.ports if port != source_port)
        client = cluster.client()
        client.hset(old, "f", "1")  # type: ignore[arg-type]
        read = [(old, pack_tail(b"f"), 1)]

        async def run() -> None:
            pool = ClusterPool(store_url(cluster.url)[0])
            assert await pool.hmget_many(read) == [[b"1"]]  # the slot table as it was
            with cluster.node(source_port) as source, cluster.node(target_port) as target, \
                    redis.Redis(port=target_port, single_connection_client=True) as asking:
                source_id, target_id = _node_id(source), _node_id(target)
                target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
                source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
                asking.execute_command("ASKING")
                asking.hset(migrated, "f", "2")
                # `migrated` is already on the target: the source answers ASK, `old` it still answers itself
                both = [*read, (migrated, pack_tail(b"f"), 1)]
                assert await pool.hmget_many(both) == [[b"1"], [b"2"]]
                source.execute_command("MIGRATE", "127.0.0.1", target_port, old, 0, 5000)
                for port in cluster.ports:
                    with cluster.node(port) as node:
                        node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
            # the slot moved: the source answers MOVED, the pool follows it and learns the new table
            assert await pool.hmget_many(both) == [[b"1"], [b"2"]]
            assert await pool.hmget_many(both) == [[b"1"], [b"2"]]
            await pool.close()

        asyncio.run(run())
        client.close()


def test_a_paused_master_marks_only_its_reads_and_a_request_given_up_on_keeps_no_connection(tmp_path: Path) -> None:
    """Every master's round trip is sent before any reply is read: a master that does not answer in time costs
    only its own reads, and a request cancelled while waiting (a client that went away) gives back every
    connection it took (one per master here: a kept one would leave the next request none)."""
    with private_redis_cluster(tmp_path, masters=3, replicas=0) as cluster:
        client = cluster.client()
        keys = [f"{{k{i}}}".encode() for i in range(30)]
        for key in keys:
            client.hset(key, "f", key)  # type: ignore[arg-type]
        reads = [(key, pack_tail(b"f"), 1) for key in keys]
        slow = cluster.master_of(keys[0].decode())
        on_slow = [cluster.master_of(key.decode()) == slow for key in keys]
        assert 0 < sum(on_slow) < len(keys)

        async def run() -> None:
            unhandled: list[dict[str, Any]] = []
            asyncio.get_running_loop().set_exception_handler(lambda _, context: unhandled.append(context))
            pool = ClusterPool(store_url(cluster.url)[0], PoolOptions(max_connections=1, pool_timeout=0.25))
            assert await pool.hmget_many(reads) == [[key] for key in keys]
            with cluster.node(slow) as node:
                node.execute_command("CLIENT", "PAUSE", 600, "ALL")
            replies = await pool.hmget_many(reads)
            assert [isinstance(reply, Unreachable) for reply in replies] == on_slow
            assert [reply for reply, lost in zip(replies, on_slow, strict=True) if not lost] \
                == [[key] for key, lost in zip(keys, on_slow, strict=True) if not lost]
            await asyncio.sleep(0.7)
            assert await pool.hmget_many(reads) == [[key] for key in keys]  # a connection to every master again
            for port in cluster.ports:  # every master slow: the round trips after the first are still pending
                with cluster.node(port) as node:
                    node.execute_command("CLIENT", "PAUSE", 600, "ALL")
            with pytest.raises(TimeoutError):  # waiting for the first master's replies (keys[0] is its)
                async with asyncio.timeout(0.05):
                    await pool.hmget_many(reads)
            await asyncio.sleep(0.7)
            assert await pool.hmget_many(reads) == [[key] for key in keys]
            await pool.close()
            gc.collect()
            assert not unhandled, "an abandoned round trip left an error nobody read"

        asyncio.run(run())
        client.close()


def test_a_killed_master_marks_its_rows_stale_never_silently_present_and_heals(tmp_path: Path) -> None:
    """With ``cluster-require-full-coverage no``; with Redis' default every node answers ``CLUSTERDOWN`` while a
    slot has no master, so every read is unreachable and serving answers 503."""
    project = unique_project()
    config = write_config(tmp_path / "features.yaml", finserve_manifests(project))
    with private_redis_cluster(tmp_path / "redis", masters=3, replicas=1, full_coverage=False) as cluster:
        client = cluster.client()
        _seed(client, project)
        for port in cluster.ports:  # every write on a replica before the crash (replication is asynchronous)
            with cluster.node(port) as node:
                if node.info("replication")["role"] == "master":
                    assert node.execute_command("WAIT", 1, 5000) == 1
        with serving_of(cluster.url, config) as app:
            assert served_exactly(app)
            first = _customer_key(project, 0)
            victim = cluster.master_of(first)
            marker_on_victim = cluster.master_of(generation_key(keys_of(project)).decode()) == victim
            assert any(cluster.master_of(_customer_key(project, i)) != victim for i in range(ENTITIES))
            cluster.kill(victim)
            seen: list[str] = []

            def failed_over() -> bool:
                """Until the replica took over and serving reads every row `stale`: a `present` row is exact, a
                `stale` one null or as stored, none `not_found`; the victim's rows are `stale` and null while its
                slots have no master."""
                read = statuses_and_values(app)
                assert read is not None, "a master down: its rows marked, the request not refused"
                statuses, values = read
                kinds = [",".join(sorted(set(row))) for row in statuses]
                seen.append(";".join(sorted(set(kinds))))
                for i, kind in enumerate(kinds):
                    assert kind in ("present", "stale"), read
                    assert values[i] == EXPECTED[i] or (kind == "stale" and values[i] == [None] * len(REFS)), read
                # not ready at any point: a master away (its slots unserved), then a generation without a marker
                not_ready = app.get("/readyz")
                assert not_ready.status_code == 503, not_ready.text
                return cluster.master_of(first) != victim and set(kinds) == {"stale"}

            wait_for("the replica to take over, every row stale", failed_over, 60, interval=0.1)
            if not marker_on_victim:  # while the victim's slots had no master, only its rows were marked
                assert "present;stale" in seen, seen
            not_ready = app.get("/readyz")
            assert not_ready.status_code == 503 and "StoreGenerationMissing" in not_ready.text
            # the writers see the new cluster identity, start a new generation and re-seed
            cluster.wait_until_healthy()
            client.close()
            client = cluster.client()
            assert current_marker(client, keys_of(project)) is None
            _seed(client, project)
            wait_for("every row exact after the re-seed", lambda: served_exactly(app), 10, interval=0.1)
            assert app.get("/readyz").status_code == 200
        client.close()


def test_a_flush_of_a_master_without_the_marker_ends_the_generation_and_heals(tmp_path: Path) -> None:
    """``FLUSHALL`` on one master empties only that master: the marker, held by another, survives, so the flush
    must show in the cluster's identity, for serving (its health tick) and for the writers (their next write)."""
    project = unique_project()
    config = write_config(tmp_path / "features.yaml", finserve_manifests(project))
    with private_redis_cluster(tmp_path / "redis", masters=3, replicas=0) as cluster:
        client = cluster.client()
        _seed(client, project)
        holder = cluster.master_of(generation_key(keys_of(project)).decode())
        victim = next(port for port in cluster.ports if port != holder
                      and any(cluster.master_of(_customer_key(project, i)) == port for i in range(ENTITIES)))
        with serving_of(cluster.url, config) as app:
            assert served_exactly(app)
            with cluster.node(victim) as node:
                node.flushall()
                assert node.dbsize() == 0
            assert current_marker(client, keys_of(project)) is None  # the writers start a new generation

            def every_row_stale() -> bool:
                read = statuses_and_values(app)
                assert read is not None
                return {status for row in read[0] for status in row} == {"stale"}

            wait_for("serving's health tick to see the flush: every row stale", every_row_stale, 10, interval=0.05)
            not_ready = app.get("/readyz")
            assert not_ready.status_code == 503 and "StoreGenerationMissing" in not_ready.text
            _seed(client, project)  # the re-seed in a new generation
            wait_for("every row exact after the re-seed", lambda: served_exactly(app), 10, interval=0.1)
            assert app.get("/readyz").status_code == 200
        client.close()
