"""The private Redis Cluster the online-store tests run against: 3 masters with a replica each, every slot served;
an entity's keys share one slot (its hash tag); a killed master's replica takes over and a client that wrote
before the crash reads every value back exactly after it."""

from pathlib import Path

from streamguard.devstack.private_redis import private_redis_cluster

ACCOUNTS = [f"A{n:06d}" for n in range(300)]


def test_three_masters_each_with_a_replica_serve_every_slot(tmp_path: Path) -> None:
    with private_redis_cluster(tmp_path, masters=3, replicas=1) as cluster:
        roles = [node["flags"].replace("myself,", "") for node in cluster.nodes(cluster.ports[0]).values()]
        with cluster.node(cluster.ports[0]) as node:
            info = node.cluster("INFO")
        assert sorted(roles) == ["master"] * 3 + ["slave"] * 3
        assert info["cluster_state"] == "ok"
        assert int(info["cluster_slots_assigned"]) == 16384
        assert int(info["cluster_size"]) == 3


def test_an_entitys_keys_share_a_slot_and_the_keys_spread_over_every_master(tmp_path: Path) -> None:
    with private_redis_cluster(tmp_path, masters=3, replicas=0) as cluster:
        assert cluster.slot("{A000042}:window:1m") == cluster.slot("{A000042}:batch")
        assert len({cluster.master_of(f"{{{account}}}") for account in ACCOUNTS}) == 3


def test_after_a_master_is_killed_its_replica_serves_every_value_exactly(tmp_path: Path) -> None:
    with private_redis_cluster(tmp_path, masters=3, replicas=1) as cluster:
        client = cluster.client()
        for account in ACCOUNTS:
            client.hset(f"{{{account}}}:features", mapping={"txn_count_1m": len(account), "id": account})
        for port in cluster.ports:  # every write on a replica before the crash (replication is asynchronous)
            with cluster.node(port) as node:
                if node.info("replication")["role"] == "master":
                    assert node.execute_command("WAIT", 1, 5000) == 1
        victim = cluster.master_of("{A000042}")
        cluster.kill(victim)
        cluster.wait_until_healthy(timeout=30)
        assert cluster.master_of("{A000042}") != victim
        read = {account: client.hgetall(f"{{{account}}}:features") for account in ACCOUNTS}
        assert read == {account: {b"txn_count_1m": str(len(account)).encode(), b"id": account.encode()}
                        for account in ACCOUNTS}
        client.close()
