"""Whether a StreamingWindow's job is running, judged from the ``StreamRunning`` condition the job writes.

Pure: the reconciler hands in the live conditions and the time. ``StreamRunning`` is written by the job
(field manager ``streamguard-stream``); the operator never writes it, it only lets ``Ready`` follow it once it
has been ``False`` for longer than a grace period, and asks to look again when that period ends.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamguard.api.durations import parse_duration
from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.operator.settings import OperatorSettings

CONDITION = "StreamRunning"
BASE_GRACE_SECONDS = 60.0


def grace_seconds(spec: StreamingWindowSpec, settings: OperatorSettings) -> float:
    """The operator's setting, else twice the trigger interval plus 60 s."""
    if settings.stream_grace_seconds is not None:
        return settings.stream_grace_seconds
    return 2 * parse_duration(spec.trigger_interval).total_seconds() + BASE_GRACE_SECONDS


@dataclass(frozen=True)
class StreamDown:
    """The job has reported ``StreamRunning=False`` for longer than the grace period."""

    reason: str
    message: str


@dataclass(frozen=True)
class StreamHealth:
    down: StreamDown | None = None
    recheck_seconds: float | None = None
    """When to look again even if no event arrives (the grace period ends then)."""


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


def judge(conditions: list[dict[str, Any]], now: datetime, grace: float) -> StreamHealth:
    """Down when ``StreamRunning`` has been ``False`` for more than ``grace`` seconds.

    A missing or ``True``/``Unknown`` condition is not "down": the job has not said it is failing. A
    ``False`` without a readable transition time counts from now (so it waits out a full grace period).
    """
    cond = next((c for c in conditions if c.get("type") == CONDITION), None)
    if cond is None or cond.get("status") != "False":
        return StreamHealth()
    since_text = str(cond.get("lastTransitionTime") or "")
    since = _parse_time(since_text)
    elapsed = (now - since).total_seconds() if since is not None else 0.0
    if elapsed <= grace:
        return StreamHealth(recheck_seconds=max(grace - elapsed, 0.0) + 1.0)
    reason = str(cond.get("reason") or "StreamNotRunning")
    detail = str(cond.get("message") or "no message")
    return StreamHealth(
        down=StreamDown(reason, f"StreamRunning=False since {since_text or 'unknown'}: {detail}"[:32768])
    )
