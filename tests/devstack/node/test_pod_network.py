"""What a pod on the stack's node reaches: the apiserver through the `kubernetes` Service with its
ServiceAccount token, and Kafka, the registry, Redis and every master of the Redis Cluster at the host's bridge
address; nothing else of the host's loopback (streamguard.devstack.podgateway, streamguard.devstack.redis_cluster)."""

import json
import textwrap
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from redis.cluster import RedisCluster

from streamguard.devstack import image, node
from streamguard.devstack.endpoints import Endpoints
from streamguard.onlinestore.client import connect
from tests.conftest import Kubectl
from tests.devstack.node.test_node import _pod, _running
from tests.polling import wait_for

pytestmark = pytest.mark.stack

PROBE = textwrap.dedent("""
    import json, socket, sys, urllib.request
    import redis
    from confluent_kafka.admin import AdminClient
    from kubernetes import client, config
    from streamguard.onlinestore.client import connect

    kafka, registry, redis_url, closed_host, closed_port, cluster_url, prefix = sys.argv[1:8]
    store = connect(cluster_url)
    written = {}
    for index in range(24):
        key = f"{prefix}{index}"
        store.set(key, index)
        node = store.get_node_from_key(key)
        written[key] = f"{node.host}:{node.port}"
    config.load_incluster_config()
    api = client.ApiClient()
    review = client.AuthenticationV1Api(api).create_self_subject_review({})
    metadata = AdminClient({"bootstrap.servers": kafka, "socket.timeout.ms": 5000}).list_topics(timeout=10)
    with urllib.request.urlopen(registry + "/subjects", timeout=5) as response:
        subjects = json.loads(response.read())
    try:
        socket.create_connection((closed_host, int(closed_port)), timeout=3).close()
        closed = "reachable"
    except OSError as error:
        closed = type(error).__name__
    print(json.dumps({
        "host": client.Configuration.get_default_copy().host,
        "user": review.status.user_info.username,
        "brokers": [f"{b.host}:{b.port}" for b in metadata.brokers.values()],
        "subjects": isinstance(subjects, list),
        "redis": redis.Redis.from_url(redis_url, socket_timeout=5).ping(),
        "closed": closed,
        "written": written,
    }))
""")


def test_a_pod_reaches_the_stacks_services_and_only_them(kubectl: Kubectl, namespace: str, stack: Endpoints,
                                                         project_images: image.ProjectImages) -> None:
    name = "network-probe"
    kubectl("apply", "-n", namespace, "-f", "-",
            input=json.dumps(_pod(name, project_images.main.name, ["sleep", "infinity"])))
    pod = wait_for(f"pod {name} Running", lambda: _running(kubectl, namespace, name), timeout=120)
    # The ServiceAccount admission mounted the namespace's default account's token.
    mounts = pod["spec"]["containers"][0]["volumeMounts"]
    assert any(m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount" for m in mounts), mounts
    address = stack.pod_kafka_bootstrap.rsplit(":", 1)[0]
    etcd_port = json.loads((Path(stack.run_dir) / "ports.json").read_text())["etcd"]
    prefix = f"pod-network-{uuid.uuid4().hex[:8]}-"
    out = kubectl("exec", "-n", namespace, name, "--", "python", "-c", PROBE, stack.pod_kafka_bootstrap,
                  stack.pod_registry_url, stack.pod_redis_url, address, str(etcd_port), stack.redis_cluster_url,
                  prefix).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["host"] == f"https://{node.KUBERNETES_SERVICE_IP}:443"
    assert seen["user"] == f"system:serviceaccount:{namespace}:default"
    assert seen["brokers"] == [stack.pod_kafka_bootstrap]  # the pod listener, advertised at the bridge address
    assert seen["subjects"] is True and seen["redis"] is True
    # etcd listens on the host's loopback too, but is not forwarded: refused at the bridge address.
    assert seen["closed"] == "ConnectionRefusedError", seen
    assert address != "127.0.0.1" and not stack.pod_redis_url.startswith("redis://127.")
    # The pod wrote through every master of the stack's cluster, each at the bridge address (the slot table
    # announces it), and the host reads the same values at the same URL.
    host = connect(stack.redis_cluster_url)
    assert isinstance(host, RedisCluster)
    try:
        known = cast(dict[str, dict[str, Any]], host.cluster_nodes())
        masters = {name for name, entry in known.items() if "master" in entry["flags"]}
        assert len(masters) == 3 and all(m.startswith(f"{address}:") for m in masters), masters
        assert set(seen["written"].values()) == masters, seen["written"]
        assert [host.get(key) for key in seen["written"]] == [str(i).encode() for i in range(len(seen["written"]))]
    finally:
        for key in seen["written"]:  # one key per call: a multi-key DELETE must stay within one slot
            host.delete(key)
        host.close()
