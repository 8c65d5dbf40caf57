"""StreamGuard's Redis layout for sliding-window features written by the streaming job.

One hash per (entity, view, window, window end): key
``sgw:<feast entity key bytes><project>:<view>:<window suffix>:<end ms>``, fields = aggregation names,
values = ASCII decimals (an absent field is a null aggregate). Keys expire a while after their window
can no longer be "current". A heartbeat hash per view (``sgw-hb:<project>:<view>``) records the job's
progress (``processed_at_ms``, ``watermark_ms``, ``batch_id``) so serving can tell a quiet stream from a
dead one.
"""

from collections.abc import Mapping

from streamguard.onlinestore.feast_layout import EntityValue, serialize_entity_key

HEARTBEAT_PROCESSED_AT = b"processed_at_ms"
HEARTBEAT_WATERMARK = b"watermark_ms"
HEARTBEAT_BATCH = b"batch_id"


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
