"""Bad manifests are refused by `kubectl apply` at admission (OpenAPI + CEL), with the field named."""

import copy
import json
from typing import Any

import pytest

from tests.operator import manifests
from tests.operator.conftest import Cluster

pytestmark = pytest.mark.stack


def edit(manifest: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``path`` like ``spec.windows.0.slide``; ``value`` None deletes."""
    out = copy.deepcopy(manifest)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is None:
        del node[key]
    else:
        node[key] = value
    return out


FV = manifests.feature_view()
SW = manifests.streaming_window()
DM = manifests.drift_monitor()

CASES = [
    (
        "duplicate feature",
        edit(FV, "spec.features.1.name", "txn_count_1m"),
        "spec.features",
        "feature names must be unique",
    ),
    (
        "feature not an identifier",
        edit(FV, "spec.features.0.name", "Txn-Count"),
        "spec.features[0].name",
        "should match",
    ),
    ("unknown dtype", edit(FV, "spec.features.0.dtype", "DECIMAL"), "spec.features[0].dtype", "Unsupported value"),
    ("ttl not a duration", edit(FV, "spec.ttl", "1 day"), "spec.ttl", "should match"),
    ("project starting with _ (Feast refuses it)", edit(FV, "spec.project", "_fraud"), "spec.project", "should match"),
    ("no entities", edit(FV, "spec.entities", []), "spec.entities", "at least 1"),
    ("join key missing", edit(FV, "spec.entities.0.joinKey", None), "spec.entities[0].joinKey", "Required value"),
    (
        "feature reuses join key",
        edit(FV, "spec.features.0.name", "customer_id"),
        "spec.features",
        "may not reuse an entity join key",
    ),
    (
        "bad cron schedule",
        edit(FV, "spec.materialization.schedule", "every hour"),
        "spec.materialization.schedule",
        "should match",
    ),
    ("unknown field", edit(FV, "spec.color", "blue"), "spec.color", "unknown field"),
    ("name too long", edit(FV, "metadata.name", "a" * 41), "metadata.name", "at most 40 characters"),
    (
        "window not a multiple of slide",
        edit(SW, "spec.windows.0.slide", "25s"),
        "spec.windows[0].length",
        "whole multiple of its slide",
    ),
    ("zero slide", edit(SW, "spec.windows.0.slide", "0s"), "spec.windows[0].slide", "must be at least 1s"),
    (
        "30s window sliding every 1ms",
        edit(SW, "spec.windows.0", {"length": "30s", "slide": "1ms"}),
        "spec.windows[0].slide",
        "must be at least 1s",
    ),
    (
        "window longer than 366 days",
        edit(SW, "spec.windows.0", {"length": "8790h", "slide": "1h"}),
        "spec.windows[0].length",
        "must be at most 366 days",
    ),
    ("watermark over 366 days", edit(SW, "spec.watermark", "9000h"), "spec.watermark", "must be at most 366 days"),
    (
        "trigger interval overflowing",
        edit(SW, "spec.triggerInterval", "99999999999999h"),
        "spec.triggerInterval",
        "must be at most 366 days",
    ),
    ("ttl overflowing", edit(FV, "spec.ttl", "9999999999d"), "spec.ttl", "must be at most 366 days"),
    ("ttl over 366 days", edit(FV, "spec.ttl", "367d"), "spec.ttl", "must be at most 366 days"),
    ("ttl zero", edit(FV, "spec.ttl", "0s"), "spec.ttl", "must be greater than 0"),
    ("freshness SLA zero", edit(FV, "spec.freshnessSla", "0s"), "spec.freshnessSla", "must be greater than 0"),
    ("freshness SLA zero days", edit(FV, "spec.freshnessSla", "0d"), "spec.freshnessSla", "must be greater than 0"),
    ("drift interval zero", edit(DM, "spec.interval", "0s"), "spec.interval", "must be greater than 0"),
    (
        "drift slice over 366 days",
        edit(DM, "spec.current.last", "400d"),
        "spec.current.last",
        "must be at most 366 days",
    ),
    (
        "duplicate windows",
        edit(SW, "spec.windows.1", {"length": "1m", "slide": "30s"}),
        "spec.windows",
        "window names (default: their length) must be unique",
    ),
    (
        "unknown aggregation",
        edit(SW, "spec.aggregations.0.function", "median"),
        "spec.aggregations[0].function",
        "Unsupported value",
    ),
    (
        "sum without field",
        edit(SW, "spec.aggregations.1.field", None),
        "spec.aggregations[1].field",
        "field is required for sum, avg, min and max",
    ),
    ("bad view reference", edit(SW, "spec.featureView", "Customer_Txn"), "spec.featureView", "should match"),
    ("watermark not a duration", edit(SW, "spec.watermark", "2 minutes"), "spec.watermark", "should match"),
    (
        "bad deletion policy",
        edit(SW, "spec.contract.deletionPolicy", "Orphan"),
        "spec.contract.deletionPolicy",
        "Unsupported value",
    ),
    ("psi threshold zero", edit(DM, "spec.thresholds.psi", 0), "spec.thresholds.psi", "should be greater than"),
    (
        "ks feature not watched",
        edit(DM, "spec.ksFeatures", ["amount_sum_5m"]),
        "spec.ksFeatures",
        "every ksFeatures entry must also be listed in features",
    ),
]


@pytest.mark.parametrize(("label", "manifest", "field", "message"), CASES, ids=[c[0] for c in CASES])
def test_invalid_manifest_is_refused_naming_the_field(
    crds: None, cluster: Cluster, label: str, manifest: dict[str, Any], field: str, message: str
) -> None:
    result = cluster.kubectl("apply", "-n", cluster.namespace, "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode != 0, f"{label}: accepted"
    assert field in result.stderr, result.stderr
    assert message in result.stderr, result.stderr
    kind = manifest["kind"].lower()
    assert cluster.get(kind, manifest["metadata"]["name"]) is None


def test_the_valid_manifests_are_accepted(crds: None, cluster: Cluster) -> None:
    cluster.apply(FV, SW, DM)
    assert cluster.get("featureview", "customer-txn") is not None


def test_the_bounds_themselves_are_accepted(crds: None, cluster: Cluster) -> None:
    view = edit(edit(FV, "spec.ttl", "366d"), "spec.freshnessSla", "8784h")
    window = edit(edit(SW, "spec.windows.0", {"length": "1m", "slide": "1s"}), "spec.watermark", "0s")
    cluster.apply(view, window)
    assert cluster.get("featureview", "customer-txn")["spec"]["ttl"] == "366d"
    assert cluster.get("streamingwindow", "customer-txn")["spec"]["windows"][0]["slide"] == "1s"
