"""Private redis-servers for tests and benchmarks that flush, fill, restart or fail over Redis (never the stack's):
one server, a Redis Cluster of masters with replicas, or a master with replicas and Redis Sentinels, all on loopback,
from Debian's redis-server."""

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
from streamguard.devstack.redis_cluster import create, redis_binary
from streamguard.devstack.supervisor import free_port
from streamguard.onlinestore.slots import SLOTS


@dataclass(frozen=True)
class RedisTls:
    """A private server's TLS: its certificate (for 127.0.0.1 and localhost), the client certificate a node presents
    to the others (cluster bus, replication: mutual TLS) and the CA that issued both. Clients must trust the CA
    (code that takes only a URL: its ``ssl_ca_certs=<ca>``) and present no certificate."""

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
    return subprocess.Popen([redis_binary("redis-server"), *listen, "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir), *options], stdout=subprocess.DEVNULL)


def _client(port: int, tls: RedisTls | None, password: str | None = None) -> redis.Redis:
    if tls is None:
        return redis.Redis(port=port, password=password)
    return redis.Redis(port=port, password=password, ssl=True, ssl_ca_certs=str(tls.ca))


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

    def _online_replicas(self) -> dict[int, int]:
        """Per live master, its replicas whose first sync is done (``INFO replication``: ``state=online``)."""
        online = {}
        for port in self.live():
            with self.node(port) as node:
                info = node.info("replication")
            if info["role"] == "master":
                online[port] = sum(1 for name, value in info.items()
                                   if name.startswith("slave") and isinstance(value, dict)
                                   and value.get("state") == "online")
        return online

    def wait_until_replicas_online(self, replicas: int, timeout: float = 60.0) -> None:
        """Until every master has ``replicas`` replicas past their first sync, so that a write can be waited for
        (``WAIT``) at once: a replica the cluster knows of may still be waiting for its master's full sync."""
        _until(lambda: set(self._online_replicas().values()) == {replicas}, timeout,
               lambda: f"Redis Cluster replicas past their first sync per master {self._online_replicas()}, "
                       f"not {replicas}")

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
            port = ports[index] if index < len(ports) else free_port(ports)
            bus = free_port((*ports, port))  # not port + 10000: that may be taken or > 65535
            process = _start(workdir / str(port), port,
                             ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                              "--cluster-port", str(bus),
                              "--cluster-node-timeout", str(node_timeout_ms),
                              "--cluster-require-full-coverage", "yes" if full_coverage else "no",
                              "--repl-diskless-sync-delay", "0"), tls)  # a replica's first sync starts at once
            stack.callback(_stop, process)
            cluster.processes[port] = process
            with cluster.node(port) as node:
                _wait_for_ping(node, process)
        create([f"127.0.0.1:{port}" for port in cluster.ports], replicas,
               ("--tls", "--cacert", str(tls.ca)) if tls else ())
        cluster.wait_until_healthy()
        cluster.wait_until_replicas_known(masters * replicas)
        if replicas:
            cluster.wait_until_replicas_online(replicas)
        yield cluster


@dataclass
class PrivateSentinel:
    """A master, its replicas and the Redis Sentinels that monitor them as ``master``, all on loopback; with
    ``password``, every server and every sentinel requires it."""

    master: str
    password: str | None = None
    servers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    sentinels: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The online store URL through every sentinel (``streamguard.onlinestore.client.store_url``)."""
        first, *others = sorted(self.sentinels)
        extra = f"&sentinels={','.join(f'127.0.0.1:{port}' for port in others)}" if others else ""
        if self.password:
            return f"redis://:{self.password}@127.0.0.1:{first}/0?sentinel={self.master}{extra}&sentinel_auth=true"
        return f"redis://127.0.0.1:{first}/0?sentinel={self.master}{extra}"

    def sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.password, decode_responses=True)

    def master_port(self) -> int:
        """The master's port as the first live sentinel names it now."""
        port = next(port for port, process in sorted(self.sentinels.items()) if process.poll() is None)
        with self.sentinel(port) as sentinel:
            _, master_port = cast(list[str], sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME",
                                                                       self.master))
        return int(master_port)

    def client(self) -> redis.Redis:
        """A client of the master now (no failover followed)."""
        return redis.Redis(port=self.master_port(), password=self.password)

    def kill(self, port: int) -> None:
        """SIGKILL a server, as a crash would."""
        process = self.servers[port]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def _known(self, port: int) -> tuple[int, int]:
        """``(healthy replicas, other sentinels)`` the sentinel on ``port`` knows of for the master."""
        with self.sentinel(port) as sentinel:
            replicas = cast(list[dict[str, Any]], sentinel.sentinel_slaves(self.master))
            state = cast(dict[str, Any], sentinel.sentinel_master(self.master))
        healthy = [replica for replica in replicas
                   if replica["flags"] == "slave" and replica["master-link-status"] == "ok"]
        return len(healthy), int(state["num-other-sentinels"])

    def wait_until_known(self, replicas: int, timeout: float = 30.0) -> None:
        """Until every sentinel knows the master's ``replicas`` healthy replicas and every other sentinel (so that
        they can agree on a failover)."""
        wanted = (replicas, len(self.sentinels) - 1)
        _until(lambda: all(self._known(port) == wanted for port in self.sentinels), timeout,
               lambda: f"sentinels know {[self._known(port) for port in self.sentinels]}, not {wanted}")

    def _master_record(self, port: int) -> tuple[int, str]:
        """``(port, flags)`` of the master as the sentinel on ``port`` records it (``SENTINEL MASTER``)."""
        with self.sentinel(port) as sentinel:
            state = cast(dict[str, Any], sentinel.sentinel_master(self.master))
        return int(state["port"]), state["flags"]

    def wait_until_failed_over(self, old: int, timeout: float = 30.0) -> int:
        """Until a master other than ``old`` answers as one and every live sentinel records it, the failover over; its
        port. (``GET-MASTER-ADDR-BY-NAME`` names the promoted replica earlier, while the failover is in progress;
        redis-py's ``Sentinel`` reads ``SENTINEL MASTERS``, so meanwhile it finds no master.)"""
        live = [port for port, process in sorted(self.sentinels.items()) if process.poll() is None]

        def failed_over() -> bool:
            records = {self._master_record(port) for port in live}
            if len(records) != 1:
                return False
            ((port, flags),) = records
            with _client(port, None, self.password) as node:
                return port != old and flags == "master" and node.info("replication")["role"] == "master"
        _until(failed_over, timeout, lambda: f"sentinels record {[self._master_record(port) for port in live]}, not "
                                             f"a replica of {old} promoted")
        return self.master_port()


