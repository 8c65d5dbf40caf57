"""Byte equality of our Feast Redis layout (no Feast import at run time) with Feast's own helpers."""

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from streamguard.api.featureview import Entity
from streamguard.onlinestore import feast_layout, valueproto
from streamguard.workloads.materialize.encode import (
    encode_column,
    encode_timestamps,
    entity_keys,
)

FEAST_TYPES = {
    "INT64": ValueType.INT64,
    "INT32": ValueType.INT32,
    "FLOAT64": ValueType.DOUBLE,
    "FLOAT32": ValueType.FLOAT,
    "STRING": ValueType.STRING,
    "BOOL": ValueType.BOOL,
}
SAMPLES: dict[str, list[object]] = {
    "INT64": [0, 1, -1, 127, 128, 2**40, -(2**62), 2**63 - 1, None],
    "INT32": [0, 5, -5, 2**31 - 1, -(2**31), None],
    "FLOAT64": [0.0, -0.0, 1.5, -2.25e-300, 1e308, 3.141592653589793, float("nan"), None],
    "FLOAT32": [0.0, 1.5, -3.25, 1e-3, None],
    "STRING": ["", "a", "C000001", "ünïcødé", "x" * 300, None],
    "BOOL": [True, False, None],
}
ARROW_TYPES = {
    "INT64": pa.int64(),
    "INT32": pa.int32(),
    "FLOAT64": pa.float64(),
    "FLOAT32": pa.float32(),
    "STRING": pa.string(),
    "BOOL": pa.bool_(),
}


def _feast_entity_key(join_keys: dict[str, str | int]) -> EntityKey:
    key = EntityKey()
    for name, value in join_keys.items():
        key.join_keys.append(name)
        key.entity_values.append(Value(string_val=value) if isinstance(value, str) else Value(int64_val=value))
    return key


@pytest.mark.parametrize(
    "join_keys",
    [{"customer_id": "C000001"}, {"account_id": ""}, {"merchant_id": 42}, {"b": "x", "a": 7}, {"k": "ü" * 70}],
)
def test_entity_key_and_redis_key_equal_feast(join_keys: dict[str, str | int]) -> None:
    proto = _feast_entity_key(join_keys)
    assert feast_layout.serialize_entity_key(join_keys) == serialize_entity_key(proto, 3)
    assert feast_layout.redis_key("finserve", join_keys) == _redis_key("finserve", proto, 3)


@pytest.mark.parametrize("name", ["customer-profile:cust_txn_count_7d", "v:f", "account-realtime:amount_max_1h"])
def test_feature_field_equals_feast_mmh3(name: str) -> None:
    view, feature = name.split(":")
    assert feast_layout.feature_field(view, feature) == _mmh3(name)
    assert feast_layout.timestamp_field(view) == f"_ts:{view}".encode()


@pytest.mark.parametrize("dtype", sorted(SAMPLES))
def test_value_encoding_equals_feast(dtype: str) -> None:
    values = SAMPLES[dtype]
    feast_bytes = [
        v.SerializeToString()
        for v in python_values_to_proto_values(list(np.array(values, dtype=object)), FEAST_TYPES[dtype])
    ]
    assert [valueproto.encode_value(dtype, v) for v in values] == feast_bytes  # type: ignore[arg-type]
    column = pa.chunked_array([pa.array(values, ARROW_TYPES[dtype], from_pandas=True)])
    assert encode_column(dtype, column) == feast_bytes


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2026, 10, 1, 12, 30, 15, 123456, tzinfo=UTC),
        datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2038, 1, 19, 3, 14, 8, 999999, tzinfo=UTC),
    ],
)
def test_timestamp_encoding_equals_feast(moment: datetime) -> None:
    feast_ts = Timestamp()
    feast_ts.FromDatetime(moment)
    expected = feast_ts.SerializeToString()
    assert valueproto.encode_timestamp(moment) == expected
    micros = int(moment.timestamp()) * 1_000_000 + moment.microsecond
    assert encode_timestamps(np.array([micros], dtype=np.int64)) == [expected]
    assert valueproto.decode_timestamp_nanos(expected) == feast_ts.seconds * 1_000_000_000 + feast_ts.nanos


def test_vectorized_entity_keys_equal_feast() -> None:
    rows = pa.table({"account_id": ["A000001", "A1", ""], "n": pa.array([3, -4, 2**40], pa.int64())})
    string_keys = entity_keys("p1", [Entity(name="account", join_key="account_id")], rows)
    assert string_keys == [_redis_key("p1", _feast_entity_key({"account_id": v}), 3) for v in ["A000001", "A1", ""]]
    int_keys = entity_keys("p1", [Entity(name="n", join_key="n", value_type="INT64")], rows)
    assert int_keys == [_redis_key("p1", _feast_entity_key({"n": v}), 3) for v in [3, -4, 2**40]]
    both = entity_keys(
        "p1", [Entity(name="account", join_key="account_id"), Entity(name="n", join_key="n", value_type="INT64")], rows
    )
    assert both[1] == _redis_key("p1", _feast_entity_key({"account_id": "A1", "n": -4}), 3)
