"""``feature_store.yaml``: Redis online store, file (Parquet) offline store, a registry file (local, or on the
object store)."""

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from streamguard import objectstore
from streamguard.onlinestore.client import CA_PARAMETER, ca_file, store_url, without_password

MANAGED_TAG = "streamguard.dev/managed-by"
"""Tag on every Feast view StreamGuard generated (stale ones are pruned on apply)."""
OBJECT_STORE_REGISTRY = "streamguard.feastrepo.registrystore.ObjectStoreRegistryStore"
"""Feast ``registry_store_type`` of a registry on ``s3://`` (read with the ``AWS_*`` credentials of the
environment)."""
REDIS_PASSWORD_ENV = "STREAMGUARD_REDIS_PASSWORD"
"""A Redis password never lands in the file: Feast expands ``${...}`` from the environment."""


def render_online_store(redis_url: str) -> dict[str, Any]:
    """Feast's ``online_store`` setting for the store at ``redis_url`` (``streamguard.onlinestore.client.store_url``):
    ``redis_type: redis_cluster`` for a cluster, ``redis_type: redis_sentinel`` and ``sentinel_master`` for a
    Sentinel-managed master (``host:port`` then every sentinel's: Feast asks them as redis-py's ``Sentinel``, over
    plain TCP, with ``sentinel_kwargs={"password":...}`` when they require the password), and the connection string
    ``host:port[,db=N][,username=...][,password=...][,ssl=true][,ssl_ca_certs=<CA file>]`` (a cluster has no
    ``db``; Feast hands the CA file to redis-py, which trusts it besides the system's CAs)."""
    plain, cluster, sentinels = store_url(redis_url)
    url = urlparse(plain)
    if not url.hostname:
        raise ValueError(f"Redis URL {without_password(redis_url)!r} is not redis://host:port/db")
    db = unquote(url.path.lstrip("/")) or "0"
    if not db.isdigit():
        raise ValueError(f"Redis URL {without_password(redis_url)!r}: database {db!r} is not a number")
    servers = sentinels.addresses if sentinels else [(url.hostname, url.port or 6379)]
    ipv6 = [host for host, _ in servers if ":" in host]
    if ipv6:
        raise ValueError(f"Redis URL {without_password(redis_url)!r}: Feast's connection string cannot hold the IPv6 "
                         f"address {ipv6[0]} (it splits host:port at every ':'); name the host by a DNS name")
    parts = [f"{host}:{port}" for host, port in servers]
    if not cluster:
        parts.append(f"db={db}")
    if url.username:
        parts.append(f"username={unquote(url.username)}")
    if url.password:
        parts.append(f"password=${{{REDIS_PASSWORD_ENV}}}")
    if url.scheme == "rediss":
        parts.append("ssl=true")
    cafile = ca_file(plain)
    if cafile:
        if "," in cafile:
            raise ValueError(f"Redis URL {without_password(redis_url)!r}: {CA_PARAMETER} {cafile!r} has a ',', "
                             "which Feast's connection string cannot hold")
        parts.append(f"{CA_PARAMETER}={cafile}")
    if sentinels and sentinels.auth:
        # Feast parses each option's value as JSON, and passes them all to redis-py's Sentinel: this one is how it
        # asks the sentinels (one key: the connection string splits at every ',').
        parts.append(f'sentinel_kwargs={{"password":"${{{REDIS_PASSWORD_ENV}}}"}}')
    config = {"type": "redis", "connection_string": ",".join(parts)}
    if url.password:
        _check_feast_reads(config["connection_string"], unquote(url.password), without_password(redis_url))
    if sentinels:
        return {**config, "redis_type": "redis_sentinel", "sentinel_master": sentinels.master}
    return {**config, "redis_type": "redis_cluster"} if cluster else config


def _check_feast_reads(connection_string: str, password: str, shown: str) -> None:
    """A ``ValueError`` unless Feast reads ``password`` back where the connection string names it: Feast expands the
    variable into its YAML file's text, splits the string at every ``,`` and parses each value as JSON, so a
    password with a ``,`` (or, for the sentinels, a ``"``), one that YAML reads otherwise, or one JSON reads as a
    number or ``true`` would reach Redis changed, and fail there with no word of why."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    text = yaml.safe_dump({"connection_string": connection_string}).replace(f"${{{REDIS_PASSWORD_ENV}}}", password)
    try:
        read = yaml.safe_load(text)["connection_string"]
        options = RedisOnlineStore._parse_connection_string(read)[1]
        given = [options.get("password"), *([options["sentinel_kwargs"].get("password")]
                                            if "sentinel_kwargs" in options else [])]
    except (yaml.YAMLError, TypeError, AttributeError, KeyError):
        given = []
    if not given or any(not isinstance(value, str | int) or str(value) != password for value in given):
        raise ValueError(f"Redis URL {shown!r}: Feast cannot read its password back from feature_store.yaml (it "
                         "splits the connection string at every ',' and reads each value as JSON); choose a password "
                         "of letters, digits and symbols other than , \" # and spaces")


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
        "online_store": render_online_store(redis_url),
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
