"""The verdict on a writer schema id, per record: the same in both queries and in every execution of a batch.

The windows query counts the records of readable ids and skips the others; the dead-letter query sends exactly
the skipped ones to ``<topic>.dlq``. The two run apart (the dead-letter query less often, so mostly behind),
and a batch a restart interrupted runs again. The job's verdict on an id changes between two starts of the
queries: an id held for unknown becomes known (the registry learned it again), an id read before is unknown
to a registry that lost it while the job restarted. Were the new verdict applied to records that the other
query, or the batch's first execution, handled under the old one, a record would be skipped and never
dead-lettered (lost), or counted and dead-lettered too (counted twice once replayed).

So a verdict changes at a boundary only. When the queries start, every id whose verdict changed since they
last started keeps its old verdict for the records below the end offsets of the last batch either query
planned: a :class:`Segment`. Records at and after the boundary get the new verdict. The segments and the
verdicts the queries last started with are kept in ``<checkpoint>/verdicts.json``, so a restarted job honours
what the one before it did. A replayed dead letter is never covered by an ``unknown`` segment: under that
verdict it failed its batch and was never skipped.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from streamguard.workloads.streaming import checkpoint

VERDICTS_FILE = "verdicts.json"
Kind = Literal["readable", "unknown", "unreadable"]


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    schema: str | None = None
    """The writer schema of a readable id (its records decode with it)."""


@dataclass(frozen=True)
class Segment:
    """Records of ``schema_id`` below ``until`` (partition -> offset; a partition not named is not covered) that
    no earlier segment of the id covers get ``verdict``."""

    schema_id: int
    until: Mapping[int, int]
    verdict: Verdict


def live(readable: Mapping[int, str], unknown: Iterable[int], unreadable: Iterable[int]) -> dict[int, Verdict]:
    """The verdict on each resolved id as the job holds it now."""
    verdicts: dict[int, Verdict] = {i: Verdict("readable", s) for i, s in readable.items()}
    verdicts.update({i: Verdict("unknown") for i in unknown})
    verdicts.update({i: Verdict("unreadable") for i in unreadable})
    return verdicts


@dataclass(frozen=True)
class VerdictLog:
    segments: tuple[Segment, ...] = ()
    started_with: Mapping[int, Verdict] = field(default_factory=dict)
    """The verdicts the queries last started with."""

    def stamped(self, now: Mapping[int, Verdict], planned_ends: Mapping[int, int]) -> "VerdictLog":
        """The log once the queries start with ``now``: a segment up to ``planned_ends`` for each id whose
        verdict changed (or that is not resolved yet: its next records fail their batch until it is)."""
        changed = [Segment(i, dict(planned_ends), v) for i, v in sorted(self.started_with.items())
                   if now.get(i) != v] if planned_ends else []
        return VerdictLog(self.segments + tuple(changed), dict(now))

    def to_json(self) -> dict[str, Any]:
        def verdict(v: Verdict) -> dict[str, Any]:
            return {"kind": v.kind, "schema": v.schema}
        return {"segments": [{"id": s.schema_id, "until": {str(p): o for p, o in s.until.items()},
                              **verdict(s.verdict)} for s in self.segments],
                "startedWith": {str(i): verdict(v) for i, v in self.started_with.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "VerdictLog":
        segments = tuple(Segment(int(s["id"]), {int(p): int(o) for p, o in s["until"].items()},
                                 Verdict(s["kind"], s.get("schema"))) for s in data.get("segments", []))
        started = {int(i): Verdict(v["kind"], v.get("schema")) for i, v in data.get("startedWith", {}).items()}
        return cls(segments, started)

    @classmethod
    def load(cls, checkpoint_dir: str) -> "VerdictLog":
        """The job's log, empty for a checkpoint without one (a new job)."""
        text = checkpoint.at(checkpoint_dir).read_text(VERDICTS_FILE)
        return cls() if text is None else cls.from_json(json.loads(text))

    def save(self, checkpoint_dir: str) -> None:
        """Write the log whole beside the queries' checkpoints."""
        checkpoint.at(checkpoint_dir).write_text(VERDICTS_FILE, json.dumps(self.to_json()))
