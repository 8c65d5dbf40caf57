"""Dead letters and their replay, the pure part: what a dead-letter record carries and which ones a replay
sends back to the source topic.

A dead letter (``<topic>.dlq``) is the original record (key and value bytes, untouched) with headers:

* ``streamguard.error``: why (``schema-id-unknown:<id>``, ``avro-decode-failed``, ...);
* ``streamguard.origin``: ``<topic>/<partition>/<offset>`` of the original record;
* ``streamguard.timestamp``: the original record's Kafka timestamp (epoch ms).

A replay re-produces the dead letters of ids the registry knows now onto their original partition, in
origin offset order, with the original key, value and timestamp and a ``streamguard.replay-of`` header
naming the origin. The job then reads them like any other record: each event counts in every window the
job's watermark has not closed when it is processed, the time rule of docs/semantics.md. Windows already
closed do not take it (that is what "closed" means); the replay counts such records per window before it
sends anything and refuses unless told to accept them (``allow_late``).
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from streamguard.windows import WindowShape

ERROR_HEADER = "streamguard.error"
ORIGIN_HEADER = "streamguard.origin"
TIMESTAMP_HEADER = "streamguard.timestamp"
REPLAY_OF_HEADER = "streamguard.replay-of"
UNKNOWN_ID_REASON = "schema-id-unknown:"
UNREADABLE_ID_REASON = "schema-id-unreadable:"
Headers = Iterable[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None]
"""A Kafka record's headers as the client hands them."""


class DeadLetterFormatError(ValueError):
    """A record of the dead-letter topic lacks what a replay needs."""


@dataclass(frozen=True, order=True)
class Origin:
    topic: str
    partition: int
    offset: int

    @classmethod
    def parse(cls, text: str) -> "Origin":
        topic, partition, offset = text.rsplit("/", 2)
        return cls(topic, int(partition), int(offset))

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    origin: Origin
    timestamp_ms: int | None
    """The original record's timestamp; ``None`` for dead letters written before the header existed."""
    key: bytes | None
    value: bytes | None

    @classmethod
    def of(cls, headers: Headers | None, key: bytes | None, value: bytes | None) -> "DeadLetter":
        pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
        found = {name: raw.decode() if isinstance(raw, bytes) else raw or "" for name, raw in pairs}
        if ERROR_HEADER not in found or ORIGIN_HEADER not in found:
            raise DeadLetterFormatError(f"a dead letter without the {ERROR_HEADER} and {ORIGIN_HEADER} headers")
        try:
            origin = Origin.parse(found[ORIGIN_HEADER])
        except ValueError as error:
            raise DeadLetterFormatError(f"{ORIGIN_HEADER} {found[ORIGIN_HEADER]!r} is not topic/partition/offset") \
                from error
        stamp = found.get(TIMESTAMP_HEADER)
        return cls(found[ERROR_HEADER], origin, int(stamp) if stamp else None, key, value)

    @property
    def unknown_schema_id(self) -> int | None:
        """The writer schema id when the record was dead-lettered because the registry did not know it."""
        if not self.reason.startswith(UNKNOWN_ID_REASON):
            return None
        return int(self.reason.removeprefix(UNKNOWN_ID_REASON))


@dataclass(frozen=True)
class ReplayPlan:
    send: list[DeadLetter]
    """To re-produce, in origin order."""
    duplicates: int
    """Dead letters sent twice to the dead-letter topic (a replayed dead-letter batch), or already replayed."""
    kept: Counter[str] = field(default_factory=Counter)
    """Dead letters that stay, per reason (really undecodable, or an id the registry still does not know)."""
    late: Counter[str] = field(default_factory=Counter)
    """Window suffix -> records to send that fall in at least one window of it already closed."""
    still_unknown: set[int] = field(default_factory=set)

    def refusal(self, watermark_ms: int | None) -> str | None:
        """Why the replay must not go ahead without ``allow_late``; ``None`` when nothing would miss a window."""
        if not self.send or (not self.late and watermark_ms is not None):
            return None
        if watermark_ms is None:
            return (f"{len(self.send)} records to replay, but the job's watermark is unknown (is it running?), "
                    "so it cannot be shown that they fall in windows still open")
        per = ", ".join(f"{suffix}: {n}" for suffix, n in sorted(self.late.items()))
        return (f"{max(self.late.values())} of {len(self.send)} records fall in windows the job's watermark has "
                f"already closed ({per}); they would count only in the windows still open")


def closing(shape: WindowShape, event_ms: int, watermark_ms: int) -> bool:
    """True when a window containing ``event_ms`` ends at or before ``watermark_ms`` (Spark drops the event
    from it)."""
    return shape.ends_containing(event_ms)[0] <= watermark_ms


def plan_replay(letters: Iterable[DeadLetter], readable: set[int], replayed: set[Origin],
                event_time_ms: Mapping[Origin, int], windows: Mapping[str, WindowShape],
                closed_before_ms: int | None) -> ReplayPlan:
    """Which dead letters to send back. ``readable``: ids the registry knows and the contract reads;
    ``replayed``: origins already sent back by an earlier replay; ``event_time_ms``: each replayable
    record's event time; ``closed_before_ms``: windows ending at or before it count as closed (the job's
    watermark plus a margin for the time the replay takes), ``None`` when unknown."""
    send: dict[Origin, DeadLetter] = {}
    duplicates = 0
    kept: Counter[str] = Counter()
    still_unknown: set[int] = set()
    for letter in letters:
        schema_id = letter.unknown_schema_id
        if schema_id is None or schema_id not in readable:
            kept[letter.reason] += 1
            if schema_id is not None:
                still_unknown.add(schema_id)
            continue
        if letter.origin in send or letter.origin in replayed:
            duplicates += 1
            continue
        send[letter.origin] = letter
    late: Counter[str] = Counter()
    if closed_before_ms is not None:
        for origin in send:
            for suffix, shape in windows.items():
                if closing(shape, event_time_ms[origin], closed_before_ms):
                    late[suffix] += 1
    return ReplayPlan([send[o] for o in sorted(send)], duplicates, kept, late, still_unknown)
