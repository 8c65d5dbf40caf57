"""The stack's Redis Cluster: three masters from the same redis-server as the stack's Redis, beside it.

Every node binds 127.0.0.1 and the pod bridge's address and announces the bridge's address, so the slot table
and every ``MOVED`` reply name an address that the host and the pods on the stack's node both dial, and no
forward is needed (:mod:`streamguard.devstack.podgateway` forwards one port to one loopback port; a cluster
client goes wherever the slot table says). No replicas: a development store, for which a node down means its
slots down. The failover tests make clusters of their own (:mod:`streamguard.devstack.private_redis`).
"""

import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import redis

from streamguard.devstack.supervisor import Service

MASTERS = 3
SERVICES = tuple(f"redis-cluster-{index}" for index in range(1, MASTERS + 1))
"""The nodes' service names (and port names, the bus port's with ``-bus``)."""
PORT_NAMES = (*SERVICES, *(f"{name}-bus" for name in SERVICES))


def url(address: str, ports: Mapping[str, int]) -> str:
    """The online store URL of the cluster (``streamguard.onlinestore.client.store_url``), from the host and pods."""
    return f"redis://{address}:{ports[SERVICES[0]]}/0?cluster=true"


def redis_binary(name: str) -> str:
    """The path of ``redis-server`` or ``redis-cli`` (Debian's, installed by ``streamguard dev provision``)."""
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed (`streamguard dev provision` installs redis-server)")
    return found


def create(addresses: Sequence[str], replicas: int, options: Sequence[str] = ()) -> None:
    """``redis-cli --cluster create`` of the nodes at ``addresses`` (``host:port``), ``replicas`` per master;
    ``options``: redis-cli's own (TLS)."""
    created = subprocess.run([redis_binary("redis-cli"), "--cluster", "create", *addresses, "--cluster-replicas",
                              str(replicas), "--cluster-yes", *options], capture_output=True, text=True, check=False)
    if created.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}{created.stderr}")


def node(work: Path, name: str, address: str, port: int, bus_port: int) -> Service:
    """One master: AOF and no eviction as the stack's Redis (a full node refuses writes, it drops no key)."""
    work.mkdir(parents=True, exist_ok=True)

    def ready() -> bool:
        with redis.Redis(host=address, port=port, socket_timeout=1) as client:
            return bool(client.ping())

    return Service(
        name,
        [redis_binary("redis-server"), "--bind", "127.0.0.1", address, "--port", str(port), "--dir", str(work),
         "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(bus_port),
         "--cluster-announce-ip", address, "--cluster-node-timeout", "5000",
         "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--maxmemory", "1gb",
         "--maxmemory-policy", "noeviction", "--protected-mode", "no", "--daemonize", "no"],
        ready=ready,
    )


def nodes(work: Path, address: str, ports: Mapping[str, int]) -> list[Service]:
    return [node(work / name, name, address, ports[name], ports[f"{name}-bus"]) for name in SERVICES]


def _info(address: str, port: int) -> dict[str, str]:
    with redis.Redis(host=address, port=port, socket_timeout=2, decode_responses=True) as client:
        return {key: str(value) for key, value in client.cluster("INFO").items()}


def ensure_formed(address: str, ports: Sequence[int], timeout: float = 60.0) -> None:
    """Create the cluster from nodes that know only themselves and have no slot (its first start); then wait
    until every node serves every slot with all the others known (after a restart, from ``nodes.conf``)."""
    infos = [_info(address, port) for port in ports]
    if all(info["cluster_known_nodes"] == "1" and info["cluster_slots_assigned"] == "0" for info in infos):
        create([f"{address}:{port}" for port in ports], replicas=0)
    deadline = time.monotonic() + timeout
    while True:
        infos = [_info(address, port) for port in ports]
        if all(info["cluster_state"] == "ok" and info["cluster_slots_ok"] == "16384"
               and info["cluster_known_nodes"] == str(len(ports)) for info in infos):
            return
        if time.monotonic() > deadline:
            seen = "; ".join(f"{port}: state {info['cluster_state']}, slots ok {info['cluster_slots_ok']}, "
                             f"nodes known {info['cluster_known_nodes']}"
                             for port, info in zip(ports, infos, strict=True))
            raise RuntimeError(f"the stack's Redis Cluster is not healthy after {timeout:.0f}s ({seen}); "
                               "`streamguard dev purge` starts it afresh")
        time.sleep(0.5)
