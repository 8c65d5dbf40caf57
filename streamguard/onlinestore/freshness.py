"""The freshness record of a batch view, written by the materializer after every successful run.

One hash per (project, view): key ``sg-fresh:<project>:<view>``, fields (ASCII decimals):

- ``materialized_until_ms``: end of the last materialized interval (the incremental watermark). The
  view's freshness is ``now - materialized_until``; serving's readiness compares it with the SLA.
- ``materialized_at_ms``: wall-clock time the run finished.
- ``rows``: entity rows written by that run.

Writers overwrite the whole hash (``HSET`` of all fields); readers need only ``materialized_until_ms``.
"""

from collections.abc import Mapping
from dataclasses import dataclass

MATERIALIZED_UNTIL = b"materialized_until_ms"
MATERIALIZED_AT = b"materialized_at_ms"
ROWS = b"rows"
FIELDS = (MATERIALIZED_UNTIL, MATERIALIZED_AT, ROWS)


def freshness_key(project: str, view: str) -> bytes:
    return f"sg-fresh:{project}:{view}".encode()


@dataclass(frozen=True)
class FreshnessRecord:
    materialized_until_ms: int
    materialized_at_ms: int
    rows: int

    def mapping(self) -> dict[bytes, bytes]:
        """The hash fields to ``HSET``."""
        return {
            MATERIALIZED_UNTIL: str(self.materialized_until_ms).encode(),
            MATERIALIZED_AT: str(self.materialized_at_ms).encode(),
            ROWS: str(self.rows).encode(),
        }

    @classmethod
    def parse(cls, fields: Mapping[bytes, bytes | None]) -> "FreshnessRecord | None":
        """The record from ``HGETALL`` (or ``HMGET`` of :data:`FIELDS`); ``None`` when never written."""
        until = fields.get(MATERIALIZED_UNTIL)
        if until is None:
            return None
        at, rows = fields.get(MATERIALIZED_AT), fields.get(ROWS)
        return cls(int(until), int(at) if at is not None else int(until), int(rows) if rows is not None else 0)
