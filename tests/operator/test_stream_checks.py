"""Pure: what the operator refuses in a StreamingWindow beyond admission (contract field types, the
windows-per-event limit, multi-entity views), each naming the field, and the contract's numeric rule."""

import copy
from typing import Any

import pytest

from streamguard.api.featureview import FeatureViewSpec
from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.contracts.fields import describe, field_types, is_numeric
from streamguard.operator.render import streamingwindow
from streamguard.operator.settings import OperatorSettings
from tests.operator import manifests


def window(
    extra_fields: tuple[dict[str, Any], ...] = (),
    field: str = "amount",
    function: str = "sum",
    windows: tuple[tuple[str, str], ...] = (("1m", "15s"), ("5m", "1m")),
) -> StreamingWindowSpec:
    schema = copy.deepcopy(manifests.TRANSACTION_SCHEMA)
    schema["fields"].extend(extra_fields)
    body = manifests.streaming_window(schema=schema, windows=windows)["spec"]
    body["aggregations"][1].update(field=field, function=function)
    return StreamingWindowSpec.model_validate(body)


def view(windows: tuple[str, ...] = ("1m", "5m"), entities: int = 1) -> FeatureViewSpec:
    body = manifests.feature_view(windows=windows)["spec"]
    body["entities"] += [{"name": "merchant", "joinKey": "merchant_id"}][: entities - 1]
    return FeatureViewSpec.model_validate(body)


@pytest.mark.parametrize(
    ("avro_type", "numeric", "described"),
    [
        ("int", True, "a int"),
        ("long", True, "a long"),
        ("float", True, "a float"),
        ("double", True, "a double"),
        (["null", "double"], True, "a double"),
        ({"type": "long"}, True, "a long"),
        ("string", False, "a string"),
        ("boolean", False, "a boolean"),
        (["null", "string", "double"], False, "a union of string and double"),
        ({"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}, False,
         "a bytes with logicalType decimal"),
        ({"type": "long", "logicalType": "timestamp-millis"}, False, "a long with logicalType timestamp-millis"),
        ({"type": "array", "items": "double"}, False, "a array"),
        ("Money", False, "a Money"),
        ("null", False, "always null"),
    ],
)
def test_numeric_fields_are_plain_numbers_optionally_nullable(avro_type: Any, numeric: bool, described: str) -> None:
    types = field_types({"type": "record", "name": "R", "fields": [{"name": "x", "type": avro_type}]})["x"]
    assert is_numeric(types) is numeric
    assert describe(types) == described


@pytest.mark.parametrize("function", ["sum", "avg", "min", "max"])
def test_an_aggregation_over_a_non_numeric_field_names_the_field(function: str) -> None:
    spec = window(({"name": "merchant_id", "type": "string"},), field="merchant_id", function=function)
    problem = streamingwindow.check(spec, "customer-txn", view())
    assert problem is not None and problem.reason == "FieldTypeMismatch"
    assert problem.message == (
        f"spec.aggregations[1].field: 'merchant_id' is a string in the contract; {function} needs a numeric field "
        "(int, long, float or double, optionally nullable)"
    )


def test_a_nullable_numeric_field_is_accepted() -> None:
    spec = window(({"name": "fee", "type": ["null", "float"], "default": None},), field="fee")
    assert streamingwindow.check(spec, "customer-txn", view()) is None


@pytest.mark.parametrize(
    ("field", "avro_type", "path"),
    [
        ("customer_id", "double", "spec.keyField"),
        ("event_time", "long", "spec.eventTimeField"),
    ],
)
def test_key_and_event_time_fields_need_their_types(field: str, avro_type: str, path: str) -> None:
    schema = copy.deepcopy(manifests.TRANSACTION_SCHEMA)
    next(f for f in schema["fields"] if f["name"] == field)["type"] = avro_type
    spec = StreamingWindowSpec.model_validate(manifests.streaming_window(schema=schema)["spec"])
    problem = streamingwindow.check(spec, "customer-txn", view())
    assert problem is not None and problem.reason == "FieldTypeMismatch"
    assert problem.message.startswith(f"{path}: {field!r} is a {avro_type} in the contract")


def test_windows_per_event_are_limited_by_the_operator_setting() -> None:
    spec = window(windows=(("1h", "1s"),))  # 3,600 windows per event
    default_limit = OperatorSettings().max_windows_per_event
    assert default_limit == 1000
    problem = streamingwindow.check(spec, "customer-txn", view(("1h",)))
    assert problem is not None and problem.reason == "TooManyWindows"
    assert problem.message.startswith("spec.windows: each event would be counted in 3600 windows (1h/1s = 3600)")
    assert "max_windows_per_event" in problem.message
    raised = OperatorSettings.from_env({"STREAMGUARD_OPERATOR_MAX_WINDOWS_PER_EVENT": "5000"})
    assert streamingwindow.check(spec, "customer-txn", view(("1h",)), raised.max_windows_per_event) is None
    finserve = window(windows=(("1m", "15s"), ("5m", "1m"), ("1h", "5m")))
    assert finserve.windows_per_event() == 4 + 5 + 12


def test_a_view_with_two_join_keys_is_refused_naming_the_view_and_its_keys() -> None:
    problem = streamingwindow.check(window(), "pairs", view(entities=2))
    assert problem is not None and problem.reason == "MultiEntityView"
    assert problem.message.startswith(
        "spec.featureView: FeatureView 'pairs' has 2 join keys (customer_id, merchant_id)"
    )
