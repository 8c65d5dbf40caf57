"""The freshness rule of a window view, from its streaming job's progress record (pure).

A window view is fresh at ``now`` iff the record has ``progress_at`` and ``now - progress_at <= sla``
and (``lag == 0`` or ``now - newest_event <= sla``): the job was caught up and healthy within the SLA,
and, while records wait to be processed, the newest event it processed is within the SLA too. A quiet
topic (lag 0) stays fresh as long as the job keeps confirming it is caught up. The job's liveness beat
(``processed_at``) is never evidence of freshness.

Equivalently the stream's data is complete up to :func:`complete_until` (``progress_at``, or the newest
event processed when that is older and records wait), and its age is ``now`` minus that time.
"""

from dataclasses import dataclass

from streamguard.onlinestore.window_layout import PROGRESS_FIELDS, StreamProgress


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
    try:
        return StreamProgress.parse(dict(zip(PROGRESS_FIELDS, raw, strict=True)))
    except ValueError:
        return None
