"""The streaming job's progress record and the encoding of its aggregates (the panes the windows are combined
from are in :mod:`streamguard.onlinestore.pane_layout`).

One progress record per view, the hash ``sgw-hb:{<store project>}:<view>`` (:class:`StreamProgress`, fields
below): ``processed_at_ms`` says only that the job is alive; ``progress_at_ms`` is the newest wall-clock
moment at which the job was caught up with its topic and healthy, the one serving judges freshness by.

``project`` below is always the store project of :mod:`streamguard.onlinestore.tenancy` (namespace
included); the store project comes first so that a Redis ACL prefix pattern can admit one tenant's keys.
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal, get_args

PROCESSED_AT = b"processed_at_ms"
"""Wall clock (ms) of the job's last write of the record: liveness only, never freshness."""
PROGRESS_AT = b"progress_at_ms"
"""Newest wall clock (ms) at which the job had written everything the topic held (lag 0 at that moment),
while not failing and not dead-lettering above its threshold. Never moves back."""
NEWEST_EVENT = b"newest_event_ms"
"""Newest event time (ms) the job has processed. Never moves back."""
LAG = b"lag"
"""Records between the job's committed end offsets and the topic's end offsets at the last check."""
WATERMARK = b"watermark_ms"
BATCH = b"batch_id"
STATE = b"state"
"""One of :data:`STATES`."""
REASON = b"reason"
"""A short human sentence for the state (no credentials)."""
COMPLETE_FROM = b"complete_from_ms"
"""Event time (ms) from which the job has seen every record of its topic: a window starting before it is
``partial`` (the job started later than the window, and the topic's retention did not reach back)."""
WRITTEN_BATCHES = b"written_batches"
"""A counter the job increments after every batch that wrote windows: serving's cached window reads of the view
are read again when it changes (:mod:`streamguard.serving.written`), not only once they are as old as the cache
allows. Not part of the progress (an increment, never written with the record)."""
PROGRESS_FIELDS = (PROCESSED_AT, PROGRESS_AT, NEWEST_EVENT, LAG, WATERMARK, BATCH, STATE, REASON, COMPLETE_FROM)

HEARTBEAT_PROCESSED_AT = PROCESSED_AT
HEARTBEAT_WATERMARK = WATERMARK
HEARTBEAT_BATCH = BATCH
HEARTBEAT_PROGRESS_AT = PROGRESS_AT
HEARTBEAT_NEWEST_EVENT = NEWEST_EVENT
HEARTBEAT_LAG = LAG
HEARTBEAT_STATE = STATE
HEARTBEAT_REASON = REASON
HEARTBEAT_COMPLETE_FROM = COMPLETE_FROM

StreamState = Literal["running", "catching-up", "dead-lettering", "failing", "starting"]
STATES: tuple[str, ...] = get_args(StreamState)


@dataclass(frozen=True)
class StreamProgress:
    """The progress record of a window view. ``None`` fields are not written (``HSET`` keeps what the
    hash holds), so a restarted job never erases ``progress_at_ms`` or ``newest_event_ms``."""

    processed_at_ms: int | None = None
    state: StreamState = "starting"
    reason: str = ""
    progress_at_ms: int | None = None
    newest_event_ms: int | None = None
    lag: int | None = None
    watermark_ms: int | None = None
    batch_id: int | None = None
    complete_from_ms: int | None = None

    def mapping(self) -> dict[bytes, bytes]:
        """The hash fields to ``HSET``."""
        out: dict[bytes, bytes] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None:
                out[item.name.encode()] = str(value).encode()
        return out

    @classmethod
    def parse(cls, raw: Mapping[bytes, bytes | None]) -> "StreamProgress | None":
        """The record from ``HGETALL`` (or ``HMGET`` of :data:`PROGRESS_FIELDS`); ``None`` when never written.
        A record from before the progress fields (heartbeat only) parses with state ``starting``."""
        processed = raw.get(PROCESSED_AT)
        if processed is None:
            return None

        def number(name: bytes) -> int | None:
            value = raw.get(name)
            return int(value) if value is not None else None

        state = (raw.get(STATE) or b"starting").decode()
        return cls(
            processed_at_ms=int(processed),
            state=state if state in STATES else "failing",  # type: ignore[arg-type]
            reason=(raw.get(REASON) or b"").decode(),
            progress_at_ms=number(PROGRESS_AT),
            newest_event_ms=number(NEWEST_EVENT),
            lag=number(LAG),
            watermark_ms=number(WATERMARK),
            batch_id=number(BATCH),
            complete_from_ms=number(COMPLETE_FROM),
        )


def heartbeat_key(project: str, view: str) -> bytes:
    """The store project is the hash tag, as of the generation marker and the coverage: a lookup reads the three
    from one master of a Redis Cluster."""
    return f"sgw-hb:{{{project}}}:{view}".encode()


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
    """How long a window's data lives after its last write: long enough to be read while the window is current."""
    return length_ms + slide_ms + watermark_ms + 300_000
