"""How each component of the stack is configured, started and probed."""

import os
import re
import shutil
import ssl
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

from streamguard.contracts.compatibility import CompatibilityLevel
from streamguard.contracts.registry import API_PATH, SchemaRegistry
from streamguard.devstack.certs import Pki
from streamguard.devstack.node import SERVICE_CIDR
from streamguard.devstack.provision import Artifact
from streamguard.devstack.secured import Secured
from streamguard.devstack.supervisor import Service, port_open


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def admin_ssl_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return context


def etcd(artifact: Artifact, data: Path, port: int, peer_port: int) -> Service:
    client = f"http://127.0.0.1:{port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return Service(
        "etcd",
        [str(artifact.directory / "etcd"), "--name=default", f"--data-dir={data}",
         f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
         f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
         f"--initial-cluster=default={peer}", "--unsafe-no-fsync=true", "--log-level=warn"],
        ready=lambda: _http_ok(f"{client}/health"),
    )


def kube_apiserver(artifact: Artifact, pki: Pki, work: Path, port: int, etcd_port: int) -> Service:
    work.mkdir(parents=True, exist_ok=True)
    context = admin_ssl_context(pki)
    return Service(
        "kube-apiserver",
        [str(artifact.directory / "kube-apiserver"),
         f"--etcd-servers=http://127.0.0.1:{etcd_port}",
         "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
         f"--cert-dir={work}", f"--tls-cert-file={pki.server_cert}", f"--tls-private-key-file={pki.server_key}",
         f"--client-ca-file={pki.ca_cert}", "--authorization-mode=Node,RBAC",
         # ServiceAccount (on by default) gives every pod its account's token, as in any cluster.
         "--enable-admission-plugins=NodeRestriction",
         f"--service-cluster-ip-range={SERVICE_CIDR}",
         # The apiserver dials the kubelet (logs, exec, port-forward) at its InternalIP (the host's address on
         # the pod bridge) with a client certificate from the stack's CA, and verifies the kubelet's serving
         # certificate, which the same CA issued for that address.
         f"--kubelet-client-certificate={pki.kubelet_client_cert}", f"--kubelet-client-key={pki.kubelet_client_key}",
         f"--kubelet-certificate-authority={pki.ca_cert}",
         "--kubelet-preferred-address-types=InternalIP",
         f"--service-account-issuer=https://127.0.0.1:{port}/", f"--service-account-key-file={pki.sa_pub}",
         f"--service-account-signing-key-file={pki.sa_key}", "--allow-privileged=true",
         "--endpoint-reconciler-type=none"],
        ready=lambda: _http_ok(f"https://127.0.0.1:{port}/readyz", context),
        timeout=180,
    )


def kube_controller_manager(artifact: Artifact, pki: Pki, kubeconfig: Path, kubectl: Path) -> Service:
    def ready() -> bool:
        probe = subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", "get", "configmap", "-n", "default",
                                "kube-root-ca.crt", "-o", "name"], capture_output=True, text=True, check=False)
        return probe.returncode == 0

    return Service(
        "kube-controller-manager",
        [str(artifact.directory / "kube-controller-manager"), f"--kubeconfig={kubeconfig}",
         "--leader-elect=false", "--secure-port=0", "--controllers=*",
         f"--service-account-private-key-file={pki.sa_key}", f"--root-ca-file={pki.ca_cert}",
         "--concurrent-gc-syncs=5", "--v=1"],
        ready=ready,
    )


def _kafka_properties(data: Path, port: int, controller_port: int, pods: tuple[str, int],
                      sasl: tuple[int, Path] | None = None) -> str:
    """``pods``: the address pods dial and the port of the listener they reach there. It listens on
    127.0.0.1 too (the stack forwards the bridge address to it) but advertises the pods' address, so the
    metadata pods get back names a broker they can reach. ``sasl``: the port of an additional SASL_SSL
    listener (SCRAM-SHA-512) and its PEM keystore (key and certificate)."""
    pod_address, pod_port = pods
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},PODS://127.0.0.1:{pod_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},PODS://{pod_address}:{pod_port},"
                                f"CONTROLLER://127.0.0.1:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PODS:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }
    if sasl is not None:
        sasl_port, keystore = sasl
        lines["listeners"] += f",SASL_SSL://127.0.0.1:{sasl_port}"
        lines["advertised.listeners"] += f",SASL_SSL://127.0.0.1:{sasl_port}"
        lines["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
        lines |= {
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(keystore),
        }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def _kafka_ready(port: int) -> bool:
    if not port_open(port):
        return False
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "socket.timeout.ms": 2000})
    metadata = admin.list_topics(timeout=2)
    return bool(metadata.brokers)


def kafka(artifact: Artifact, work: Path, port: int, controller_port: int, pods: tuple[str, int],
          secured: Secured | None = None) -> Service:
    """Apache Kafka in KRaft combined mode; the storage is formatted on first start. ``secured`` adds its
    SASL_SSL listener (its SCRAM user is created by :func:`ensure_scram_user` once the broker is up)."""
    data = work / "data"
    config = work / "server.properties"
    work.mkdir(parents=True, exist_ok=True)
    sasl = None
    if secured is not None:
        keystore = work / "broker-keystore.pem"
        keystore.touch(mode=0o600)
        keystore.write_text(Path(secured.broker_key).read_text() + Path(secured.broker_cert).read_text())
        sasl = (secured.kafka_port, keystore)
    config.write_text(_kafka_properties(data, port, controller_port, pods, sasl))
    classpath = f"{artifact.directory / 'lib'}/*"
    if not (data / "meta.properties").exists():
        cluster_id = uuid.uuid4().hex[:22]
        subprocess.run(["java", "-cp", classpath, "kafka.tools.StorageTool", "format", "--standalone",
                        "-t", cluster_id, "-c", str(config)], check=True, capture_output=True)
    return Service(
        "kafka",
        ["java", "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", f"-Dkafka.logs.dir={work / 'logs'}",
         "-cp", classpath, "kafka.Kafka", str(config)],
        ready=lambda: _kafka_ready(port),
        timeout=120,
    )


