"""``feature_store.yaml``: Redis online store, file (Parquet) offline store, a file registry."""

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

MANAGED_TAG = "streamguard.dev/managed-by"
"""Tag on every Feast view StreamGuard generated (stale ones are pruned on apply)."""
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


def render_feature_store_config(project: str, redis_url: str, registry_path: Path) -> dict[str, Any]:
    """The content of ``feature_store.yaml`` for one project."""
    return {
        "project": project,
        "provider": "local",
        "registry": {"registry_type": "file", "path": str(registry_path), "cache_ttl_seconds": 0},
        "online_store": {"type": "redis", "connection_string": redis_connection_string(redis_url)},
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
