"""Whether a StreamingWindow's job is running, judged from the ``StreamRunning`` condition the job writes.

Pure: the reconciler hands in the live conditions and the time. ``StreamRunning`` is written by the job
(field manager ``streamguard-stream``); the operator never writes it, it only lets ``Ready`` follow it once it
has been ``False`` for longer than a grace period, and asks to look again when that period ends.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
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
    since: str | None = None
    """Since when the stream has been reported not running (for ``status.streamDownSince``); ``None``: running."""


def _parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def _format(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def judge(conditions: list[dict[str, Any]], now: datetime, grace: float, recorded: str | None = None) -> StreamHealth:
    """Down when ``StreamRunning`` has been ``False`` for more than ``grace`` seconds.

    The episode starts at the earlier of the condition's ``lastTransitionTime`` and ``recorded`` (what the
    operator noted when it first saw it ``False``): a crash-looping job that writes a fresh transition time on
    every restart must not restart the grace period with it. A missing or ``True``/``Unknown`` condition is not
    "down" (and ends the episode): the job has not said it is failing.
    """
    cond = next((c for c in conditions if c.get("type") == CONDITION), None)
    if cond is None or cond.get("status") != "False":
        return StreamHealth()
    starts = [t for t in (_parse_time(cond.get("lastTransitionTime")), _parse_time(recorded)) if t is not None]
    since = min(starts) if starts else now
    elapsed = (now - since).total_seconds()
    if elapsed <= grace:
        return StreamHealth(recheck_seconds=max(grace - elapsed, 0.0) + 1.0, since=_format(since))
    reason = str(cond.get("reason") or "StreamNotRunning")
    detail = str(cond.get("message") or "no message")
    message = f"StreamRunning=False since {_format(since)}: {detail}"[:32768]
    return StreamHealth(down=StreamDown(reason, message), since=_format(since))
