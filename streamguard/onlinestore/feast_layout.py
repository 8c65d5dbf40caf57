"""Feast's Redis layout (entity key serialization version 3).

One hash per entity key: key = ``serialize_entity_key(join keys) + project``; field
``mmh3("<view>:<feature>")`` (4 bytes, little-endian) -> ValueProto bytes; field ``_ts:<view>`` ->
Timestamp bytes of the row's event time. StreamGuard's Feast project is the store project of
:mod:`streamguard.onlinestore.tenancy` (``spec.project`` and the namespace).
"""

import struct
from collections.abc import Mapping

import mmh3

_VALUE_TYPE_STRING, _VALUE_TYPE_INT64 = 2, 4

EntityValue = str | int


def serialize_entity_key(join_keys: Mapping[str, EntityValue]) -> bytes:
    """Feast's ``serialize_entity_key`` (v3): keys sorted; str values as STRING, int as INT64."""
    items = sorted(join_keys.items())
    out = [struct.pack("<I", len(items))]
    for key, _ in items:
        raw = key.encode()
        out.append(struct.pack("<II", _VALUE_TYPE_STRING, len(raw)))
        out.append(raw)
    for key, value in items:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise TypeError(f"entity key {key!r} must be a string or an integer, not {type(value).__name__}")
        if isinstance(value, str):
            raw = value.encode()
            out.append(struct.pack("<II", _VALUE_TYPE_STRING, len(raw)))
        else:
            raw = struct.pack("<q", value)
            out.append(struct.pack("<II", _VALUE_TYPE_INT64, 8))
        out.append(raw)
    return b"".join(out)


def redis_key(project: str, join_keys: Mapping[str, EntityValue]) -> bytes:
    return redis_key_of(serialize_entity_key(join_keys), project.encode())


def redis_key_of(entity: bytes, project: bytes) -> bytes:
    """Feast's Redis key (serialized entity key, then the project) from its two encoded parts."""
    return entity + project


def feature_field(view: str, feature: str) -> bytes:
    return struct.pack("<I", mmh3.hash(f"{view}:{feature}", signed=False))


def timestamp_field(view: str) -> bytes:
    return f"_ts:{view}".encode()
