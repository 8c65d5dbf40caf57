"""Arrow columns -> Feast's Redis bytes, a column at a time (no per-row protobuf objects).

Byte-identical to Feast's ``ValueProto``/``Timestamp`` serialization and ``serialize_entity_key`` v3
(tests compare against Feast's own helpers); see :mod:`streamguard.onlinestore`.
"""

import struct
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from streamguard.api.featureview import Entity
from streamguard.onlinestore.feast_layout import redis_key
from streamguard.onlinestore.valueproto import encode_value, varint

_STRING, _INT64 = 2, 4


def entity_keys(project: str, entities: list[Entity], rows: pa.Table) -> list[bytes]:
    """The Redis key of every row (Feast: serialized entity key + project)."""
    suffix = project.encode()
    if len(entities) == 1:
        name = entities[0].join_key.encode()
        prefix = struct.pack("<III", 1, _STRING, len(name)) + name
        values = rows.column(entities[0].join_key).to_pylist()
        if entities[0].value_type == "STRING":
            pack = struct.Struct("<II").pack
            encoded = [v.encode() for v in values]
            return [prefix + pack(_STRING, len(raw)) + raw + suffix for raw in encoded]
        int_head = struct.pack("<II", _INT64, 8)
        pack_q = struct.Struct("<q").pack
        return [prefix + int_head + pack_q(v) + suffix for v in values]
    columns = [rows.column(e.join_key).to_pylist() for e in entities]
    names = [e.join_key for e in entities]
    return [redis_key(project, dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]


def _fixed(tag: int, fmt: str, column: pa.ChunkedArray) -> list[bytes]:
    width = 1 + np.dtype(fmt).itemsize
    values = column.to_numpy(zero_copy_only=False).astype(fmt)
    packed = np.empty(len(values), dtype=[("tag", "u1"), ("value", fmt)])
    packed["tag"] = tag
    packed["value"] = values
    raw = packed.tobytes()
    out = [raw[i : i + width] for i in range(0, len(raw), width)]
    missing = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), dtype=bool)
    if column.null_count:
        missing |= column.is_null().to_numpy(zero_copy_only=False)
    for index in np.flatnonzero(missing):
        out[index] = b""
    return out


def _memoized(dtype: str, column: pa.ChunkedArray) -> list[bytes]:
    cache: dict[object, bytes] = {}
    out = []
    for value in column.to_pylist():
        encoded = cache.get(value)
        if encoded is None:
            encoded = cache[value] = encode_value(dtype, value)
        out.append(encoded)
    return out


def _strings(column: pa.ChunkedArray) -> list[bytes]:
    out = []
    for value in column.to_pylist():
        if value is None:
            out.append(b"")
        else:
            raw = value.encode()
            out.append(b"\x12" + varint(len(raw)) + raw)
    return out


_ENCODERS: dict[str, Callable[[pa.ChunkedArray], list[bytes]]] = {
    "FLOAT64": lambda c: _fixed(5 << 3 | 1, "<f8", c),
    "FLOAT32": lambda c: _fixed(6 << 3 | 5, "<f4", c),
    "INT64": lambda c: _memoized("INT64", c),
    "INT32": lambda c: _memoized("INT32", c),
    "BOOL": lambda c: _memoized("BOOL", c),
    "STRING": _strings,
}


def encode_column(dtype: str, column: pa.ChunkedArray) -> list[bytes]:
    """``ValueProto`` bytes of every value (null, and NaN for floats, -> ``b""`` as Feast writes)."""
    return _ENCODERS[dtype](column)


def encode_timestamps(micros: np.ndarray) -> list[bytes]:
    """``google.protobuf.Timestamp`` bytes of epoch microseconds (memoized: snapshots share times)."""
    cache: dict[int, bytes] = {}
    out = []
    for value in micros.tolist():
        encoded = cache.get(value)
        if encoded is None:
            seconds, rest = divmod(value, 1_000_000)
            encoded = (b"\x08" + varint(seconds) if seconds else b"") + (
                b"\x10" + varint(rest * 1000) if rest else b""
            )
            cache[value] = encoded
        out.append(encoded)
    return out

