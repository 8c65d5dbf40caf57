"""Duration strings as used in the API: Go-style (``15s``, ``5m``, ``1h30m``), and ``90d`` where days are allowed.

Every duration is bounded: at most :data:`MAX_DURATION_DAYS` days, so no consumer (``timedelta``,
Spark, Redis expiry) can overflow on one. The bound is enforced three times from one definition: by
:func:`parse_duration` (plain Python), by the pydantic types below (:data:`Duration`,
:data:`PositiveDuration`, :data:`PositiveDayDuration`, or :func:`duration_field` with :func:`duration_check`)
and, generated from the same types, by CEL rules in the CRDs at admission.
"""

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, Field, JsonValue

from streamguard.api.common import cel

MAX_DURATION_DAYS = 366
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
MAX_DURATION_MS = MAX_DURATION_DAYS * _UNIT_MS["d"]
MAX_DURATION_LENGTH = 32
_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
DURATION_PATTERN = r"^([0-9]+d|([0-9]+(ms|s|m|h))+)$"
"""Regex accepted at admission for durations that may use days: ``90d`` alone, or Go-style text."""
GO_DURATION_PATTERN = r"^([0-9]+(ms|s|m|h))+$"
"""Regex for durations that CEL's ``duration()`` must parse (no days)."""


def duration_ms(text: str) -> int:
    """Whole milliseconds of ``1h30m``-style text; ``ValueError`` naming the text when it is not a
    duration or longer than :data:`MAX_DURATION_DAYS` days (never an overflow)."""
    pos = 0
    total = 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"{text!r} is not a duration (expected e.g. '15s', '5m', '1h30m', '90d')")
    if total > MAX_DURATION_MS:
        raise ValueError(f"{text!r} is longer than the maximum of {MAX_DURATION_DAYS} days")
    return total


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m``-style text (see :func:`duration_ms`)."""
    return timedelta(milliseconds=duration_ms(text))


def duration_seconds(text: str) -> int:
    """Whole seconds of a duration string."""
    return duration_ms(text) // 1000


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


SAFE_GO_DURATION_PATTERN = r"^(0*[0-9]{1,11}ms|0*[0-9]{1,8}s|0*[0-9]{1,6}m|0*[0-9]{1,4}h)+$"
"""Go-style text whose parts have no more digits than a part of at most the maximum can need.

Guards CEL's ``duration()`` (which errors on overflow instead of answering): text matching it is at
most :data:`MAX_DURATION_LENGTH` characters of parts below 1,200 days each, far inside a CEL duration.
"""
_DAYS_AT_MOST_MAX = r"^0*([0-9]{1,2}|[12][0-9]{2}|3[0-5][0-9]|36[0-6])d$"
"""``Nd`` with N at most 366 (CEL's standard library cannot strip the unit to compare numbers)."""


def cel_duration_safe(expr: str) -> str:
    """CEL: ``expr`` is Go-style text that ``duration()`` parses without overflowing."""
    return f"{expr}.matches('{SAFE_GO_DURATION_PATTERN}')"


def duration_rules(days: bool = False, minimum: str | None = None, positive: bool = False) -> list[JsonValue]:
    """The CEL rules of one duration field (``self`` is the string), in CEL's standard library only (so
    ``streamguard validate`` evaluates them offline too). Text that is not a duration at all is left to
    the field's pattern."""
    safe = cel_duration_safe("self")
    at_most = f"{safe} && duration(self) <= duration('{MAX_DURATION_DAYS * 24}h')"
    above = f"!{safe} || duration(self) " + (f">= duration('{minimum}')" if minimum else "> duration('0s')")
    if days:
        at_most = f"self.endsWith('d') ? self.matches('{_DAYS_AT_MOST_MAX}') : ({at_most})"
        above = f"self.endsWith('d') ? !self.matches('^0+d$') : ({above})"
    pattern = DURATION_PATTERN if days else GO_DURATION_PATTERN
    rules: list[JsonValue] = [
        cel(f"!self.matches('{pattern}') || ({at_most})", f"must be at most {MAX_DURATION_DAYS} days")
    ]
    if minimum or positive:
        rules.append(cel(above, f"must be at least {minimum}" if minimum else "must be greater than 0"))
    return rules


def duration_field(days: bool = False, minimum: str | None = None, positive: bool = False) -> Any:
    """The admission side of a bounded duration: pattern, length and CEL rules (a pydantic ``Field``)."""
    return Field(
        pattern=DURATION_PATTERN if days else GO_DURATION_PATTERN,
        max_length=MAX_DURATION_LENGTH,
        json_schema_extra={"x-kubernetes-validations": duration_rules(days, minimum, positive)},
    )


def duration_check(minimum: str | None = None, positive: bool = False) -> AfterValidator:
    """The Python side of a bounded duration: parsed, at most the maximum, at least ``minimum``."""
    minimum_ms = duration_ms(minimum) if minimum else 0

    def check(text: str) -> str:
        value = duration_ms(text)
        if value < minimum_ms:
            raise ValueError(f"{text!r} is shorter than the minimum of {minimum}")
        if positive and value == 0:
            raise ValueError(f"{text!r} must be greater than 0")
        return text

    return AfterValidator(check)


Duration = Annotated[str, duration_field(), duration_check()]
"""Go-style, 0 allowed (a watermark, a trigger interval)."""
PositiveDuration = Annotated[str, duration_field(positive=True), duration_check(positive=True)]
"""Go-style, greater than 0."""
PositiveDayDuration = Annotated[str, duration_field(days=True, positive=True), duration_check(positive=True)]
"""Days allowed, greater than 0 (a TTL, a freshness SLA, a trailing data window)."""
