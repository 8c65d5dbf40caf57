"""The status rule of a view's values and its freshness, from the streaming job's progress record and the
online store's coverage (pure). Every status serving answers and every freshness verdict comes from here.

**Stream progress.** A window view is fresh at ``now`` iff the record has ``progress_at`` and
``now - progress_at <= sla`` and (``lag == 0`` or ``now - newest_event <= sla``): the job was caught up
and healthy within the SLA, and, while records wait to be processed, the newest event it processed is
within the SLA too. A quiet topic (lag 0) stays fresh as long as the job keeps confirming it is caught
up. The job's liveness beat (``processed_at``) is never evidence of freshness. Equivalently the stream's
data is complete up to :func:`complete_until` (``progress_at``, or the newest event processed when that
is older and records wait), and its age is ``now`` minus that time.

**Coverage** (:mod:`streamguard.onlinestore.generation`). A value is only what the store says when the
view's writer part (``batch``: the materializer, ``stream``: the streaming job) covers it in the store's
current generation (:func:`~streamguard.onlinestore.generation.reading`): otherwise it is ``stale``
(present or absent, never ``present``), and an absent key reads as empty (window) or ``not_found``
(batch) only when covered and the server does not run an evicting ``maxmemory-policy``. A view part
that does not cover what is served (the longest window's start, or ``now - ttl``) is not fresh
(:func:`~streamguard.onlinestore.generation.coverage_verdict`).

:func:`window_rule` and :func:`batch_rule` combine both into the statuses of one request.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from streamguard.onlinestore.generation import (
    BATCH,
    CREATED_MS,
    EMPTY,
    EVICTED_KEYS,
    ID,
    RUN_ID,
    STREAM,
    Coverage,
    Generation,
    Verdict,
    coverage_fields,
    coverage_verdict,
    reading,
)
from streamguard.onlinestore.generation import (
    PRESENT as STORED,
)
from streamguard.onlinestore.window_layout import PROGRESS_FIELDS, StreamProgress
from streamguard.serving.catalog import ServedView, WindowGroup

PRESENT, NOT_FOUND, EXPIRED, STALE, PARTIAL = "present", "not_found", "expired", "stale", "partial"
MARKER_FIELDS = (ID, CREATED_MS, RUN_ID, EVICTED_KEYS)
"""The generation marker's fields, as read with ``HMGET`` (compared with the server's identity)."""
COVERAGE_FIELDS = (*coverage_fields(BATCH), *coverage_fields(STREAM))


@dataclass(frozen=True, slots=True)
class StreamVerdict:
    fresh: bool
    complete_until: float | None
    """Epoch seconds up to which the stream's values are known complete; ``None`` when never."""
    reason: str
    """Why the view is not fresh (empty when fresh)."""


def complete_until(progress: StreamProgress | None) -> float | None:
    """Epoch seconds: ``progress_at``, or the newest event processed when older and the lag is not 0."""
    if progress is None or progress.progress_at_ms is None:
        return None
    until = progress.progress_at_ms
    if progress.lag != 0:
        if progress.newest_event_ms is None:
            return None
        until = min(until, progress.newest_event_ms)
    return until / 1000.0


def _job(progress: StreamProgress) -> str:
    """The job's own account of itself, for messages: ``state: reason``."""
    if progress.state and progress.reason:
        return f"{progress.state}: {progress.reason}"
    return progress.state or progress.reason or "no state reported"


def _lag(progress: StreamProgress) -> str:
    return "an unknown number of records" if progress.lag is None else f"{progress.lag} records"


def judge(progress: StreamProgress | None, sla_seconds: float, now: float) -> StreamVerdict:
    """Fresh or not, and why not, at ``now`` (epoch seconds)."""
    if progress is None:
        return StreamVerdict(False, None, "no stream progress record (streaming job never ran?)")
    until = complete_until(progress)
    if progress.progress_at_ms is None:
        return StreamVerdict(False, None, f"stream never caught up ({_job(progress)})")
    if until is None:
        return StreamVerdict(False, None, f"stream lags {_lag(progress)}, no event processed ({_job(progress)})")
    age = now - until
    if age <= sla_seconds:
        return StreamVerdict(True, until, "")
    behind = now - progress.progress_at_ms / 1000.0
    if behind > sla_seconds:
        why = f"stream last caught up {behind:.0f}s ago"
    else:
        why = f"stream lags {_lag(progress)}; newest event processed is {age:.0f}s old"
    return StreamVerdict(False, until, f"{why}, over its freshness SLA of {sla_seconds:g}s ({_job(progress)})")


def parse_progress(raw: list[bytes | None]) -> StreamProgress | None:
    """The record from an ``HMGET`` of :data:`PROGRESS_FIELDS`; an unreadable record counts as none
    (the view is then not fresh)."""
    return _progress(tuple(raw))


def parse_marker(raw: list[bytes | None]) -> Generation | None:
    """The marker from an ``HMGET`` of :data:`MARKER_FIELDS`."""
    return _marker(tuple(raw))


def parse_coverage(raw: list[bytes | None]) -> tuple[Coverage | None, Coverage | None]:
    """``(batch, stream)`` coverage from an ``HMGET`` of :data:`COVERAGE_FIELDS`."""
    return _coverage(tuple(raw))


