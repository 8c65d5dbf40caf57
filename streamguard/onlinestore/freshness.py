"""The freshness record of a batch view, written by the materializer after every successful run.

One hash per (store project, view) (:mod:`streamguard.onlinestore.tenancy`): key
``sg-fresh:<store project>:<view>``, fields (ASCII decimals, epoch ms):

- ``newest_event_ms``: event time of the newest row the view holds online (never moves back). The
  view's freshness is ``now - newest_event``, the same age the FeatureView's ``Fresh`` condition uses;
  serving's readiness compares it with ``spec.freshnessSla``.
- ``materialized_until_ms``: end of the last materialized interval (the incremental watermark).
- ``materialized_at_ms``: wall-clock time the run finished.
- ``rows``: entity rows written by that run.

Writers ``HSET`` all fields of :meth:`FreshnessRecord.mapping`; readers need only ``newest_event_ms``.
"""

from collections.abc import Mapping
from dataclasses import dataclass

NEWEST_EVENT = b"newest_event_ms"
MATERIALIZED_UNTIL = b"materialized_until_ms"
MATERIALIZED_AT = b"materialized_at_ms"
ROWS = b"rows"
FIELDS = (NEWEST_EVENT, MATERIALIZED_UNTIL, MATERIALIZED_AT, ROWS)


def freshness_key(project: str, view: str) -> bytes:
    return f"sg-fresh:{project}:{view}".encode()


def watermark_key(project: str, view: str) -> bytes:
    """The materializer's own watermark when it runs without a cluster (``--no-status``): a JSON string."""
    return f"streamguard:materialize:{project}:{view}".encode()


@dataclass(frozen=True)
class FreshnessRecord:
    newest_event_ms: int
    materialized_until_ms: int
    materialized_at_ms: int
    rows: int

    def mapping(self) -> dict[bytes, bytes]:
        """The hash fields to ``HSET``."""
        return {
            NEWEST_EVENT: str(self.newest_event_ms).encode(),
            MATERIALIZED_UNTIL: str(self.materialized_until_ms).encode(),
            MATERIALIZED_AT: str(self.materialized_at_ms).encode(),
            ROWS: str(self.rows).encode(),
        }

    @classmethod
    def parse(cls, fields: Mapping[bytes, bytes | None]) -> "FreshnessRecord | None":
        """The record from ``HGETALL`` (or ``HMGET`` of :data:`FIELDS`); ``None`` when never written."""
        newest = fields.get(NEWEST_EVENT)
        if newest is None:
            return None

        def number(name: bytes) -> int:
            raw = fields.get(name)
            return int(raw) if raw is not None else 0

        return cls(int(newest), number(MATERIALIZED_UNTIL), number(MATERIALIZED_AT), number(ROWS))
