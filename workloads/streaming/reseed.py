"""Keeping a view's windows whole in the online store's current generation (``streamguard.onlinestore.generation``).

Every windows batch runs ``ENSURE_GENERATION`` once before it writes (:meth:`WindowSeeder.check`). When the
generation is not the one the job last seeded, and the view's ``stream`` coverage is not in it either (a flush,
a Redis restart or failover, an eviction, or a first start), the batch re-seeds every open window first:

* **since** = ``max(now - longest window - its slide - watermark, complete_from)``: every window starting at or
  after it is rebuilt whole (:func:`replay_since`);
* a **bounded batch replay** of the topic from, per partition, the first offset whose timestamp is at or after
  ``since`` (a record's Kafka timestamp is not before its event time, as ``offsets.py`` already assumes) up to
  the end offsets of the batch being written (Spark's offset log), aggregated as the stream aggregates;
* its panes that start at or after ``since`` are written as absolute values (:func:`starting_from`), then the
  batch's own panes overwrite those it changed (Spark's state, also absolute), then
  ``COMMIT_COVERAGE(stream, since)``. From then on the job writes no window starting before ``since``
  (the store's ``floor``): the store lacks panes of Spark's state from before it.

The replay runs inside the batch, before the batch writes, and ends where the batch ends: no later batch can
have written a newer value that it would overwrite, and every write is a whole value, so nothing is counted
twice. A batch that fails anywhere (Redis down, out of memory, the generation ending before the commit) commits
no offsets; the query is restarted from its checkpoint and the batch, with its re-seed, runs again.

The first batch of a new checkpoint needs no replay: the stream's state holds every record since the job's
start, so coverage starts at ``complete_from``.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from streamguard.onlinestore.client import Store
from streamguard.onlinestore.generation import STREAM
from streamguard.onlinestore.writers import commit_coverage, ensure_generation, read_coverage
from streamguard.workloads.streaming.panes import NEVER, PANE
from streamguard.workloads.streaming.plan import StreamPlan


class GenerationEndedError(RuntimeError):
    """The store's generation ended while the batch re-seeded it: the batch must fail and run again."""


def replay_since(plan: StreamPlan, now_ms: int, complete_from_ms: int | None) -> int:
    """Event time from which a re-seed rebuilds every window whole: the longest window with its slide and the
    watermark back from now, never before the job has seen every record."""
    longest = max(plan.windows, key=lambda w: (w.length_ms, w.slide_ms))
    return max(now_ms - longest.length_ms - longest.slide_ms - plan.watermark_ms, complete_from_ms or 0)


def replay_ranges(starts: Mapping[int, int | None], ends: Mapping[int, int]) -> dict[int, tuple[int, int]]:
    """Per partition ``[start, end)``: ``start`` from offsets-for-times (``None``: no record that recent, so
    nothing to replay), never past the batch's ``end``."""
    out = {}
    for partition, end in ends.items():
        start = starts.get(partition)
        out[partition] = (end if start is None else min(start, end), end)
    return out


def starting_from(columns: Mapping[str, Sequence[Any]], since_ms: int) -> dict[str, list[Any]]:
    """The rows of a pane frame (column-wise) whose pane starts at or after ``since_ms``: the replay holds every
    record of those; a pane starting earlier would be written short."""
    keep = [row for row, start in enumerate(columns[PANE]) if int(start) >= since_ms]
    return {name: [values[row] for row in keep] for name, values in columns.items()}


class WindowSeeder:
    """Which generation the job's windows are whole in; one ``ENSURE_GENERATION`` per batch."""

    def __init__(self, client: Store, plan: StreamPlan) -> None:
        self.client = client
        self.plan = plan
        self.seeded: str | None = None
        self.floor_ms = NEVER
        """The first pane start from which the store holds every pane of Spark's state (``panes``): since the
        re-seed of the generation, or the coverage's ``since`` when an earlier run of the job seeded it."""

    def check(self, now_ms: int) -> str | None:
        """``None`` when the windows are whole in the current generation; else the generation to re-seed."""
        generation, _ = ensure_generation(self.client, self.plan.project, now_ms)
        if generation == self.seeded:
            return None
        coverage = read_coverage(self.client, self.plan.project, self.plan.view, STREAM)
        if coverage is not None and coverage.generation == generation:
            self.seeded = generation  # an earlier run of the job seeded it; the checkpoint replays the rest
            self.floor_ms = coverage.since_ms
            return None
        return generation

    def commit(self, generation: str, since_ms: int, replayed: bool) -> int:
        """Record the stream coverage of the re-seeded ``generation``; its ``since_ms`` (the first one of it).
        A generation seeded by a replay holds the panes since then; one seeded by a new checkpoint's first
        batch holds every pane of Spark's state."""
        since = commit_coverage(self.client, self.plan.project, self.plan.view, STREAM, generation, since_ms)
        if since is None:
            raise GenerationEndedError(
                f"the online store's generation {generation} ended while re-seeding {self.plan.view} (flushed, "
                "restarted, failed over or evicted); the batch runs again and re-seeds the new one"
            )
        self.seeded = generation
        self.floor_ms = since if replayed else NEVER
        return since
