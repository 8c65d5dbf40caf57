"""The stack's object store: SeaweedFS (``weed server``: master, volume, filer and S3 gateway) on loopback.

Its S3 identity is generated once per stack and kept in ``<run>/seaweedfs/s3-identities.json`` (mode 0600);
the stack creates :data:`BUCKET` and publishes the credentials as the ``streamguard-object-store`` Secret
in :data:`NAMESPACE` (the keys of :data:`streamguard.objectstore.SECRET_KEYS`), whose endpoint is the
address pods reach. Copy it into a namespace of your own with :func:`secret_manifest`.
"""

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamguard.devstack.provision import Artifact
from streamguard.devstack.supervisor import Service, port_open
from streamguard.objectstore import DEFAULT_REGION, Credentials, s3_filesystem

BUCKET = "streamguard"
NAMESPACE = "streamguard"
SECRET_NAME = "streamguard-object-store"
VOLUME_SIZE_LIMIT_MB = 256
"""Each volume (SeaweedFS's unit of allocation) is at most this big..."""
MAX_VOLUMES = 16
"""...and the volume server holds at most this many: 4 GiB of objects on a dev machine. SeaweedFS grows
several volumes per collection (one per bucket) on the first write, so keep to a few buckets and use
prefixes within :data:`BUCKET`."""
MEMORY_LIMIT = "512MiB"
"""``GOMEMLIMIT`` of ``weed``: the garbage collector works harder rather than grow past it."""
IDENTITY = "streamguard"


@dataclass(frozen=True)
class S3Identity:
    access_key: str
    secret_key: str

    def __repr__(self) -> str:
        return "S3Identity(***)"

    def credentials(self, endpoint: str) -> Credentials:
        return Credentials(endpoint, DEFAULT_REGION, self.access_key, self.secret_key, "the stack's S3 identity")

    def secret_data(self, endpoint: str) -> dict[str, str]:
        """The Secret's keys (:data:`streamguard.objectstore.SECRET_KEYS`)."""
        return {"endpoint": endpoint, "region": DEFAULT_REGION, "accessKeyId": self.access_key,
                "secretAccessKey": self.secret_key}


def identities_config(identity: S3Identity) -> dict[str, Any]:
    """SeaweedFS's S3 identities file: one identity with every action on every bucket."""
    return {"identities": [{
        "name": IDENTITY,
        "credentials": [{"accessKey": identity.access_key, "secretKey": identity.secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]}


def ensure_identity(work: Path) -> tuple[S3Identity, Path]:
    """The stack's identity (generated on first use) and the identities file ``weed`` reads."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "s3-identities.json"
    if config.exists():
        credential = json.loads(config.read_text())["identities"][0]["credentials"][0]
        return S3Identity(credential["accessKey"], credential["secretKey"]), config
    identity = S3Identity("SG" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30))
    descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(identities_config(identity), out, indent=2)
    return identity, config


def seaweedfs(artifact: Artifact, work: Path, ports: dict[str, int], identities: Path) -> Service:
    """``weed server`` with the filer and the S3 gateway, every port on 127.0.0.1 chosen by the stack (the
    gRPC ports too: SeaweedFS's default of port + 10000 could collide); the Iceberg and Lance endpoints
    (fixed default ports) and the usage telemetry are off. The master runs alone (``-master.peers=none``): no
    Raft election on a restart, which otherwise keeps writes waiting ~20 s longer. The Go heap is held near
    :data:`MEMORY_LIMIT`."""
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    return Service(
        "seaweedfs",
        [str(artifact.directory / "weed"), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-master.port={ports['seaweedfs-master']}", f"-master.port.grpc={ports['seaweedfs-master-grpc']}",
         f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}", "-master.volumePreallocate=false",
         f"-volume.port={ports['seaweedfs-volume']}", f"-volume.port.grpc={ports['seaweedfs-volume-grpc']}",
         f"-volume.max={MAX_VOLUMES}",
         "-filer", f"-filer.port={ports['seaweedfs-filer']}", f"-filer.port.grpc={ports['seaweedfs-filer-grpc']}",
         "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['seaweedfs-s3-grpc']}", f"-s3.config={identities}",
         "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false", "-master.peers=none"],
        ready=lambda: port_open(ports["s3"]) and port_open(ports["seaweedfs-filer"]),
        env={"GOMEMLIMIT": MEMORY_LIMIT},
        cwd=work,  # weed looks for filer.toml / security.toml in "." first: never a stranger's
        timeout=120,
    )


def ensure_bucket(identity: S3Identity, endpoint: str, bucket: str = BUCKET, timeout: float = 60.0) -> None:
    """Create ``bucket`` through the S3 API (a no-op when it exists), retrying while the gateway that has
    just opened its port still waits for its filer."""
    import pyarrow.fs as pafs

    filesystem = s3_filesystem(identity.credentials(endpoint), allow_bucket_creation=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if filesystem.get_file_info(bucket).type == pafs.FileType.NotFound:
                filesystem.create_dir(bucket)
            return
        except OSError as error:
            if time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS at {endpoint}: cannot create bucket {bucket}: {error}") from error
            time.sleep(1)


def secret_manifest(namespace: str, identity: S3Identity, endpoint: str, name: str = SECRET_NAME) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/part-of": "streamguard",
                                    "app.kubernetes.io/managed-by": "streamguard-devstack"}},
            "stringData": identity.secret_data(endpoint)}
