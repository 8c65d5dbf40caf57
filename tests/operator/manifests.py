"""Small custom resources for the operator tests (FinServe's real ones live in examples/finserve/)."""

import copy
import json
from typing import Any

API = "streamguard.dev/v1alpha1"

TRANSACTION_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Transaction",
    "namespace": "dev.streamguard.test",
    "fields": [
        {"name": "customer_id", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


def resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A StreamGuard custom resource of ``kind`` named ``name``."""
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}


def feature_view(
    name: str = "customer-txn",
    windows: tuple[str, ...] = ("1m", "5m"),
    schedule: str = "*/15 * * * *",
    source: bool = True,
    deprecated: tuple[str, ...] = (),
) -> dict[str, Any]:
    features = [
        {"name": f"{agg}_{w}", "dtype": "FLOAT64" if agg == "amount_sum" else "INT64"}
        | ({"deprecated": True} if f"{agg}_{w}" in deprecated else {})
        for agg in ("txn_count", "amount_sum")
        for w in windows
    ]
    spec: dict[str, Any] = {
        "entities": [{"name": "customer", "joinKey": "customer_id"}],
        "features": features,
        "ttl": "1d",
        "freshnessSla": "10m",
        "materialization": {"schedule": schedule},
    }
    if source:
        spec["source"] = {"path": "/data/customer_txn.parquet"}
    return resource("FeatureView", name, spec)


def streaming_window(
    name: str = "customer-txn",
    view: str = "customer-txn",
    topic: str = "operator-tests.transactions",
    windows: tuple[tuple[str, str], ...] = (("1m", "15s"), ("5m", "1m")),
    schema: dict[str, Any] | None = None,
    subject: str | None = None,
    deletion_policy: str | None = None,
    partitions: int | None = 1,
) -> dict[str, Any]:
    """``partitions`` lets the operator create the topic (``None``: the topic must exist)."""
    contract: dict[str, Any] = {"schema": json.dumps(schema or TRANSACTION_SCHEMA)}
    source: dict[str, Any] = {"topic": topic}
    if partitions is not None:
        source["partitions"] = partitions
    if subject:
        contract["subject"] = subject
    if deletion_policy:
        contract["deletionPolicy"] = deletion_policy
    return resource(
        "StreamingWindow",
        name,
        {
            "featureView": view,
            "source": source,
            "contract": contract,
            "keyField": "customer_id",
            "eventTimeField": "event_time",
            "watermark": "2m",
            "windows": [{"length": length, "slide": slide} for length, slide in windows],
            "aggregations": [
                {"name": "txn_count", "function": "count"},
                {"name": "amount_sum", "function": "sum", "field": "amount"},
            ],
        },
    )


def drift_monitor(name: str = "customer-drift", view: str = "customer-txn") -> dict[str, Any]:
    return resource(
        "DriftMonitor",
        name,
        {
            "featureView": view,
            "features": ["amount_sum_1m", "txn_count_1m"],
            "reference": {"path": "/data/reference.parquet"},
            "current": {"path": "/data/current.parquet", "last": "1d"},
            "thresholds": {"psi": 0.2, "driftShare": 0.5},
        },
    )


def with_schema_field(extra: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(TRANSACTION_SCHEMA)
    schema["fields"].append(extra)
    return schema


def live(manifest: dict[str, Any], namespace: str = "ns", uid: str = "uid-1", generation: int = 1) -> dict[str, Any]:
    """The manifest as the apiserver would hand it to the operator."""
    body = copy.deepcopy(manifest)
    body["metadata"].update(namespace=namespace, uid=uid, generation=generation, resourceVersion="1")
    return body
