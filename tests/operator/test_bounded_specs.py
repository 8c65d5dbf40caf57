"""Specs admission cannot judge alone (the contract's field types, the operator's windows-per-event limit,
a target view with several join keys) are Stalled with the field named, and get no Deployment."""

import uuid
from collections.abc import Callable

import pytest

from tests.operator import manifests
from tests.operator.conftest import Cluster
from tests.operator.process import OperatorProcess
from tests.operator.test_bad_references import stalled_message

pytestmark = pytest.mark.stack


def test_bounded_specs_stall_naming_the_field_and_render_nothing(
    operator: OperatorProcess, cluster: Cluster
) -> None:
    subject = f"t-{uuid.uuid4().hex[:8]}-bounds-value"
    schema = manifests.with_schema_field({"name": "merchant_id", "type": "string"})
    non_numeric = manifests.streaming_window(name="sum-of-string", schema=schema, subject=subject)
    non_numeric["spec"]["aggregations"][1]["field"] = "merchant_id"
    pairs = manifests.feature_view(name="pairs")
    pairs["spec"]["entities"].append({"name": "merchant", "joinKey": "merchant_id"})
    cluster.apply(
        manifests.feature_view(),
        manifests.feature_view(name="hourly", windows=("1h",)),
        pairs,
        non_numeric,
        manifests.streaming_window(name="every-second", view="hourly", windows=(("1h", "1s"),), subject=subject),
        manifests.streaming_window(name="multi-entity", view="pairs", subject=subject),
    )
    assert stalled_message(cluster, "streamingwindow", "sum-of-string") == (
        "spec.aggregations[1].field: 'merchant_id' is a string in the contract; sum needs a numeric field "
        "(int, long, float or double, optionally nullable)"
    )
    message = stalled_message(cluster, "streamingwindow", "every-second")
    assert message.startswith("spec.windows: each event would be counted in 3600 windows")
    assert "max_windows_per_event" in message
    message = stalled_message(cluster, "streamingwindow", "multi-entity")
    assert message.startswith("spec.featureView: FeatureView 'pairs' has 2 join keys (customer_id, merchant_id)")
    reasons = {
        name: (cluster.condition("streamingwindow", name, "Stalled") or {}).get("reason")
        for name in ("sum-of-string", "every-second", "multi-entity")
    }
    assert reasons == {
        "sum-of-string": "FieldTypeMismatch",
        "every-second": "TooManyWindows",
        "multi-entity": "MultiEntityView",
    }
    operator.wait_idle()
    for name in reasons:
        assert cluster.get("deployment", f"{name}-stream") is None
        assert cluster.get("configmap", f"{name}-stream") is None
    assert "Traceback" not in operator.log_text()


def test_the_windows_per_event_limit_is_an_operator_setting(
    start_operator: Callable[..., OperatorProcess], cluster: Cluster
) -> None:
    start_operator(max_windows_per_event="5000")
    window = manifests.streaming_window(
        name="every-second", view="hourly", windows=(("1h", "1s"),), subject=f"t-{uuid.uuid4().hex[:8]}-limit-value"
    )
    cluster.apply(manifests.feature_view(name="hourly", windows=("1h",)), window)
    # 3,600 windows per event: refused by default, accepted under the raised limit.
    cluster.wait_for(lambda: cluster.get("deployment", "every-second-stream"), what="the stream Deployment")
    stalled = cluster.condition("streamingwindow", "every-second", "Stalled")
    assert stalled is not None and stalled["status"] == "False"
