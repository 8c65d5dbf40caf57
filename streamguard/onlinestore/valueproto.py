"""A hand-rolled codec for Feast's ``ValueProto`` (scalar values) and ``google.protobuf.Timestamp``.

Byte-identical to protobuf's serializer for the oneof scalars Feast stores; an unset value is ``b""``.
"""

import struct
from datetime import UTC, datetime

# Field numbers of feast.types.Value's oneof ``val``.
_BYTES, _STRING, _INT32, _INT64, _DOUBLE, _FLOAT, _BOOL, _UNIX_TS = 1, 2, 3, 4, 5, 6, 7, 8
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5

Scalar = str | bytes | int | float | bool | None


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a (two's-complement 64-bit) integer."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def encode_value(dtype: str, value: Scalar) -> bytes:
    """Serialize one feature value of Feast type ``dtype`` (INT64, INT32, FLOAT64, FLOAT32, STRING, BOOL,
    BYTES, UNIX_TIMESTAMP). ``None`` (or NaN for floats) is the empty Value."""
    if value is None or (isinstance(value, float) and value != value):
        return b""
    if dtype == "STRING":
        raw = str(value).encode()
        return bytes([_STRING << 3 | _LEN]) + varint(len(raw)) + raw
    if dtype == "BYTES":
        raw = value if isinstance(value, bytes) else str(value).encode()
        return bytes([_BYTES << 3 | _LEN]) + varint(len(raw)) + raw
    if dtype == "INT64":
        return bytes([_INT64 << 3 | _VARINT]) + varint(int(value))
    if dtype == "INT32":
        return bytes([_INT32 << 3 | _VARINT]) + varint(int(value))
    if dtype == "UNIX_TIMESTAMP":
        return bytes([_UNIX_TS << 3 | _VARINT]) + varint(int(value))
    if dtype == "FLOAT64":
        return bytes([_DOUBLE << 3 | _FIXED64]) + struct.pack("<d", float(value))
    if dtype == "FLOAT32":
        return bytes([_FLOAT << 3 | _FIXED32]) + struct.pack("<f", float(value))
    if dtype == "BOOL":
        return bytes([_BOOL << 3 | _VARINT, 1 if value else 0])
    raise ValueError(f"unsupported value type {dtype!r}")


def decode_value(data: bytes | None) -> Scalar:
    """Inverse of :func:`encode_value`; ``None`` for a missing or empty Value."""
    if not data:
        return None
    tag, pos = _read_varint(data, 0)
    field, wire = tag >> 3, tag & 7
    if wire == _LEN:
        length, pos = _read_varint(data, pos)
        raw = data[pos : pos + length]
        return raw.decode() if field == _STRING else raw
    if wire == _FIXED64:
        return float(struct.unpack_from("<d", data, pos)[0])
    if wire == _FIXED32:
        return float(struct.unpack_from("<f", data, pos)[0])
    raw_int, _ = _read_varint(data, pos)
    if field == _BOOL:
        return bool(raw_int)
    if field == _INT32:
        return _signed64(raw_int) if raw_int >= 1 << 31 else raw_int
    return _signed64(raw_int)


def encode_timestamp(moment: datetime) -> bytes:
    """A ``google.protobuf.Timestamp`` (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    micros = round(moment.timestamp() * 1_000_000)
    seconds, rem = divmod(micros, 1_000_000)
    out = b""
    if seconds:
        out += b"\x08" + varint(seconds)
    if rem:
        out += b"\x10" + varint(rem * 1000)
    return out


def _timestamp_parts(data: bytes) -> tuple[int, int]:
    """``(seconds, nanos)`` of a serialized Timestamp."""
    seconds = nanos = pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        value, pos = _read_varint(data, pos)
        if tag >> 3 == 1:
            seconds = _signed64(value)
        elif tag >> 3 == 2:
            nanos = value
    return seconds, nanos


def decode_timestamp_seconds(data: bytes | None) -> float | None:
    """Seconds since the epoch of a serialized Timestamp; ``None`` when absent."""
    if data is None:
        return None
    seconds, nanos = _timestamp_parts(data)
    return seconds + nanos / 1e9


def decode_timestamp_nanos(data: bytes | None) -> int:
    """Nanoseconds since the epoch of a serialized Timestamp; 0 when absent (as Feast compares)."""
    if not data:
        return 0
    seconds, nanos = _timestamp_parts(data)
    return seconds * 1_000_000_000 + nanos