# Every lookup reads the same few markers, coverage hashes and progress records (a record changes once per batch of
# its job): parse each distinct reply once.
@lru_cache(maxsize=4096)
def _progress(raw: tuple[bytes | None, ...]) -> StreamProgress | None:
    try:
        return StreamProgress.parse(dict(zip(PROGRESS_FIELDS, raw, strict=True)))
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def _marker(raw: tuple[bytes | None, ...]) -> Generation | None:
    return Generation.parse(dict(zip(MARKER_FIELDS, raw, strict=True)))


@lru_cache(maxsize=4096)
def _coverage(raw: tuple[bytes | None, ...]) -> tuple[Coverage | None, Coverage | None]:
    fields = dict(zip(COVERAGE_FIELDS, raw, strict=True))
    return Coverage.parse(fields, BATCH), Coverage.parse(fields, STREAM)


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=256)
def _stamp(progress_at_ms: int | None) -> str | None:
    """:func:`iso` of a progress record's ``progress_at_ms``: the event timestamp of every window value it vouches
    for, the same for every window and request until the job's next batch."""
    return iso(None if progress_at_ms is None else progress_at_ms / 1000.0)


@dataclass(frozen=True, slots=True)
class StoreView:
    """What the online store says about one view: the store project's current generation (``None``: none),
    the view's coverage per writer part and whether the server evicts keys."""

    current: str | None
    batch: Coverage | None = None
    stream: Coverage | None = None
    evicting: bool = False


@dataclass(frozen=True, slots=True)
class WindowRule:
    """How one window group's values are answered in one request (the same for every entity row)."""

    status: str
    """Status of a value whose window hash exists."""
    missing_status: str
    """Status when the hash is absent."""
    missing_empty: bool
    """An absent hash reads as the empty window (else null)."""
    withhold: bool
    """Values are withheld (null) even when the hash exists."""
    stamp: str | None


@dataclass(frozen=True, slots=True)
class BatchRule:
    """How one view's batch values are answered in one request (before each row's own TTL check)."""

    status: str
    """Status of a value that is stored (and not expired)."""
    missing_status: str
    """Status when the entity's row or the field is absent."""


def window_start_ms(group: WindowGroup, now: float) -> int:
    """Start of the window served at ``now`` (the window containing ``now``)."""
    return group.shape.end_as_of(int(now * 1000)) - group.shape.length_ms


def window_rule(
    view: ServedView, group: WindowGroup, progress: StreamProgress | None, store: StoreView, now: float
) -> WindowRule:
    """The statuses of a window group's values at ``now``, from the view's progress record and the stream
    part's coverage. In order: expired (caught up longer ago than the TTL), stale (not covered, or not
    fresh), partial (the job's data starts after the window's start), present; an absent hash is the empty
    window only when covered and the server does not evict (else stale, null)."""
    start_ms = window_start_ms(group, now)
    covered = reading(store.current, store.stream, start_ms, True, store.evicting) == STORED
    absent_is_empty = reading(store.current, store.stream, start_ms, False, store.evicting) == EMPTY
    if progress is None:
        return WindowRule(STALE, NOT_FOUND if absent_is_empty else STALE, False, False, None)
    progress_at = None if progress.progress_at_ms is None else progress.progress_at_ms / 1000.0
    stamp = _stamp(progress.progress_at_ms)
    if progress_at is not None and view.ttl_seconds and now - progress_at > view.ttl_seconds:
        return WindowRule(EXPIRED, EXPIRED, False, True, stamp)
    if not covered or not judge(progress, view.sla_seconds, now).fresh:
        return WindowRule(STALE, STALE, False, False, stamp)
    status = PRESENT
    if progress.complete_from_ms is not None and start_ms < progress.complete_from_ms:
        status = PARTIAL
    if not absent_is_empty:
        return WindowRule(status, STALE, False, False, stamp)
    return WindowRule(status, status, True, False, stamp)


def batch_rule(view: ServedView, store: StoreView, now: float) -> BatchRule:
    """The statuses of a view's batch values at ``now`` from the batch part's coverage (the TTL's interval
    must be covered); a stored row older than the TTL is ``expired`` whatever this says."""
    start_ms = int((now - view.ttl_seconds) * 1000)
    if reading(store.current, store.batch, start_ms, True, store.evicting) != STORED:
        return BatchRule(STALE, STALE)
    if reading(store.current, store.batch, start_ms, False, store.evicting) != EMPTY:
        return BatchRule(PRESENT, STALE)
    return BatchRule(PRESENT, NOT_FOUND)


def coverage_verdicts(
    view: ServedView, store: StoreView, now: float, batch: bool, stream: bool
) -> list[tuple[str, Verdict]]:
    """Per writer part the freshness judges (``batch``/``stream``), whether the store covers what the view
    serves at ``now``: ``now - ttl`` for batch values, the longest window's start for the stream."""
    out: list[tuple[str, Verdict]] = []
    if batch:
        needed = int((now - view.ttl_seconds) * 1000)
        out.append((BATCH, coverage_verdict(view.name, BATCH, store.current, store.batch, needed)))
    if stream and view.windows:
        needed = min(window_start_ms(group, now) for group in view.windows.values())
        out.append((STREAM, coverage_verdict(view.name, STREAM, store.current, store.stream, needed)))
    return out
