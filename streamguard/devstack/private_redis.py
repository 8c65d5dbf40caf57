"""Private redis-servers for tests and benchmarks that flush, fill, restart or fail over Redis (never the stack's):
one server, or a Redis Cluster of masters with replicas, all on loopback, from Debian's redis-server."""

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis
from redis.cluster import RedisCluster

from streamguard.devstack.certs import ensure_pki, ensure_service_cert
from streamguard.devstack.supervisor import free_port
from streamguard.onlinestore.slots import SLOTS


def _binary(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed (`streamguard dev provision` installs redis-server)")
    return found


@dataclass(frozen=True)
class RedisTls:
    """A private server's TLS: its certificate (for 127.0.0.1 and localhost), the client certificate a node presents
    to the others (cluster bus, replication: mutual TLS) and the CA that issued both. Clients must trust the CA
    (``SSL_CERT_FILE`` for code that takes only a URL) and present no certificate."""

    ca: Path
    cert: Path
    key: Path
    node_cert: Path
    node_key: Path

    @classmethod
    def issued_in(cls, directory: Path) -> "RedisTls":
        """A CA of its own in ``directory`` (created once) and the servers' certificates from it."""
        pki = ensure_pki(directory)
        cert, key = ensure_service_cert(pki, "redis", ("127.0.0.1", "localhost"))
        node_cert, node_key = ensure_service_cert(pki, "redis-node", client=True)
        return cls(pki.ca_cert, cert, key, node_cert, node_key)

    def server_options(self, port: int) -> tuple[str, ...]:
        """``port`` for TLS only (no plain TCP port), the cluster bus and replication too."""
        return ("--port", "0", "--tls-port", str(port), "--tls-cert-file", str(self.cert), "--tls-key-file",
                str(self.key), "--tls-client-cert-file", str(self.node_cert), "--tls-client-key-file",
                str(self.node_key), "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "optional",
                "--tls-cluster", "yes", "--tls-replication", "yes")


def _start(workdir: Path, port: int, options: tuple[str, ...], tls: RedisTls | None = None) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    listen = tls.server_options(port) if tls else ("--port", str(port))
    return subprocess.Popen([_binary("redis-server"), *listen, "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir), *options], stdout=subprocess.DEVNULL)


def _client(port: int, tls: RedisTls | None) -> redis.Redis:
    if tls is None:
        return redis.Redis(port=port)
    return redis.Redis(port=port, ssl=True, ssl_ca_certs=str(tls.ca))


def _wait_for_ping(client: redis.Redis, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def private_redis(workdir: Path, *options: str, port: int | None = None,
                  tls: RedisTls | None = None) -> Iterator[redis.Redis]:
    """A client of a redis-server of our own on ``port`` (default: a free one; give the same port to restart
    a server where its clients look for it), no persistence unless ``options`` ask; over TLS only with ``tls``."""
    port = port or free_port()
    process = _start(workdir, port, options, tls)
    client = _client(port, tls)
    try:
        _wait_for_ping(client, process)
        yield client
    finally:
        client.close()
        _stop(process)


def _until(done: Callable[[], bool], timeout: float, failure: Callable[[], str]) -> None:
    """Poll ``done`` until it holds; after ``timeout`` seconds raise TimeoutError with ``failure()``."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{failure()} after {timeout:.0f}s")
        time.sleep(0.2)


@dataclass
class PrivateCluster:
    """A Redis Cluster on loopback: its servers by port, every slot served by a master."""

    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    tls: RedisTls | None = None

    @property
    def ports(self) -> list[int]:
        return sorted(self.processes)

    @property
    def url(self) -> str:
        """The online store URL of the cluster, through a live node (``streamguard.onlinestore.client.store_url``)."""
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.live()[0]}/0?cluster=true"

    def client(self) -> RedisCluster:
        """A cluster client that learns the topology from a live node (and again after MOVED or a failover)."""
        if self.tls is None:
            return RedisCluster(host="127.0.0.1", port=self.live()[0])
        return RedisCluster(host="127.0.0.1", port=self.live()[0], ssl=True, ssl_ca_certs=str(self.tls.ca))

    def node(self, port: int) -> redis.Redis:
        return _client(port, self.tls)

    def live(self) -> list[int]:
        """The ports of the servers still running."""
        return [port for port in self.ports if self.processes[port].poll() is None]

    def nodes(self, port: int) -> dict[str, dict[str, Any]]:
        """``CLUSTER NODES`` as the server on ``port`` sees the cluster: ``"host:port" -> {"flags", ...}``."""
        with self.node(port) as node:
            return cast(dict[str, dict[str, Any]], node.cluster("NODES"))

    def masters_by_slot_range(self, port: int) -> dict[tuple[int, int], int]:
        """``(first slot, last slot) -> master port`` as the server on ``port`` sees the cluster now."""
        with self.node(port) as node:
            ranges = cast(list[list[Any]], node.cluster("SLOTS"))
        return {(start, end): int(master[1]) for start, end, master, *_ in ranges}

    def slot(self, key: str) -> int:
        with self.node(self.live()[0]) as node:
            return int(cast(int, node.cluster("KEYSLOT", key)))

    def master_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot now, as a live server sees it."""
        slot = self.slot(key)
        for (start, end), master in self.masters_by_slot_range(self.live()[0]).items():
            if start <= slot <= end:
                return master
        raise LookupError(f"no master serves slot {slot}")

    def replicas_seen(self, port: int) -> list[str]:
        """The replicas (``host:port``) the server on ``port`` knows of."""
        return [address for address, node in self.nodes(port).items() if "slave" in node["flags"].split(",")]

    def wait_until_replicas_known(self, replicas: int, timeout: float = 30.0) -> None:
        """Until every server has heard of all ``replicas`` replicas (gossip may lag behind the slots)."""
        def seen() -> dict[int, int]:
            return {port: len(self.replicas_seen(port)) for port in self.live()}
        _until(lambda: set(seen().values()) == {replicas}, timeout,
               lambda: f"Redis Cluster replicas known by each server {seen()}, not {replicas}")

    def kill(self, port: int) -> None:
        """SIGKILL one server, as a crash would: no shutdown, no failover handed over."""
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def _state(self, port: int, live: list[int]) -> tuple[str, int, bool]:
        """``(cluster_state, slots ok, every slot's master alive)`` as the server on ``port`` sees it."""
        with self.node(port) as node:
            info = node.cluster("INFO")
        masters = set(self.masters_by_slot_range(port).values())
        return info["cluster_state"], int(info["cluster_slots_ok"]), masters <= set(live)

    def wait_until_healthy(self, timeout: float = 30.0) -> None:
        """Until every live node reports ``cluster_state:ok`` with every slot served by a live master."""
        live = self.live()
        _until(lambda: all(self._state(port, live) == ("ok", SLOTS, True) for port in live), timeout,
               lambda: f"Redis Cluster on ports {live} not healthy: {[self._state(port, live) for port in live]}")


@contextmanager
def private_redis_cluster(workdir: Path, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 2000,
                          full_coverage: bool = True, ports: Sequence[int] = (),
                          tls: RedisTls | None = None) -> Iterator[PrivateCluster]:
    """A Redis Cluster of our own (``redis-cli --cluster create``), healthy when yielded, stopped afterwards.
    ``node_timeout_ms`` is how long a master may be unreachable before its replica takes over; without
    ``full_coverage`` (``cluster-require-full-coverage no``) the other masters keep answering while a slot has
    no master. ``ports``: the first nodes' ports (chosen before, for clients made while the cluster is away),
    free ones for the others. ``tls``: every node over TLS only, the cluster bus too."""
    cluster = PrivateCluster(tls=tls)
    with ExitStack() as stack:
        for index in range(masters * (1 + replicas)):
            port = ports[index] if index < len(ports) else free_port()
            process = _start(workdir / str(port), port,
                             ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                              "--cluster-port", str(free_port()),  # not port + 10000: that may be taken or > 65535
                              "--cluster-node-timeout", str(node_timeout_ms),
                              "--cluster-require-full-coverage", "yes" if full_coverage else "no"), tls)
            stack.callback(_stop, process)
            cluster.processes[port] = process
            with cluster.node(port) as node:
                _wait_for_ping(node, process)
        created = subprocess.run([_binary("redis-cli"), "--cluster", "create",
                                  *(f"127.0.0.1:{port}" for port in cluster.ports),
                                  "--cluster-replicas", str(replicas), "--cluster-yes",
                                  *(("--tls", "--cacert", str(tls.ca)) if tls else ())],
                                 capture_output=True, text=True, check=False)
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}{created.stderr}")
        cluster.wait_until_healthy()
        cluster.wait_until_replicas_known(masters * replicas)
        yield cluster
