"""StreamGuard's Redis layout for sliding-window features written by the streaming job.

One hash per (entity, view, window, window end): key
``sgw:<feast entity key bytes><project>:<view>:<window suffix>:<end ms>``, fields = aggregation names,
values = ASCII decimals (an absent field is a null aggregate). Keys expire a while after their window
can no longer be "current".

A heartbeat hash per view (``sgw-hb:<project>:<view>``) holds the job's progress record
(:class:`StreamProgress`; ASCII decimals, epoch ms unless said):

- ``processed_at_ms``: liveness only (written every second); never evidence of freshness.
- ``progress_at_ms``: the newest moment the job was caught up and healthy (a windows batch consumed the
  topic up to the end offsets as they stood at its start, or the query was idle with zero lag, while not
  dead-lettering above its threshold nor failing). Never advanced otherwise.
- ``newest_event_ms``: the newest event time processed (never moves back).
- ``lag``: records between the committed and the topic's end offsets at the last check (all partitions).
- ``watermark_ms``, ``batch_id``: Spark's watermark and the last batch.
- ``state``: ``running``, ``catching-up``, ``dead-lettering``, ``failing`` or ``starting``; ``reason``: a
  short human sentence for it (never credentials).
- ``complete_from_ms`` (optional): windows starting before it miss events (the job began after the
  topic's retention); serving marks them ``partial``.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from streamguard.onlinestore.feast_layout import EntityValue, serialize_entity_key

HEARTBEAT_PROCESSED_AT = b"processed_at_ms"
HEARTBEAT_WATERMARK = b"watermark_ms"
HEARTBEAT_BATCH = b"batch_id"
HEARTBEAT_PROGRESS_AT = b"progress_at_ms"
HEARTBEAT_NEWEST_EVENT = b"newest_event_ms"
HEARTBEAT_LAG = b"lag"
HEARTBEAT_STATE = b"state"
HEARTBEAT_REASON = b"reason"
HEARTBEAT_COMPLETE_FROM = b"complete_from_ms"
PROGRESS_FIELDS = (
    HEARTBEAT_PROCESSED_AT,
    HEARTBEAT_PROGRESS_AT,
    HEARTBEAT_NEWEST_EVENT,
    HEARTBEAT_LAG,
    HEARTBEAT_WATERMARK,
    HEARTBEAT_BATCH,
    HEARTBEAT_STATE,
    HEARTBEAT_REASON,
    HEARTBEAT_COMPLETE_FROM,
)
"""Every field of the progress record, in :meth:`StreamProgress.parse`'s ``HMGET`` order."""


def window_key(project: str, view: str, suffix: str, end_ms: int, join_keys: Mapping[str, EntityValue]) -> bytes:
    return entity_prefix(join_keys) + window_key_tail(project, view, suffix, end_ms)


def entity_prefix(join_keys: Mapping[str, EntityValue]) -> bytes:
    """The start of every window key of one entity (writers cache it per entity)."""
    return b"sgw:" + serialize_entity_key(join_keys)


def window_key_tail(project: str, view: str, suffix: str, end_ms: int) -> bytes:
    """The end of a window key: ``window_key == entity_prefix(keys) + window_key_tail(...)``."""
    return f"{project}:{view}:{suffix}:{end_ms}".encode()


def heartbeat_key(project: str, view: str) -> bytes:
    return f"sgw-hb:{project}:{view}".encode()


def encode_number(value: float | int | None) -> bytes | None:
    """ASCII form of an aggregate; ``None`` means "leave the field out"."""
    if value is None:
        return None
    return str(value).encode() if isinstance(value, int) else repr(float(value)).encode()


def decode_number(raw: bytes | None) -> float | int | None:
    if raw is None:
        return None
    text = raw.decode()
    return float(text) if any(c in text for c in ".eEn") else int(text)


def expiry_ms(length_ms: int, slide_ms: int, watermark_ms: int) -> int:
    """How long a window key lives after its last write: long enough to be read while current."""
    return length_ms + slide_ms + watermark_ms + 300_000


@dataclass(frozen=True)
class StreamProgress:
    """The progress record of one view's streaming job (``None`` fields are not written)."""

    processed_at_ms: int | None = None
    progress_at_ms: int | None = None
    newest_event_ms: int | None = None
    lag: int | None = None
    watermark_ms: int | None = None
    batch_id: int | None = None
    state: str = ""
    reason: str = ""
    complete_from_ms: int | None = None

    def mapping(self) -> dict[bytes, bytes]:
        """The hash fields to ``HSET`` (unknown numbers and empty texts left out)."""
        numbers = {
            HEARTBEAT_PROCESSED_AT: self.processed_at_ms,
            HEARTBEAT_PROGRESS_AT: self.progress_at_ms,
            HEARTBEAT_NEWEST_EVENT: self.newest_event_ms,
            HEARTBEAT_LAG: self.lag,
            HEARTBEAT_WATERMARK: self.watermark_ms,
            HEARTBEAT_BATCH: self.batch_id,
            HEARTBEAT_COMPLETE_FROM: self.complete_from_ms,
        }
        out = {name: str(value).encode() for name, value in numbers.items() if value is not None}
        for name, text in ((HEARTBEAT_STATE, self.state), (HEARTBEAT_REASON, self.reason)):
            if text:
                out[name] = text.encode()
        return out

    @classmethod
    def parse(cls, fields: Mapping[bytes, bytes | None]) -> "StreamProgress | None":
        """The record from ``HGETALL`` (or ``HMGET`` of :data:`PROGRESS_FIELDS`); ``None`` when never written."""
        if all(fields.get(name) is None for name in PROGRESS_FIELDS):
            return None

        def number(name: bytes) -> int | None:
            raw = fields.get(name)
            return None if raw is None else int(raw)

        def text(name: bytes) -> str:
            raw = fields.get(name)
            return "" if raw is None else raw.decode(errors="replace")

        return cls(
            processed_at_ms=number(HEARTBEAT_PROCESSED_AT),
            progress_at_ms=number(HEARTBEAT_PROGRESS_AT),
            newest_event_ms=number(HEARTBEAT_NEWEST_EVENT),
            lag=number(HEARTBEAT_LAG),
            watermark_ms=number(HEARTBEAT_WATERMARK),
            batch_id=number(HEARTBEAT_BATCH),
            state=text(HEARTBEAT_STATE),
            reason=text(HEARTBEAT_REASON),
            complete_from_ms=number(HEARTBEAT_COMPLETE_FROM),
        )
