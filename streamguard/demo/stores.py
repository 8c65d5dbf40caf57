"""The demo's online store: the stack's Redis, or its 3-master Redis Cluster (streamguard.devstack.redis_cluster)."""

from typing import Literal

from streamguard.devstack.endpoints import Endpoints

StoreChoice = Literal["server", "cluster"]
STORES: tuple[StoreChoice, ...] = ("server", "cluster")


def store_urls(endpoints: Endpoints, store: StoreChoice) -> tuple[str, str]:
    """``(from the host, from pods)``: the URLs of the demo's online store."""
    if store == "cluster":
        return endpoints.redis_cluster_url, endpoints.redis_cluster_url
    return endpoints.redis_url, endpoints.pod_redis_url
