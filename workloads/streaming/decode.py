"""Confluent wire-format decoding inside Spark, one ``from_avro`` per writer schema id.

Each record's 5-byte header is stripped and its body decoded with the writer schema of its id, resolved
to the job's reader schema (``avroSchema``), so old and new writer versions read the same way. Ids are
known up front; a record with an id outside the known set fails the batch with a marker that the runner
catches, resolves against the registry (``schemas.SchemaResolver``) and restarts the query from its
checkpoint (nothing is lost: the failed batch is replayed). Ids the registry still does not know after a
grace period, ids not readable with the contract, and bodies that do not decode are dead letters.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyspark.sql import Column
from pyspark.sql import functions as F  # noqa: N812
from pyspark.sql.avro.functions import from_avro

from streamguard.workloads.streaming.verdicts import Segment

UNKNOWN_ID_MARKER = "streamguard-unknown-schema-id:"
_UNKNOWN_ID = re.compile(re.escape(UNKNOWN_ID_MARKER) + r"(-?\d+)")


@dataclass
class WriterSchemas:
    """What the job knows about writer schema ids: readable ones, and the dead-letter ones (unknown to the
    registry after the grace period, or not readable with the contract); ``segments``: the earlier verdicts
    that still hold for the records below their boundaries (``verdicts``)."""

    readable: dict[int, str] = field(default_factory=dict)
    unknown: set[int] = field(default_factory=set)
    unreadable: set[int] = field(default_factory=set)
    segments: tuple[Segment, ...] = ()

    def known(self) -> list[int]:
        return sorted(set(self.readable) | self.unknown | self.unreadable)

    def copy(self) -> "WriterSchemas":
        """What the job knows now, kept apart from later resolutions (a query's plan is built from it)."""
        return WriterSchemas(dict(self.readable), set(self.unknown), set(self.unreadable), self.segments)


def unknown_ids(error_text: str) -> set[int]:
    """Schema ids named by the marker in a failed query's error text."""
    return {int(m) for m in _UNKNOWN_ID.findall(error_text)}


def schema_id_col(value: str = "value") -> Column:
    """Bytes 1-4 of the record as a big-endian integer; null when the record is not framed."""
    framed = (F.length(value) >= 5) & (F.hex(F.substring(value, 1, 1)) == F.lit("00"))
    return F.when(framed, F.conv(F.hex(F.substring(value, 2, 4)), 16, 10).cast("long"))


def below(until: Mapping[int, int]) -> Column:
    """True for a record below the bounds (partition -> offset); a partition not named is not below."""
    condition = F.lit(False)
    for partition, offset in sorted(until.items()):
        condition = condition | ((F.col("partition") == partition) & (F.col("offset") < offset))
    return condition


def decoded_col(schemas: WriterSchemas, reader_schema: str, value: str = "value") -> Column:
    """The record decoded into the reader schema's struct; null for anything not decodable."""
    sid = schema_id_col(value)
    body = F.expr(f"substring({value}, 6, 2147483647)")
    options = {"avroSchema": reader_schema, "mode": "PERMISSIVE"}
    branches = [((sid == s.schema_id) & below(s.until), s.verdict.schema) for s in schemas.segments
                if s.verdict.schema is not None]
    branches += [(sid == schema_id, writer) for schema_id, writer in sorted(schemas.readable.items())]
    decoded: Column | None = None
    for condition, writer in branches:
        branch = from_avro(body, writer, options)
        decoded = F.when(condition, branch) if decoded is None else decoded.when(condition, branch)
    if decoded is None:
        return F.when(F.lit(False), from_avro(body, reader_schema, options))
    return decoded
