"""Duration strings as used in the API: Go-style (``15s``, ``5m``, ``1h30m``) plus ``d`` for days."""

import re
from datetime import timedelta

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
"""Regex accepted at admission for every duration field (days allowed)."""
GO_DURATION_PATTERN = r"^([0-9]+(ms|s|m|h))+$"
"""Regex for durations that CEL's ``duration()`` must parse (no days)."""


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m``-style text; raise ``ValueError`` naming the text when it is not a duration."""
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"{text!r} is not a duration (expected e.g. '15s', '5m', '1h30m', '90d')")
    return timedelta(seconds=total)


def duration_seconds(text: str) -> int:
    """Whole seconds of a duration string."""
    return int(parse_duration(text).total_seconds())


def format_duration(seconds: int) -> str:
    """The shortest Go-style text for whole seconds (``900`` -> ``15m``; ``0`` -> ``0s``)."""
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
