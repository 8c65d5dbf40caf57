"""``feature_store.yaml``: Redis online store, file (Parquet) offline store, a registry file (local, or on the
object store)."""

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from streamguard import objectstore

MANAGED_TAG = "streamguard.dev/managed-by"
"""Tag on every Feast view StreamGuard generated (stale ones are pruned on apply)."""
OBJECT_STORE_REGISTRY = "streamguard.feastrepo.registrystore.ObjectStoreRegistryStore"
"""Feast ``registry_store_type`` of a registry on ``s3://`` (read with the ``AWS_*`` credentials of the
environment)."""
REDIS_PASSWORD_ENV = "STREAMGUARD_REDIS_PASSWORD"
"""A Redis password never lands in the file: Feast expands ``${...}`` from the environment."""


def redis_connection_string(redis_url: str) -> str:
    """Feast's ``host:port,db=N[,password=...][,ssl=true]`` form of a ``redis://`` / ``rediss://`` URL."""
    url = urlparse(redis_url)
    if url.scheme not in ("redis", "rediss") or not url.hostname:
        raise ValueError(f"Redis URL {redis_url!r} is not redis://host:port/db")
    db = unquote(url.path.lstrip("/")) or "0"
    if not db.isdigit():
        raise ValueError(f"Redis URL {redis_url!r}: database {db!r} is not a number")
    parts = [f"{url.hostname}:{url.port or 6379}", f"db={db}"]
    if url.password:
        parts.append(f"password=${{{REDIS_PASSWORD_ENV}}}")
    if url.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def render_registry_config(location: str | Path) -> dict[str, Any]:
    """Feast's ``registry`` setting for a registry file at ``location`` (``s3://bucket/key`` or a local path)."""
    config: dict[str, Any] = {"registry_type": "file", "path": str(location), "cache_ttl_seconds": 0}
    if objectstore.is_remote(str(location)):
        config["registry_store_type"] = OBJECT_STORE_REGISTRY
    return config


def render_feature_store_config(project: str, redis_url: str, registry_path: str | Path) -> dict[str, Any]:
    """The content of ``feature_store.yaml`` for one project."""
    return {
        "project": project,
        "provider": "local",
        "registry": render_registry_config(registry_path),
        "online_store": {"type": "redis", "connection_string": redis_connection_string(redis_url)},
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
