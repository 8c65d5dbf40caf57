"""Feast's registry file on the object store, read and written through :mod:`streamguard.objectstore`.

Feast's own S3 store needs boto3, whose botocore pins ``python-dateutil<3`` against the Kubernetes client's
``>=3``; this store keeps the same object (one serialized ``Registry`` proto at the registry's key) through
pyarrow's S3 filesystem and the ``AWS_*`` credentials of the environment. Feast loads it by name:
``registry_store_type`` = :data:`streamguard.feastrepo.config.OBJECT_STORE_REGISTRY`.
"""

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.fs as pafs
from feast.infra.registry.registry_store import RegistryStore
from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
from feast.repo_config import RegistryConfig

from streamguard import objectstore


class ObjectStoreRegistryStore(RegistryStore):
    def __init__(self, registry_config: RegistryConfig, repo_path: Path | None) -> None:
        self._location = objectstore.resolve(str(registry_config.path))

    def get_registry_proto(self) -> RegistryProto:
        """The registry; ``FileNotFoundError`` when there is none yet (Feast then creates it)."""
        location = self._location
        if location.filesystem.get_file_info(location.path).type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"no Feast registry at {location.uri}")
        with location.filesystem.open_input_stream(location.path) as stream:
            proto = RegistryProto()
            proto.ParseFromString(stream.read())
            return proto

    def update_registry_proto(self, registry_proto: RegistryProto) -> None:
        registry_proto.version_id = str(uuid.uuid4())
        registry_proto.last_updated.FromDatetime(datetime.now(UTC))
        with self._location.filesystem.open_output_stream(self._location.path) as stream:
            stream.write(registry_proto.SerializeToString())

    def teardown(self) -> None:
        self._location.filesystem.delete_file(self._location.path)
