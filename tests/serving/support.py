"""Test data for serving: FinServe-like manifests and writers of both Redis layouts (through the
shared layout functions, exactly as the materializer and the streaming job write them)."""

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml
from fastapi.testclient import TestClient

from streamguard.devstack.supervisor import free_port
from streamguard.onlinestore.client import Store
from streamguard.onlinestore.feast_layout import (
    EntityValue,
    feature_field,
    redis_key,
    serialize_entity_key,
    timestamp_field,
)
from streamguard.onlinestore.freshness import FreshnessRecord, freshness_key
from streamguard.onlinestore.generation import BATCH, EVERYTHING_MS, STREAM, Part
from streamguard.onlinestore.pane_layout import encode_pane, pane_field, pane_key
from streamguard.onlinestore.tenancy import DEFAULT_NAMESPACE, store_project
from streamguard.onlinestore.valueproto import Scalar, encode_timestamp, encode_value
from streamguard.onlinestore.window_layout import StreamProgress, StreamState, heartbeat_key
from streamguard.onlinestore.writers import commit_coverage, ensure_generation
from streamguard.serving.app import create_app
from streamguard.serving.catalog import build_catalog
from streamguard.serving.settings import Settings
from streamguard.serving.sources import resources_from_documents

API = "streamguard.dev/v1alpha1"
CUSTOMER = [
    ("age", "INT64"),
    ("tenure_days", "INT64"),
    ("credit_score", "FLOAT64"),
    ("segment", "STRING"),
    ("kyc_verified", "BOOL"),
    ("avg_txn_amount_30d", "FLOAT64"),
    ("txn_count_30d", "INT64"),
    ("chargeback_count_90d", "INT64"),
]
ACCOUNT = [
    ("account_age_days", "INT64"),
    ("balance", "FLOAT64"),
    ("overdraft_count_90d", "INT64"),
    ("account_type", "STRING"),
    ("is_joint", "BOOL"),
    ("avg_daily_balance_30d", "FLOAT64"),
    ("days_since_last_login", "INT64"),
]
MERCHANT = [
    ("merchant_category", "STRING"),
    ("merchant_risk_score", "FLOAT64"),
    ("chargeback_rate_90d", "FLOAT64"),
    ("txn_volume_30d", "INT64"),
    ("avg_ticket", "FLOAT64"),
    ("country", "STRING"),
    ("is_high_risk_mcc", "BOOL"),
]
BATCH_VIEWS = {
    "customer-profile": ("customer_id", CUSTOMER),
    "account-profile": ("account_id", ACCOUNT),
    "merchant-profile": ("merchant_id", MERCHANT),
}
WINDOW_VIEW = "customer-txn-windows"
WINDOWS = [("1m", "15s"), ("5m", "1m")]
TXN_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Txn",
        "fields": [
            {"name": "customer_id", "type": "string"},
            {"name": "amount", "type": "double"},
            {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        ],
    }
)
AGGREGATIONS = [("txn_count", "count", None), ("amount_sum", "sum", "amount"), ("amount_max", "max", "amount")]


