"""Helpers of the offline tests: Redis dumps, Feast repositories for a test project, tables on the stack's
object store."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streamguard.api.featureview import FeatureViewSpec
from streamguard.devstack.endpoints import Endpoints
from streamguard.feastrepo.repo import apply_repo, write_repo
from streamguard.objectstore import Credentials, s3_filesystem
from streamguard.onlinestore.client import Store
from streamguard.onlinestore.freshness import freshness_key, watermark_key
from streamguard.onlinestore.generation import coverage_key
from streamguard.onlinestore.tenancy import DEFAULT_NAMESPACE, store_project

DATA_END = datetime(2026, 11, 1, tzinfo=UTC)


def keys_of(project: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The store project the keys of ``namespace``'s views of ``project`` carry (``default``: what the library
    calls without a namespace write)."""
    return store_project(namespace, project)


def dump(client: Store, project: str, namespace: str = DEFAULT_NAMESPACE) -> dict[bytes, dict[bytes, bytes]]:
    """Every Feast-layout hash of ``project`` in ``namespace`` (keys end with the store project), without it."""
    suffix = keys_of(project, namespace).encode()
    out = {}
    for key in client.scan_iter(match=b"*" + suffix, count=5000):
        if key.endswith(suffix) and not key.startswith((b"streamguard:", b"sg-")):
            out[key[: -len(suffix)]] = cast(dict[bytes, bytes], client.hgetall(key))
    return out


def delete_project(client: Store, project: str, namespace: str = DEFAULT_NAMESPACE) -> None:
    store = keys_of(project, namespace)
    keys = list(client.scan_iter(match=b"*" + store.encode(), count=5000))
    keys += list(client.scan_iter(match=watermark_key(store, "*")))
    keys += list(client.scan_iter(match=freshness_key(store, "*")))
    keys += list(client.scan_iter(match=coverage_key(store, "*")))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


def with_project(views: dict[str, FeatureViewSpec], project: str) -> dict[str, FeatureViewSpec]:
    return {name: spec.model_copy(update={"project": project}) for name, spec in views.items()}


def feast_store(
    repo_dir: Path, project: str, views: dict[str, FeatureViewSpec], redis_url: str, namespace: str = DEFAULT_NAMESPACE
) -> Any:
    """A FeatureStore over a generated, applied repository of ``namespace`` (imports Feast)."""
    from feast import FeatureStore

    write_repo(repo_dir, project, views, redis_url, namespace=namespace)
    apply_repo(repo_dir)
    return FeatureStore(repo_path=str(repo_dir))


def url_with_db(redis_url: str, db: int) -> str:
    base, _, _ = redis_url.rpartition("/")
    return f"{base}/{db}"


def upload_by_day(stack: Endpoints, local: str, prefix: str, timestamp_field: str = "event_timestamp") -> str:
    """The local table written under ``s3://<stack bucket>/<prefix>``, hive-partitioned by event day."""
    table = pq.read_table(local)
    ts = table.column(timestamp_field).cast(pa.timestamp("us", tz="UTC"))
    day = pc.strftime(ts, format="%Y-%m-%d")
    filesystem = s3_filesystem(Credentials.from_env(stack.object_store_env()))
    pq.write_to_dataset(
        table.append_column("date", day),
        f"{stack.s3_bucket}/{prefix}",
        partition_cols=["date"],
        filesystem=filesystem,
    )
    return f"s3://{stack.s3_bucket}/{prefix}"
