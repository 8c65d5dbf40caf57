"""Resolving writer schema ids against the registry without a permanent verdict from a transient failure.

* A registry that cannot be reached (or answers 5xx, or refuses the call) raises
  :class:`~streamguard.contracts.registry.RegistryError`:
  the runner keeps the queries stopped (offsets uncommitted, nothing dead-lettered) and retries with backoff.
* An id the registry says it does not know stays *pending* and is looked up again until a grace period
  (``unknown_schema_grace_seconds``, default 2 min) from when the job first met it has passed; only then
  are its records dead letters.
* An id whose schema cannot be read with the job's contract is a dead letter at once (that verdict does
  not change with time).
* An id dead-lettered as unknown is asked for again every ``RECHECK_UNKNOWN_S`` while the job runs
  (:meth:`SchemaResolver.recheck_unknown`): once the registry knows it, the runner restarts the queries from
  the checkpoint so its later records decode, and its dead letters can be replayed
  (``streamguard stream replay-dead-letters``).
"""

import logging
import time
from collections.abc import Callable, Iterable

from streamguard.contracts.compatibility import can_read, explain
from streamguard.contracts.registry import SchemaRegistry
from streamguard.workloads.streaming.decode import WriterSchemas
from streamguard.workloads.streaming.plan import StreamPlan

log = logging.getLogger(__name__)
RECHECK_UNKNOWN_S = 5.0
"""One GET per id held for unknown: records of an id registered again are dead-lettered for at most this long."""


class SchemaResolver:
    def __init__(self, registry: SchemaRegistry, plan: StreamPlan, schemas: WriterSchemas, grace_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.plan = plan
        self.schemas = schemas
        self.grace_s = grace_s
        self.clock = clock
        self.first_unknown: dict[int, float] = {}
        """Schema id -> when the registry first said it does not know it."""

    def resolve(self, ids: Iterable[int]) -> set[int]:
        """Sort ``ids`` into readable, unreadable and unknown; returns the ids still pending (unknown to the
        registry, within their grace period). Raises ``RegistryError`` when the registry cannot answer."""
        pending = set()
        for schema_id in sorted(set(ids)):
            writer = self.registry.schema_by_id(schema_id)
            if writer is None:
                first = self.first_unknown.setdefault(schema_id, self.clock())
                if self.clock() - first < self.grace_s:
                    pending.add(schema_id)
                    continue
                log.warning("schema id %d is still unknown to the registry after %.0fs: its records go to %s",
                            schema_id, self.grace_s, self.plan.dead_letter_topic)
                self.schemas.unknown.add(schema_id)
                continue
            self.first_unknown.pop(schema_id, None)
            problems = can_read(self.plan.reader_schema, writer)
            if problems:
                log.warning("schema id %d cannot be read with the contract of %s (%s): its records go to %s",
                            schema_id, self.plan.ref, explain(problems), self.plan.dead_letter_topic)
                self.schemas.unreadable.add(schema_id)
            else:
                log.info("writer schema id %d resolved", schema_id)
                self.schemas.readable[schema_id] = writer
        return pending

    def recheck_unknown(self) -> set[int]:
        """Ask again for the ids held for unknown; returns those that became readable (or unreadable: either
        way no longer unknown). Raises ``RegistryError`` when the registry cannot answer."""
        settled = set()
        for schema_id in sorted(self.schemas.unknown):
            if self.registry.schema_by_id(schema_id) is not None:
                settled.add(schema_id)
        if settled:
            self.forget(settled)
            self.resolve(settled)
        return settled

    def forget(self, ids: Iterable[int]) -> None:
        """Drop the unknown verdict of ``ids``: the next :meth:`resolve` asks the registry afresh."""
        for schema_id in ids:
            self.schemas.unknown.discard(schema_id)
            self.first_unknown.pop(schema_id, None)

    def subject_ids(self) -> set[int]:
        """Ids of every registered version of the job's subject (raises ``RegistryError`` when unreachable)."""
        return {s.id for s in self.registry.history(self.plan.subject)}

    def grace_left(self, schema_id: int) -> float:
        return max(0.0, self.grace_s - (self.clock() - self.first_unknown.get(schema_id, self.clock())))