def keys_of(project: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The store project serving reads for ``project`` in ``namespace`` (manifest files here carry none:
    ``default``)."""
    return store_project(namespace, project)


def unique_project() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def finserve_manifests(
    project: str, ttl: str = "1d", sla: str = "1h", window_ttl: str = "10m", window_sla: str = "1m"
) -> list[dict[str, Any]]:
    """Three batch views (22 features, feature set ``fraud``) and one StreamingWindow-fed view."""
    docs: list[dict[str, Any]] = []
    for name, (join_key, features) in BATCH_VIEWS.items():
        docs.append(
            {
                "apiVersion": API,
                "kind": "FeatureView",
                "metadata": {"name": name, "annotations": {"streamguard.dev/feature-sets": "fraud,all"}},
                "spec": {
                    "project": project,
                    "entities": [{"name": join_key.removesuffix("_id"), "joinKey": join_key}],
                    "features": [{"name": f, "dtype": t} for f, t in features],
                    "source": {"path": f"/data/{name}.parquet"},
                    "ttl": ttl,
                    "freshnessSla": sla,
                },
            }
        )
    docs.append(
        {
            "apiVersion": API,
            "kind": "FeatureView",
            "metadata": {"name": WINDOW_VIEW, "annotations": {"streamguard.dev/feature-sets": "all"}},
            "spec": {
                "project": project,
                "entities": [{"name": "customer", "joinKey": "customer_id"}],
                "features": [
                    {"name": f"{a}_{w}", "dtype": "INT64" if fn == "count" else "FLOAT64"}
                    for a, fn, _ in AGGREGATIONS
                    for w, _ in WINDOWS
                ],
                "ttl": window_ttl,
                "freshnessSla": window_sla,
            },
        }
    )
    docs.append(
        {
            "apiVersion": API,
            "kind": "StreamingWindow",
            "metadata": {"name": WINDOW_VIEW},
            "spec": {
                "featureView": WINDOW_VIEW,
                "source": {"topic": f"{project}-transactions"},
                "contract": {"schema": TXN_SCHEMA},
                "keyField": "customer_id",
                "windows": [{"length": length, "slide": slide} for length, slide in WINDOWS],
                "aggregations": [
                    {"name": a, "function": fn, **({"field": field} if field else {})} for a, fn, field in AGGREGATIONS
                ],
            },
        }
    )
    return docs


def fraud_refs() -> list[str]:
    """The ``fraud`` feature set: views in name order, features in declaration order."""
    return [f"{view}:{f}" for view, (_, features) in sorted(BATCH_VIEWS.items()) for f, _ in features]


def write_config(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def sample_value(dtype: str, index: int, feature: str) -> Scalar:
    if dtype == "INT64":
        return index * 7 + len(feature)
    if dtype == "FLOAT64":
        return index * 1.25 + len(feature) / 8
    if dtype == "BOOL":
        return index % 2 == 0
    return f"{feature}-{index}"


def write_batch_row(
    client: Store,
    project: str,
    view: str,
    join_keys: Mapping[str, EntityValue],
    values: Mapping[str, tuple[str, Scalar]],
    event_time: float,
    namespace: str = DEFAULT_NAMESPACE,
) -> None:
    """One entity row in Feast's layout: ``values`` maps feature -> (dtype, value)."""
    mapping = {feature_field(view, f): encode_value(dtype, v) for f, (dtype, v) in values.items()}
    mapping[timestamp_field(view)] = encode_timestamp(datetime.fromtimestamp(event_time, UTC))
    client.hset(redis_key(keys_of(project, namespace), join_keys), mapping=mapping)  # type: ignore[arg-type]


def write_finserve_rows(
    client: Store, project: str, count: int, event_time: float, namespace: str = DEFAULT_NAMESPACE
) -> None:
    for i in range(count):
        for view, (join_key, features) in BATCH_VIEWS.items():
            values = {f: (t, sample_value(t, i, f)) for f, t in features}
            write_batch_row(client, project, view, {join_key: entity_id(join_key, i)}, values, event_time, namespace)


def entity_id(join_key: str, index: int) -> str:
    return f"{join_key[0].upper()}{index:05d}"


def write_window(
    client: redis.Redis,
    project: str,
    suffix: str,
    end_ms: int,
    customer: str,
    aggregates: Mapping[str, float | int | None],
) -> None:
    """Store ``aggregates`` as the last pane of the window of ``suffix`` ending at ``end_ms``, as the streaming job
    stores panes: that window and the next ``length / slide - 1`` ones hold these values when no other pane of
    theirs is stored (a test may cross a slide boundary while it runs)."""
    views, windows, _ = resources_from_documents(finserve_manifests(project), "support")
    group = build_catalog(views, windows).views[WINDOW_VIEW].windows[suffix]
    partials = [aggregates.get(name) or 0 if function == "count" else aggregates.get(name)
                for name, function, _ in AGGREGATIONS]
    key = pane_key(group.pane_prefix, serialize_entity_key({"customer_id": customer}))
    field, value = pane_field(group.slide_number, end_ms - group.shape.slide_ms), encode_pane(partials)
    client.hset(key, field, value)  # type: ignore[arg-type]


def write_progress(
    client: Store,
    project: str,
    progress_at: float | None,
    *,
    lag: int = 0,
    newest_event: float | None = None,
    state: StreamState = "running",
    reason: str = "",
    complete_from: float | None = None,
    view: str = WINDOW_VIEW,
    namespace: str = DEFAULT_NAMESPACE,
) -> StreamProgress:
    """Replace the view's stream progress record, as the streaming job writes it (alive now; caught up at
    ``progress_at``, ``None`` for never; the newest event defaults to ``progress_at``)."""

    def ms(t: float | None) -> int | None:
        return None if t is None else int(t * 1000)

    newest = newest_event if newest_event is not None else progress_at
    record = StreamProgress(
        processed_at_ms=ms(time.time()),
        progress_at_ms=ms(progress_at),
        newest_event_ms=ms(newest),
        lag=lag,
        watermark_ms=None if newest is None else int(newest * 1000) - 120_000,
        batch_id=1,
        state=state,
        reason=reason,
        complete_from_ms=ms(complete_from),
    )
    key = heartbeat_key(keys_of(project, namespace), view)
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping=record.mapping())  # type: ignore[arg-type]
        pipe.execute()
    return record


