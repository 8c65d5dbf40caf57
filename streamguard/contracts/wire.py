"""Confluent's wire format: byte 0 is the magic byte 0, bytes 1-4 the schema id (big-endian), then the
Avro binary body. The same framing is written by confluent-kafka's ``AvroSerializer``."""

import struct

MAGIC = 0
HEADER_BYTES = 5


class WireFormatError(ValueError):
    """The bytes are not a Confluent-framed message."""


def frame(schema_id: int, body: bytes) -> bytes:
    """Prefix an Avro body with the magic byte and ``schema_id``."""
    if not 0 <= schema_id < 1 << 31:
        raise WireFormatError(f"schema id {schema_id} is out of range (0 .. 2^31-1)")
    return struct.pack(">bI", MAGIC, schema_id) + body


def schema_id(data: bytes) -> int:
    """The schema id of a framed message."""
    if len(data) < HEADER_BYTES:
        raise WireFormatError(f"message of {len(data)} bytes is shorter than the {HEADER_BYTES}-byte header")
    if data[0] != MAGIC:
        raise WireFormatError(f"unknown magic byte {data[0]} (expected {MAGIC}): not Confluent wire format")
    return int(struct.unpack_from(">I", data, 1)[0])


def unframe(data: bytes) -> tuple[int, bytes]:
    """``(schema id, Avro body)`` of a framed message."""
    return schema_id(data), data[HEADER_BYTES:]