def ensure_scram_user(port: int, secured: Secured) -> None:
    """Create (or reset) the secured listener's SCRAM-SHA-512 user through the plain listener on ``port``."""
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    upsert = UserScramCredentialUpsertion(secured.username, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                          secured.password.encode())
    for future in admin.alter_user_scram_credentials([upsert], request_timeout=30).values():
        future.result(timeout=60)


def java_home(minimum: int) -> Path:
    """A JDK of at least ``minimum`` major version (Apicurio 3 needs 21+; the machine's default is 17)."""
    candidates = [Path(p) for p in (os.environ.get("JAVA_HOME"),) if p]
    candidates += sorted(Path("/usr/lib/jvm").glob("*"), reverse=True)
    for home in candidates:
        release = home / "release"
        if not (home / "bin" / "java").exists() or not release.exists():
            continue
        match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.MULTILINE)
        if match and int(match.group(1)) >= minimum:
            return home
    raise FileNotFoundError(f"no JDK {minimum}+ found in $JAVA_HOME or /usr/lib/jvm (Apicurio Registry 3 needs it)")


def apicurio(artifact: Artifact, work: Path, port: int, management_port: int,
             secured: Secured | None = None) -> Service:
    """Apicurio Registry 3 serving the Confluent API under ``API_PATH``, with its SQL storage in an H2
    database file under ``work``: subjects, ids and compatibility rules survive a restart, as in production.

    ``FILE_LOCK=FS`` uses an OS lock that dies with the process (a SIGKILLed registry restarts at once);
    ``WRITE_DELAY=0`` writes every commit through, so a killed registry loses no acknowledged registration.
    """
    work.mkdir(parents=True, exist_ok=True)
    props = {
        "quarkus.http.host": "127.0.0.1",
        "quarkus.http.port": str(port),
        "quarkus.management.host": "127.0.0.1",
        "quarkus.management.port": str(management_port),
        "apicurio.storage.kind": "sql",
        "apicurio.storage.sql.kind": "h2",
        "apicurio.datasource.url": f"jdbc:h2:file:{work / 'registry'};FILE_LOCK=FS;WRITE_DELAY=0",
        "apicurio.datasource.jdbc.initial-size": "2",
        "apicurio.datasource.jdbc.min-size": "2",
        "apicurio.datasource.jdbc.max-size": "20",
        "apicurio.rest.deletion.group.enabled": "true",
        "apicurio.rest.deletion.artifact.enabled": "true",
        "apicurio.rest.deletion.artifact-version.enabled": "true",
        "quarkus.log.level": "WARN",
    }
    probe, context = f"http://127.0.0.1:{port}{API_PATH}/subjects", None
    if secured is not None:
        # HTTPS only, HTTP basic auth required; the password reaches Quarkus in a file, not on the command line.
        credentials = work / "users.properties"
        credentials.touch(mode=0o600)
        credentials.write_text(
            f"quarkus.security.users.embedded.users.{secured.registry_username}={secured.registry_password}\n")
        props |= {
            "quarkus.http.ssl-port": str(secured.registry_port),
            "quarkus.http.insecure-requests": "disabled",
            "quarkus.tls.key-store.pem.0.cert": secured.registry_cert,
            "quarkus.tls.key-store.pem.0.key": secured.registry_key,
            "quarkus.http.auth.basic": "true",
            "quarkus.security.users.embedded.plain-text": "true",
            "apicurio.authn.mechanism.priority": "basic",
            "quarkus.config.locations": str(credentials),
        }
        # Apicurio reads quarkus.http.auth.basic at run time (Quarkus warns that it is build-time fixed; the
        # registry enforces it nevertheless: 401 without credentials). The management port, TLS too, needs none.
        probe = f"https://127.0.0.1:{management_port}/health/ready"
        context = ssl.create_default_context(cafile=secured.ca_file)
    return Service(
        "apicurio-registry",
        [str(java_home(21) / "bin" / "java"), "-Xms128m", "-Xmx768m", *[f"-D{k}={v}" for k, v in props.items()],
         "-jar", str(artifact.directory / "quarkus-run.jar")],
        ready=lambda: _http_ok(probe, context),
        cwd=artifact.directory,
        timeout=180,
    )


def set_registry_default_compatibility(registry_url: str, level: CompatibilityLevel = "BACKWARD") -> None:
    with SchemaRegistry(registry_url) as registry:
        registry.set_compatibility(level)
        taken = registry.compatibility()
    if taken != level:
        raise RuntimeError(f"registry did not take default compatibility {level}: it reports {taken}")


def redis(work: Path, port: int) -> Service:
    """Redis with AOF (appendfsync everysec, no RDB snapshots), 2 GB of memory and no eviction: a full store
    refuses writes (the writers fail and retry) instead of dropping keys (docs/online-store.md)."""
    work.mkdir(parents=True, exist_ok=True)
    server = shutil.which("redis-server") or "redis-server"

    def ready() -> bool:
        import redis as redis_client

        return bool(redis_client.Redis(port=port, socket_timeout=1).ping())

    return Service(
        "redis",
        [server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(work), "--appendonly", "yes",
         "--appendfsync", "everysec", "--save", "", "--maxmemory", "2gb", "--maxmemory-policy", "noeviction",
         "--protected-mode", "no", "--daemonize", "no"],
        ready=ready,
    )


def python_bin() -> Path:
    return Path(sys.executable).parent