def write_freshness(client: Store, project: str, view: str, newest_event: float) -> None:
    now_ms = int(time.time() * 1000)
    record = FreshnessRecord(int(newest_event * 1000), now_ms, now_ms, 1)
    client.hset(freshness_key(keys_of(project), view), mapping=record.mapping())  # type: ignore[arg-type]


def write_batch_freshness(client: Store, project: str, newest_event: float) -> None:
    """A freshness record for every batch view, its newest event at ``newest_event``."""
    for view in BATCH_VIEWS:
        write_freshness(client, project, view, newest_event)


def cover(
    client: Store,
    project: str,
    views: Mapping[str, tuple[Part, ...]] | None = None,
    since_ms: int = EVERYTHING_MS,
    namespace: str = DEFAULT_NAMESPACE,
) -> str:
    """Seed the store as the writers leave it after (re-)seeding: the project's current generation (started
    if there is none) and, per view, coverage of its parts since ``since_ms`` (default: the FinServe views,
    batch views by the materializer, the window view by the streaming job). Returns the generation id."""
    generation, _ = ensure_generation(client, keys_of(project, namespace), int(time.time() * 1000))
    parts = views if views is not None else {**{v: (BATCH,) for v in BATCH_VIEWS}, WINDOW_VIEW: (STREAM,)}
    for view, view_parts in parts.items():
        for part in view_parts:
            assert commit_coverage(client, keys_of(project, namespace), view, part, generation, since_ms) is not None
    return generation


def delete_project_keys(client: redis.Redis, project: str) -> None:
    for key in client.scan_iter(match=f"*{project}*", count=1000):
        client.delete(key)


@contextmanager
def running_server(
    config: Path | None, redis_url: str, *extra: str, auth: tuple[str, ...] = ("--insecure-no-auth",)
) -> Iterator[str]:
    """``streamguard serve`` as a subprocess; yields its base URL once ``/livez`` answers.

    Without ``config``, ``extra`` names the source (``--from-cluster NAMESPACE --kubeconfig ...``); ``auth`` is
    said explicitly (``--auth-token-file PATH`` to test authentication)."""
    port = free_port()
    source = ["--config", str(config)] if config is not None else []
    command = [
        str(Path(sys.executable).with_name("streamguard")),
        "serve",
        *source,
        "--redis-url",
        redis_url,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *auth,
        *extra,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                raise AssertionError(f"streamguard serve exited with {process.returncode}:\n{output}")
            try:
                if httpx.get(f"{base}/livez", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("streamguard serve did not answer /livez within 30s")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def early_in_slide(slide_ms: int, margin_ms: int = 10_000) -> int:
    """Now (epoch ms), once at least ``margin_ms`` remain before the next slide boundary: windows written for
    this instant are still the ones containing the requests a test makes within that margin."""
    now_ms = int(time.time() * 1000)
    left = slide_ms - now_ms % slide_ms
    if left < margin_ms:
        time.sleep(left / 1000 + 0.05)
        now_ms = int(time.time() * 1000)
    return now_ms


@contextmanager
def serving_of(url: str, config: Path) -> Iterator[TestClient]:
    """Serving in-process on the store at ``url`` (a cluster's, a Sentinel's), no cache, the health tick every
    0.25 s, no token needed."""
    settings = Settings(redis_url=url, config_file=str(config), cache_staleness=0.0, freshness_interval=0.25,
                        insecure_no_auth=True)
    with TestClient(create_app(settings)) as client:
        yield client


ENTITIES = 30
"""The customers of the failover tests' request (cluster, Sentinel): their customer-profile rows."""
CUSTOMER_FEATURES = [name for name, _ in BATCH_VIEWS["customer-profile"][1]]
REFS = [f"customer-profile:{name}" for name in CUSTOMER_FEATURES]
REQUEST: dict[str, Any] = {"features": REFS, "entities": [{"customer_id": entity_id("customer_id", i)}
                                                          for i in range(ENTITIES)]}
EXPECTED = [[sample_value(dtype, i, name) for name, dtype in BATCH_VIEWS["customer-profile"][1]]
            for i in range(ENTITIES)]


def statuses_and_values(app: TestClient) -> tuple[list[list[str]], list[list[Any]]] | None:
    """The rows' statuses and values, or ``None`` when serving refused (503)."""
    response = app.post("/features", json=REQUEST)
    if response.status_code == 503:
        return None
    assert response.status_code == 200, response.text
    rows = response.json()["results"]
    return [row["statuses"] for row in rows], [row["values"] for row in rows]


def served_exactly(app: TestClient) -> bool:
    """Every row of :data:`REQUEST` ``present`` and equal to :data:`EXPECTED`."""
    read = statuses_and_values(app)
    if read is None or any(set(row) != {"present"} for row in read[0]):
        return False
    assert read[1] == EXPECTED
    return True
