"""The addresses of a running stack, written by ``streamguard dev up`` and read by tests and tools."""

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from streamguard.devstack.paths import run_root
from streamguard.objectstore import DEFAULT_REGION

ENDPOINTS_FILE = "endpoints.json"


@dataclass(frozen=True)
class Endpoints:
    run_dir: str
    kubeconfig: str
    apiserver: str
    kafka_bootstrap: str
    registry_url: str
    """Base of the Confluent-compatible API, e.g. ``http://127.0.0.1:PORT`` + ``contracts.registry.API_PATH``."""
    redis_url: str
    bin_dir: str
    """Folder with kubectl, helm, kube-apiserver and friends for this stack."""
    spark_jars: list[str] = field(default_factory=list)
    pod_kafka_bootstrap: str = ""
    """Kafka, the registry and Redis as pods on the stack's node reach them (the host's bridge address;
    streamguard.devstack.podgateway). Pods reach the apiserver as in any cluster, through the
    ``kubernetes`` Service and their ServiceAccount token."""
    pod_registry_url: str = ""
    pod_redis_url: str = ""
    redis_cluster_url: str = ""
    """The stack's 3-master Redis Cluster (:mod:`streamguard.devstack.redis_cluster`), the same URL from the host
    and from pods."""
    s3_endpoint: str = ""
    """The object store's S3 API (SeaweedFS), ``http://127.0.0.1:PORT``; ``pod_s3_endpoint`` as pods reach it."""
    pod_s3_endpoint: str = ""
    s3_bucket: str = ""
    s3_identities: str = ""
    """The S3 identities file SeaweedFS reads (the stack's access and secret key; mode 0600)."""
    s3_secret: str = ""
    """``namespace/name`` of the Secret with the object store's endpoint, region and keys."""
    versions: dict[str, str] = field(default_factory=dict)

    def save(self) -> Path:
        path = Path(self.run_dir) / ENDPOINTS_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, run_dir: Path | None = None) -> "Endpoints":
        path = (run_dir or run_root()) / ENDPOINTS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no running stack: {path} is missing (run `streamguard dev up`)")
        return cls(**json.loads(path.read_text()))

    def env(self) -> dict[str, str]:
        """Environment variables that point tools and workloads at this stack."""
        return {
            "KUBECONFIG": self.kubeconfig,
            "STREAMGUARD_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "STREAMGUARD_REGISTRY_URL": self.registry_url,
            "STREAMGUARD_REDIS_URL": self.redis_url,
            "STREAMGUARD_REDIS_CLUSTER_URL": self.redis_cluster_url,
            "STREAMGUARD_SPARK_JARS": ",".join(self.spark_jars),
            "STREAMGUARD_RUN_DIR": self.run_dir,
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            **self.object_store_env(),
        }

    def object_store_env(self) -> dict[str, str]:
        """``AWS_*`` variables (:mod:`streamguard.objectstore`) for the stack's object store, from the host."""
        if not self.s3_identities or not Path(self.s3_identities).is_file():
            return {}
        credential = json.loads(Path(self.s3_identities).read_text())["identities"][0]["credentials"][0]
        return {"AWS_ENDPOINT_URL": self.s3_endpoint, "AWS_REGION": DEFAULT_REGION,
                "AWS_ACCESS_KEY_ID": credential["accessKey"], "AWS_SECRET_ACCESS_KEY": credential["secretKey"]}
