"""Resolving writer schema ids against the registry without a permanent verdict from a transient failure.

* A registry that cannot be reached (or answers 5xx) raises :class:`~streamguard.contracts.registry.RegistryError`:
  the runner keeps the queries stopped (offsets uncommitted, nothing dead-lettered) and retries with backoff.
* An id the registry says it does not know stays *pending* and is looked up again until a grace period
  (``unknown_schema_grace_seconds``, default 2 min) from when the job first met it has passed; only then
  are its records dead letters.
* An id whose schema cannot be read with the job's contract is a dead letter at once (that verdict does
  not change with time).
* An id dead-lettered as unknown is looked up again now and then (:meth:`SchemaResolver.recheck_unknown`):
  a registry that lost a subject and had it registered again (the operator does, on its resync) knows the
  id again, and from then on its records are decoded; those already dead-lettered stay in the dead-letter
  topic, for replay.
"""

import logging
import time
from collections.abc import Callable, Iterable

from streamguard.contracts.compatibility import can_read, explain
from streamguard.contracts.registry import SchemaRegistry
from streamguard.workloads.streaming.decode import WriterSchemas
from streamguard.workloads.streaming.plan import StreamPlan

log = logging.getLogger(__name__)


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
        """Look the ids dead-lettered as unknown up again; returns those the registry now knows (sorted into
        readable or unreadable). Raises ``RegistryError`` when the registry cannot answer."""
        known = set()
        for schema_id in sorted(self.schemas.unknown):
            writer = self.registry.schema_by_id(schema_id)
            if writer is None:
                continue
            self.schemas.unknown.discard(schema_id)
            known.add(schema_id)
            problems = can_read(self.plan.reader_schema, writer)
            if problems:
                self.schemas.unreadable.add(schema_id)
            else:
                log.info("writer schema id %d is known to the registry again: its records are decoded", schema_id)
                self.schemas.readable[schema_id] = writer
        return known

    def subject_ids(self) -> set[int]:
        """Ids of every registered version of the job's subject (raises ``RegistryError`` when unreachable)."""
        return {s.id for s in self.registry.history(self.plan.subject)}

    def grace_left(self, schema_id: int) -> float:
        return max(0.0, self.grace_s - (self.clock() - self.first_unknown.get(schema_id, self.clock())))
