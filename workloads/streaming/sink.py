"""Writing to Redis: the job's panes (``panes``) and its progress record.

Spark's ``update`` mode hands every changed pane with its *full* partial aggregates, and ``foreachBatch`` is
at-least-once, so each write is an overwrite of the pane: a replayed batch writes the same values again instead of
adding them twice.

The streaming job writes from Spark's executors (:func:`write_batches`, a ``mapInArrow`` function): each
partition's Arrow batches go to Redis from the Python worker that holds them, over one connection pool per
worker process (``streamguard.onlinestore.client.shared``), a bounded number of entities per script call, all calls
pipelined (one pipeline per master of a Redis Cluster), and only a count returns to the driver.
"""

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import pyarrow as pa
import redis
from redis.cluster import RedisCluster

from streamguard.onlinestore.client import ERRORS, UNREACHABLE, Store, per_server, shared
from streamguard.onlinestore.slots import key_slot
from streamguard.onlinestore.window_layout import WRITTEN_BATCHES, StreamProgress, heartbeat_key
from streamguard.workloads.streaming import panes
from streamguard.workloads.streaming.plan import StreamPlan

WRITTEN = pa.schema([("written", pa.int64()), ("missed", pa.int64())])
"""The schema of what :func:`write_batches` returns: how many windows a partition wrote, and how many closed
windows its panes' new events missed (:meth:`RedisSink.write_panes`; Spark's schema is ``from_arrow_schema``)."""
FULL, AWAY = "full", "away"
"""How a store write failed (:func:`store_failure`): refused for lack of memory, or Redis unreachable."""
_MARKS = {FULL: "streamguard-store-full: ", AWAY: "streamguard-store-away: "}
"""Prefixes of the error an executor raises for a failed store write: the driver sees only its text."""


class RedisSink:
    """Applies the job's writes: up to ``entities`` entities' panes per script call (a call blocks Redis while it
    runs; on a cluster, a call's entities share a slot)."""

    def __init__(self, client: Store, plan: StreamPlan, entities: int = 100) -> None:
        self.client = client
        self.plan = plan
        self.entities = entities
        self._panes = client.register_script(panes.WRITE_PANES)  # type: ignore[misc]  # redis-py's own: both have it
        self._header = panes.script_header(plan)

    def write_panes(self, columns: Mapping[str, Sequence[Any]], watermark_ms: int, floor_ms: int) -> tuple[int, int]:
        """Store the changed panes of ``columns`` (``panes.WRITE_PANES``); how many (entity, window) pairs containing
        one changed (ending after ``watermark_ms``, starting at or after ``floor_ms``), and how many closed at
        ``watermark_ms`` the panes' new events missed."""
        slot_of = key_slot if isinstance(self.client, RedisCluster) else (lambda _: 0)
        by_slot: dict[int, list[panes.EntityPanes]] = {}
        for entity in panes.render(self.plan, columns):
            by_slot.setdefault(slot_of(entity.key), []).append(entity)
        calls: list[tuple[list[bytes], list[bytes | int]]] = []
        for entities in by_slot.values():
            for at in range(0, len(entities), self.entities):
                keys: list[bytes] = []
                args: list[bytes | int] = [watermark_ms, floor_ms, *self._header]
                for entity in entities[at : at + self.entities]:
                    keys.append(entity.key)
                    args.append(len(entity.panes))
                    for field, value in entity.panes:
                        args += [field, value]
                calls.append((keys, args))

        def send(server: redis.Redis, items: list[int]) -> list[object]:
            pipe = server.pipeline(transaction=False)
            for item in items:
                keys, args = calls[item]
                self._panes(keys=keys, args=args, client=pipe)
            return cast(list[object], pipe.execute(raise_on_error=False))

        replies = cast(list[list[int]], per_server(self.client, [keys[0] for keys, _ in calls], send))
        return sum(int(r[0]) for r in replies), sum(int(r[1]) for r in replies)

    def publish(self, progress: StreamProgress) -> None:
        """Write the view's progress record (``None`` fields keep what the hash holds)."""
        self.client.hset(heartbeat_key(self.plan.project, self.plan.view), mapping=progress.mapping())  # type: ignore[arg-type]

    def count_written(self) -> None:
        """Count a batch whose windows are all in the store (:data:`WRITTEN_BATCHES`)."""
        self.client.hincrby(heartbeat_key(self.plan.project, self.plan.view), WRITTEN_BATCHES, 1)  # type: ignore[arg-type]

    def heartbeat(self, batch_id: int | None, watermark_ms: int | None) -> None:
        """Record a completed batch that caught up with the topic, now (the record a healthy job writes
        after such a batch; writers' tests use it to stand in for the job)."""
        now = int(time.time() * 1000)
        self.publish(StreamProgress(processed_at_ms=now, state="running", reason="caught up with the topic",
                                    progress_at_ms=now, lag=0, watermark_ms=watermark_ms, batch_id=batch_id))

    def previous(self) -> StreamProgress | None:
        """The progress record as an earlier run of the job left it."""
        raw = self.client.hgetall(heartbeat_key(self.plan.project, self.plan.view))  # type: ignore[arg-type]
        return StreamProgress.parse(raw)  # type: ignore[arg-type]


def write_batches(plan: StreamPlan, redis_url: str, watermark_ms: int, floor_ms: int,
                  batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function: write one partition's changed panes (:meth:`RedisSink.write_panes`), yield how
    many windows that rewrote and how many closed ones the panes' new events missed. A store failure is raised
    as a ``RuntimeError`` whose text :func:`store_failure` recognises on the driver."""
    sink: RedisSink | None = None
    written = missed = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        try:
            sink = sink or RedisSink(shared(redis_url), plan)  # a cluster's client reads the slot table when made
            windows, late = sink.write_panes({name: batch.column(name).to_pylist() for name in batch.schema.names},
                                             watermark_ms, floor_ms)
            written += windows
            missed += late
        except ERRORS as error:
            failure = store_failure(error)
            if failure is None:
                raise
            raise RuntimeError(_MARKS[failure[0]] + failure[1]) from error
    yield pa.RecordBatch.from_pydict({"written": [written], "missed": [missed]}, schema=WRITTEN)


def store_failure(error: BaseException) -> tuple[str, str] | None:
    """``(FULL or AWAY, what Redis or the client said)`` when ``error`` is a store write that failed, raised
    on the driver or (in its text) by :func:`write_batches` in an executor; ``None`` for anything else."""
    if isinstance(error, redis.OutOfMemoryError):
        return FULL, str(error)
    if isinstance(error, UNREACHABLE):
        return AWAY, str(error)
    text = str(error)
    for kind, mark in _MARKS.items():
        at = text.find(mark)
        if at >= 0:
            return kind, text[at + len(mark):].splitlines()[0]
    return None