def _sentinel_config(workdir: Path, port: int, master: str, master_port: int, quorum: int, down_after_ms: int,
                     failover_timeout_ms: int, password: str | None) -> Path:
    """A sentinel's configuration file (a sentinel rewrites it with what it learns, so one per sentinel); with
    ``password``, the sentinel requires it (and gives it to the other sentinels) and gives it to the servers."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "sentinel.conf"
    auth = f"requirepass {password}\nsentinel auth-pass {master} {password}\n" if password else ""
    config.write_text(f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                      f"sentinel monitor {master} 127.0.0.1 {master_port} {quorum}\n"
                      f"sentinel down-after-milliseconds {master} {down_after_ms}\n"
                      f"sentinel failover-timeout {master} {failover_timeout_ms}\n{auth}")
    return config


@contextmanager
def private_redis_sentinel(workdir: Path, master: str = "store", replicas: int = 1, sentinels: int = 3,
                           down_after_ms: int = 1000, failover_timeout_ms: int = 3000,
                           password: str | None = None) -> Iterator[PrivateSentinel]:
    """A master with ``replicas`` replicas and ``sentinels`` Redis Sentinels (``redis-server --sentinel``) monitoring
    it as ``master`` (quorum: a majority), every replica in sync and every sentinel aware of the others when
    yielded, all stopped afterwards. A master unreachable for ``down_after_ms`` is failed over to a replica. With
    ``password`` every server and sentinel requires it, as the Bitnami chart's ``auth.sentinel`` sets them up."""
    store = PrivateSentinel(master, password)
    auth = ("--requirepass", password, "--masterauth", password) if password else ()
    with ExitStack() as stack:
        master_port = 0
        for index in range(1 + replicas):
            port = free_port()
            options = ("--replicaof", "127.0.0.1", str(master_port)) if index else ()
            process = _start(workdir / str(port), port, (*options, *auth))
            stack.callback(_stop, process)
            store.servers[port] = process
            master_port = master_port or port
            with _client(port, None, password) as node:
                _wait_for_ping(node, process)
        for _ in range(sentinels):
            port = free_port()
            config = _sentinel_config(workdir / f"sentinel-{port}", port, master, master_port, sentinels // 2 + 1,
                                      down_after_ms, failover_timeout_ms, password)
            process = subprocess.Popen([redis_binary("redis-server"), str(config), "--sentinel"],
                                       stdout=subprocess.DEVNULL)
            stack.callback(_stop, process)
            store.sentinels[port] = process
            with store.sentinel(port) as sentinel:
                _wait_for_ping(sentinel, process)
        store.wait_until_known(replicas)
        yield store
